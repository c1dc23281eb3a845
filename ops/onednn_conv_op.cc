// See onednn_conv_op.h.
#include <dnnl.hpp>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>

#include "var.h"
#include "onednn_conv_op.h"

namespace jittor {

#ifndef JIT

OnednnConvOp::OnednnConvOp(Var* a, Var* b, NanoVector out_shape, int mode, int stride, int padding,
                           int algorithm)
    : a(a), b(b), out_shape(out_shape), mode(mode), stride(stride), padding(padding),
      algorithm(algorithm) {
    flags.set(NodeFlags::_cpu, 1);
    ASSERT(mode >= 0 && mode <= 2) << "onednn_conv: mode must be 0, 1 or 2, not" << mode;
    ASSERT(algorithm == 0 || algorithm == 1) << "onednn_conv: algorithm must be 0 or 1, not"
                                             << algorithm;
    out = create_output(nullptr, a->dtype());
}

void OnednnConvOp::infer_shape() {
    ASSERTop(a->shape.size(),==,4);
    ASSERTop(b->shape.size(),==,4);
    if (mode == 0) {
        auto& x = a->shape; auto& w = b->shape;
        ASSERTop(x[1],==,w[1]);
        out->set_shape(NanoVector(x[0], w[0], (x[2] + 2 * padding - w[2]) / stride + 1,
                                  (x[3] + 2 * padding - w[3]) / stride + 1));
    } else {
        ASSERTop(out_shape.size(),==,4);
        out->set_shape(out_shape);
    }
}

void OnednnConvOp::jit_prepare(JK& jk) {
    ASSERT(a->dtype() == ns_float32 && b->dtype() == ns_float32)
        << "onednn_conv: float32 only";
    jk << "«T:float32";  // one kernel serves every mode and shape (they are run-time values)
}

#else // JIT

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

// The primitives of one (mode, shapes, stride, padding) and the reorders between the plain
// NCHW / OIHW tensors Jittor holds and the blocked layouts the primitive wants. Built once.
struct ConvPlan {
    memory::desc user_a, user_b, user_out;          // plain layouts of the op's tensors
    memory::desc prim_a, prim_b, prim_out;          // the layouts the primitive wants
    primitive conv;
    int arg_a, arg_b, arg_out;
    std::unique_ptr<reorder> to_a, to_b, from_out;  // null where the layouts agree
};

// Scratch for the blocked copies, shared by every plan (operators run one at a time): it only
// grows, so memory stays that of the largest convolution, and pages are not faulted in anew on
// every call as they are with buffers allocated per call.
struct Scratch {
    void* data = nullptr;
    size_t size = 0;
    void* get(size_t bytes) {
        if (bytes > size) {
            free(data);
            data = aligned_alloc(64, (bytes + 63) / 64 * 64);
            ASSERT(data) << "onednn_conv: out of memory for" << bytes << "bytes of scratch";
            size = bytes;
        }
        return data;
    }
};
static Scratch scratch_a, scratch_b, scratch_out;

static engine& cpu_engine() {
    static engine eng(engine::kind::cpu, 0);
    return eng;
}

static std::unordered_map<std::string, std::unique_ptr<ConvPlan>>& plans() {
    static std::unordered_map<std::string, std::unique_ptr<ConvPlan>> cache;
    return cache;
}

static memory::dims dims(const NanoVector& s) { return {s[0], s[1], s[2], s[3]}; }

void OnednnConvOp::jit_run() {
    const NanoVector& sa = a->shape, & sb = b->shape, & so = out->shape;
    std::string key = std::to_string(mode) + ":" + std::to_string(stride) + ":" +
                      std::to_string(padding) + ":" + std::to_string(algorithm);
    for (auto* s : {&sa, &sb, &so})
        for (int i = 0; i < 4; i++) key += "," + std::to_string((*s)[i]);
    auto& cache = plans();
    auto found = cache.find(key);
    engine& eng = cpu_engine();
    if (found == cache.end()) {
        // x, w, y shapes of the forward convolution this pass belongs to
        NanoVector sx = mode == 1 ? so : sa;
        NanoVector sw = mode == 2 ? so : sb;
        NanoVector sy = mode == 0 ? so : (mode == 1 ? sa : sb);
        memory::dims strides = {stride, stride}, dil = {0, 0}, pad = {padding, padding};
        auto any = [](const NanoVector& s) { return memory::desc(dims(s), dt::f32, tag::any); };
        auto plan = std::make_unique<ConvPlan>();
        memory::desc plain_x(dims(sx), dt::f32, tag::nchw), plain_w(dims(sw), dt::f32, tag::oihw),
                     plain_y(dims(sy), dt::f32, tag::nchw);
        // The op's inputs a, b and output in the three modes, as forward-convolution tensors
        // and oneDNN arguments; the primitive's layouts are asked for by argument.
        static const int ARGS[3][3] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                                       {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
                                       {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS}};
        auto use = [&](const primitive& prim, const primitive_desc_base& pd,
                       const memory::desc& y) {
            const memory::desc user[3][3] = {{plain_x, plain_w, y}, {y, plain_w, plain_x},
                                             {plain_x, y, plain_w}};
            plan->conv = prim;
            plan->user_a = user[mode][0]; plan->user_b = user[mode][1];
            plan->user_out = user[mode][2];
            plan->arg_a = ARGS[mode][0]; plan->arg_b = ARGS[mode][1];
            plan->arg_out = ARGS[mode][2];
            plan->prim_a = pd.query_md(query::exec_arg_md, plan->arg_a);
            plan->prim_b = pd.query_md(query::exec_arg_md, plan->arg_b);
            plan->prim_out = pd.query_md(query::exec_arg_md, plan->arg_out);
        };
        // A kernel as large as the unpadded input (the discriminator's last 4x4 convolution of
        // 4x4 features) is a matrix product: oneDNN's inner product runs it as one sgemm on the
        // plain layouts, without reorders (about 4x faster than its direct convolution).
        bool built = false;
        if (padding == 0 && sw[2] == sx[2] && sw[3] == sx[3]) {
            memory::desc flat_y({sy[0], sy[1]}, dt::f32, tag::nc);
            auto fwd_pd = inner_product_forward::primitive_desc(inner_product_forward::desc(
                prop_kind::forward_training, plain_x, plain_w, flat_y), eng);
            if (mode == 0) {
                use(inner_product_forward(fwd_pd), fwd_pd, flat_y);
            } else if (mode == 1) {
                auto pd = inner_product_backward_data::primitive_desc(
                    inner_product_backward_data::desc(plain_x, plain_w, flat_y), eng, fwd_pd);
                use(inner_product_backward_data(pd), pd, flat_y);
            } else {
                auto pd = inner_product_backward_weights::primitive_desc(
                    inner_product_backward_weights::desc(plain_x, plain_w, flat_y), eng, fwd_pd);
                use(inner_product_backward_weights(pd), pd, flat_y);
            }
            built = true;
        }
        // A 1x1 kernel (to-RGB, from-RGB) runs on the plain layouts (oneDNN's gemm kernels):
        // the reorders to and from the blocked layout took ten times its own time on the few
        // channels of large maps (16 -> 3 at 1024 x 1024: 14 ms through the operator).
        bool one_by_one = sw[2] == 1 && sw[3] == 1 && stride == 1 && padding == 0;
        memory::desc dx = one_by_one ? plain_x : any(sx), dw = one_by_one ? plain_w : any(sw),
                     dy = one_by_one ? plain_y : any(sy);
        // Winograd where asked for and oneDNN has it for this shape and CPU, else direct
        for (int wino = built ? -1 : algorithm; wino >= 0 && !built; wino--) {
            auto alg = wino ? algorithm::convolution_winograd : algorithm::convolution_direct;
            try {
                auto fwd_pd = convolution_forward::primitive_desc(convolution_forward::desc(
                    prop_kind::forward_training, alg, dx, dw, dy, strides, dil, pad, pad), eng);
                if (mode == 0) {
                    use(convolution_forward(fwd_pd), fwd_pd, plain_y);
                } else if (mode == 1) {
                    auto pd = convolution_backward_data::primitive_desc(
                        convolution_backward_data::desc(alg, dx, dw, dy, strides, dil, pad, pad),
                        eng, fwd_pd);
                    use(convolution_backward_data(pd), pd, plain_y);
                } else {
                    auto pd = convolution_backward_weights::primitive_desc(
                        convolution_backward_weights::desc(alg, dx, dw, dy, strides, dil, pad,
                                                           pad), eng, fwd_pd);
                    use(convolution_backward_weights(pd), pd, plain_y);
                }
                built = true;
            } catch (dnnl::error& e) {
                ASSERT(wino) << "onednn_conv: oneDNN has no convolution for" << key << ":"
                             << e.what();
            }
        }
        if (plan->prim_a != plan->user_a) {
            plan->to_a.reset(new reorder(reorder::primitive_desc(eng, plan->user_a, eng, plan->prim_a)));
        }
        if (plan->prim_b != plan->user_b) {
            plan->to_b.reset(new reorder(reorder::primitive_desc(eng, plan->user_b, eng, plan->prim_b)));
        }
        if (plan->prim_out != plan->user_out) {
            plan->from_out.reset(new reorder(reorder::primitive_desc(eng, plan->prim_out, eng, plan->user_out)));
        }
        found = cache.emplace(key, std::move(plan)).first;
    }
    ConvPlan& plan = *found->second;
    stream s(eng);
    memory user_a(plan.user_a, eng, a->mem_ptr), user_b(plan.user_b, eng, b->mem_ptr),
           user_out(plan.user_out, eng, out->mem_ptr);
    memory arg_a = user_a, arg_b = user_b, arg_out = user_out;
    if (plan.to_a) {
        arg_a = memory(plan.prim_a, eng, scratch_a.get(plan.prim_a.get_size()));
        plan.to_a->execute(s, user_a, arg_a);
    }
    if (plan.to_b) {
        arg_b = memory(plan.prim_b, eng, scratch_b.get(plan.prim_b.get_size()));
        plan.to_b->execute(s, user_b, arg_b);
    }
    if (plan.from_out)
        arg_out = memory(plan.prim_out, eng, scratch_out.get(plan.prim_out.get_size()));
    plan.conv.execute(s, {{plan.arg_a, arg_a}, {plan.arg_b, arg_b}, {plan.arg_out, arg_out}});
    if (plan.from_out) plan.from_out->execute(s, arg_out, user_out);
    s.wait();
}

#endif // JIT

} // jittor

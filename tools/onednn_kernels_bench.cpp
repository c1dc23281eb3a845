// Which kernels oneDNN picks for one convolution, and how fast they are, with no framework in
// between (blocked layouts, primitives built once): the forward asked for as Jittor's mkl_conv
// asks (forward_inference, convolution_auto) and as ops/onednn_conv_op.cc asks (forward_training,
// convolution_direct), the two backward passes, and all three with Winograd kernels.
// docs/benchmark.md quotes it.
//
//   g++ -O2 -fopenmp ops/onednn_kernels_bench.cpp -o /tmp/onednn_kernels_bench -ldnnl
//   /tmp/onednn_kernels_bench BATCH IN OUT MAP KERNEL PADDING [STRIDE]   # e.g. 32 512 512 4 3 1
//
// A transposed convolution is the input gradient of a convolution: FusedUpsample at 1024 px
// (32 -> 16 channels, 512 -> 1024 px) is the "input gradient" row of `1 16 32 1024 4 1 2`.
#include <dnnl.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

static double best_ms(primitive& p, stream& s, const std::unordered_map<int, memory>& args) {
    p.execute(s, args);
    s.wait();
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        auto start = std::chrono::steady_clock::now();
        p.execute(s, args);
        s.wait();
        double ms = std::chrono::duration<double, std::milli>(
            std::chrono::steady_clock::now() - start).count();
        if (ms < best) best = ms;
    }
    return best;
}

static memory filled(const memory::desc& d, const engine& eng) {
    memory m(d, eng);
    float* p = static_cast<float*>(m.get_data_handle());
    for (size_t i = 0; i < d.get_size() / sizeof(float); i++) p[i] = 0.01f * (i % 13);
    return m;
}

int main(int argc, char** argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: %s BATCH IN OUT MAP KERNEL PADDING [STRIDE]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), c = atoi(argv[2]), o = atoi(argv[3]), h = atoi(argv[4]),
        k = atoi(argv[5]), p = atoi(argv[6]), st = argc == 8 ? atoi(argv[7]) : 1;
    int oh = (h + 2 * p - k) / st + 1;
    engine eng(engine::kind::cpu, 0);
    stream s(eng);
    memory::dims src{n, c, h, h}, wei{o, c, k, k}, dst{n, o, oh, oh}, one{st, st}, no{0, 0},
        pad{p, p};
    memory::desc x(src, dt::f32, tag::any), w(wei, dt::f32, tag::any), y(dst, dt::f32, tag::any);
    double gflop = 2.0 * n * o * oh * oh * c * k * k / 1e9;
    printf("conv %d -> %d, %dx%d map -> %dx%d, %dx%d kernel, padding %d, stride %d, batch %d: "
           "%.2f GFLOP per pass\n", c, o, h, h, oh, oh, k, k, p, st, n, gflop);
    auto report = [&](const char* name, primitive prim, const primitive_desc_base& pd,
                      int in1, int in2, int out) {
        std::unordered_map<int, memory> args{
            {in1, filled(pd.query_md(query::exec_arg_md, in1), eng)},
            {in2, filled(pd.query_md(query::exec_arg_md, in2), eng)},
            {out, memory(pd.query_md(query::exec_arg_md, out), eng)}};
        double ms = best_ms(prim, s, args);
        printf("  %-28s %8.2f ms %7.1f GFLOP/s  %s\n", name, ms, gflop / ms * 1e3,
               pd.impl_info_str());
    };
    auto inference = convolution_forward::primitive_desc(convolution_forward::desc(
        prop_kind::forward_inference, algorithm::convolution_auto, x, w, y, one, no, pad, pad), eng);
    report("forward (inference, auto)", convolution_forward(inference), inference,
           DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST);
    // the three passes as ops/onednn_conv_op.cc asks for them: direct, then Winograd (which
    // onednn_conv.py asks for for 3x3, stride-1 convolutions from 8x8 maps and 32 channels)
    struct { algorithm alg; const char* forward; const char* data; const char* weights; } kinds[] = {
        {algorithm::convolution_direct, "forward (training, direct)", "input gradient",
         "weight gradient"},
        {algorithm::convolution_winograd, "Winograd forward", "Winograd input gradient",
         "Winograd weight gradient"}};
    for (auto& kind : kinds) {
        try {
            auto fwd = convolution_forward::primitive_desc(convolution_forward::desc(
                prop_kind::forward_training, kind.alg, x, w, y, one, no, pad, pad), eng);
            auto data = convolution_backward_data::primitive_desc(convolution_backward_data::desc(
                kind.alg, x, w, y, one, no, pad, pad), eng, fwd);
            auto weights = convolution_backward_weights::primitive_desc(
                convolution_backward_weights::desc(kind.alg, x, w, y, one, no, pad, pad), eng, fwd);
            report(kind.forward, convolution_forward(fwd), fwd, DNNL_ARG_SRC, DNNL_ARG_WEIGHTS,
                   DNNL_ARG_DST);
            report(kind.data, convolution_backward_data(data), data, DNNL_ARG_DIFF_DST,
                   DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC);
            report(kind.weights, convolution_backward_weights(weights), weights, DNNL_ARG_SRC,
                   DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS);
        } catch (dnnl::error&) {
            printf("  %s: oneDNN has no such kernel for this shape on this CPU\n", kind.forward);
        }
    }
    return 0;
}

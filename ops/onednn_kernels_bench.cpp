// Which kernels oneDNN picks for one convolution, and how fast they are, with no framework in
// between (blocked layouts, primitives built once): the forward asked for as Jittor's mkl_conv
// asks (forward_inference, convolution_auto) and as ops/onednn_conv_op.cc asks (forward_training,
// convolution_direct), the two backward passes, and all three with Winograd kernels.
// docs/benchmark.md quotes it.
//
//   g++ -O2 -fopenmp ops/onednn_kernels_bench.cpp -o /tmp/onednn_kernels_bench -ldnnl
//   /tmp/onednn_kernels_bench BATCH IN OUT MAP KERNEL PADDING     # e.g. 32 512 512 4 3 1
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
    if (argc != 7) {
        fprintf(stderr, "usage: %s BATCH IN OUT MAP KERNEL PADDING\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), c = atoi(argv[2]), o = atoi(argv[3]), h = atoi(argv[4]),
        k = atoi(argv[5]), p = atoi(argv[6]);
    int oh = h + 2 * p - k + 1;
    engine eng(engine::kind::cpu, 0);
    stream s(eng);
    memory::dims src{n, c, h, h}, wei{o, c, k, k}, dst{n, o, oh, oh}, one{1, 1}, no{0, 0},
        pad{p, p};
    memory::desc x(src, dt::f32, tag::any), w(wei, dt::f32, tag::any), y(dst, dt::f32, tag::any);
    double gflop = 2.0 * n * o * oh * oh * c * k * k / 1e9;
    auto inference = convolution_forward::primitive_desc(convolution_forward::desc(
        prop_kind::forward_inference, algorithm::convolution_auto, x, w, y, one, no, pad, pad), eng);
    auto training = convolution_forward::primitive_desc(convolution_forward::desc(
        prop_kind::forward_training, algorithm::convolution_direct, x, w, y, one, no, pad, pad), eng);
    auto data = convolution_backward_data::primitive_desc(convolution_backward_data::desc(
        algorithm::convolution_direct, x, w, y, one, no, pad, pad), eng, training);
    auto weights = convolution_backward_weights::primitive_desc(convolution_backward_weights::desc(
        algorithm::convolution_direct, x, w, y, one, no, pad, pad), eng, training);
    printf("conv %d -> %d, %dx%d map, %dx%d kernel, padding %d, batch %d: %.2f GFLOP per pass\n",
           c, o, h, h, k, k, p, n, gflop);
    struct { const char* name; primitive prim; std::unordered_map<int, memory> args; const char* impl; }
    runs[] = {
        {"forward (inference, auto)", convolution_forward(inference),
         {{DNNL_ARG_SRC, filled(inference.src_desc(), eng)},
          {DNNL_ARG_WEIGHTS, filled(inference.weights_desc(), eng)},
          {DNNL_ARG_DST, memory(inference.dst_desc(), eng)}}, inference.impl_info_str()},
        {"forward (training, direct)", convolution_forward(training),
         {{DNNL_ARG_SRC, filled(training.src_desc(), eng)},
          {DNNL_ARG_WEIGHTS, filled(training.weights_desc(), eng)},
          {DNNL_ARG_DST, memory(training.dst_desc(), eng)}}, training.impl_info_str()},
        {"input gradient", convolution_backward_data(data),
         {{DNNL_ARG_DIFF_DST, filled(data.diff_dst_desc(), eng)},
          {DNNL_ARG_WEIGHTS, filled(data.weights_desc(), eng)},
          {DNNL_ARG_DIFF_SRC, memory(data.diff_src_desc(), eng)}}, data.impl_info_str()},
        {"weight gradient", convolution_backward_weights(weights),
         {{DNNL_ARG_SRC, filled(weights.src_desc(), eng)},
          {DNNL_ARG_DIFF_DST, filled(weights.diff_dst_desc(), eng)},
          {DNNL_ARG_DIFF_WEIGHTS, memory(weights.diff_weights_desc(), eng)}},
         weights.impl_info_str()},
    };
    for (auto& run : runs) {
        double ms = best_ms(run.prim, s, run.args);
        printf("  %-28s %8.2f ms %7.1f GFLOP/s  %s\n", run.name, ms, gflop / ms * 1e3, run.impl);
    }
    // The same three passes with oneDNN's Winograd kernels (onednn_conv.py asks for them for
    // 3x3, stride-1 convolutions from 8x8 maps and 32 channels), where oneDNN has them.
    try {
        auto wfwd = convolution_forward::primitive_desc(convolution_forward::desc(
            prop_kind::forward_training, algorithm::convolution_winograd, x, w, y, one, no, pad,
            pad), eng);
        auto wdata = convolution_backward_data::primitive_desc(convolution_backward_data::desc(
            algorithm::convolution_winograd, x, w, y, one, no, pad, pad), eng, wfwd);
        auto wweights = convolution_backward_weights::primitive_desc(
            convolution_backward_weights::desc(algorithm::convolution_winograd, x, w, y, one, no,
                                               pad, pad), eng, wfwd);
        struct { const char* name; primitive prim; std::unordered_map<int, memory> args; const char* impl; }
        wino[] = {
            {"Winograd forward", convolution_forward(wfwd),
             {{DNNL_ARG_SRC, filled(wfwd.src_desc(), eng)},
              {DNNL_ARG_WEIGHTS, filled(wfwd.weights_desc(), eng)},
              {DNNL_ARG_DST, memory(wfwd.dst_desc(), eng)}}, wfwd.impl_info_str()},
            {"Winograd input gradient", convolution_backward_data(wdata),
             {{DNNL_ARG_DIFF_DST, filled(wdata.diff_dst_desc(), eng)},
              {DNNL_ARG_WEIGHTS, filled(wdata.weights_desc(), eng)},
              {DNNL_ARG_DIFF_SRC, memory(wdata.diff_src_desc(), eng)}}, wdata.impl_info_str()},
            {"Winograd weight gradient", convolution_backward_weights(wweights),
             {{DNNL_ARG_SRC, filled(wweights.src_desc(), eng)},
              {DNNL_ARG_DIFF_DST, filled(wweights.diff_dst_desc(), eng)},
              {DNNL_ARG_DIFF_WEIGHTS, memory(wweights.diff_weights_desc(), eng)}},
             wweights.impl_info_str()},
        };
        for (auto& run : wino) {
            double ms = best_ms(run.prim, s, run.args);
            printf("  %-28s %8.2f ms %7.1f GFLOP/s  %s\n", run.name, ms, gflop / ms * 1e3,
                   run.impl);
        }
    } catch (dnnl::error&) {
        printf("  Winograd: oneDNN has no Winograd kernel for this shape on this CPU\n");
    }
    return 0;
}

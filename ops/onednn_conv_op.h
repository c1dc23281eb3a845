// One 2-D convolution pass on oneDNN, for onednn_conv.py: the forward (mode 0), the input
// gradient (mode 1, also a transposed convolution) and the weight gradient (mode 2).
// Unlike Jittor 1.3.11's mkl_conv* operators it keeps oneDNN primitives and its blocked-layout
// scratch buffers between calls (keyed by shapes), and asks for the training forward, which
// oneDNN 2.x serves with its direct JIT kernels instead of the slower brgconv ones it picks for
// "forward_inference" at small maps (bench.py --conv_layers, ops/onednn_kernels_bench.cpp).
// ``algorithm`` 1 asks for oneDNN's Winograd kernels (3x3, stride 1: about 2x faster from 8x8
// maps on AVX-512), falling back to the direct ones where oneDNN has none; 0 the direct ones.
// A kernel as large as its unpadded input runs as oneDNN's inner product (a matrix product),
// a 1x1 kernel on the plain layouts (no reorders).
#pragma once
#include "op.h"

namespace jittor {

struct OnednnConvOp : Op {
    Var* a, * b, * out;
    NanoVector out_shape;
    int mode, stride, padding, algorithm;
    /* mode 0: a = x [N,C,H,W], b = w [O,C,K,K] -> y [N,O,OH,OW]
       mode 1: a = dy [N,O,OH,OW], b = w [O,C,K,K] -> dx of out_shape [N,C,H,W]
       mode 2: a = x [N,C,H,W], b = dy [N,O,OH,OW] -> dw of out_shape [O,C,K,K] */
    OnednnConvOp(Var* a, Var* b, NanoVector out_shape, int mode, int stride, int padding, int algorithm);
    const char* name() const override { return "onednn_conv"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

} // jittor

"""StyleGAN's blur, [1,2,1] x [1,2,1] / 16 with zero padding 1, as a Jittor Function that can be
differentiated to any order (the R1 penalty's double backward goes through it).

On the CPU it runs as one C++ pass over each plane (``BLUR_CPU_SOURCE``): Jittor's depthwise
convolution reorders to oneDNN's blocked layout and back on every call (docs/benchmark.md
measures both). Under CUDA, or where ``ops.portable`` asks for plain Jittor ops, it is Jittor's
depthwise ``nn.conv2d`` with the kernel ``blur_kernel``.
"""
import numpy as np

import jittor as jt
from jittor import nn

from ops import portable

BLUR_KERNEL_1D = (1, 2, 1)        # the blur is [1,2,1] x [1,2,1] / 16
_blur_kernels = {}                # (channels, dtype) -> depthwise kernel Var, built once


def blur_kernel(channels, dtype="float32"):
    """The depthwise blur kernel (channels, 1, 3, 3), a constant shared by every call."""
    key = (channels, str(dtype))
    if key not in _blur_kernels:
        kernel = np.outer(BLUR_KERNEL_1D, BLUR_KERNEL_1D).astype(np.float64)
        kernel /= kernel.sum()
        _blur_kernels[key] = jt.array(
            np.tile(kernel, (channels, 1, 1, 1)).astype(str(dtype))).stop_grad()
    return _blur_kernels[key]


# One pass over each plane: the vertical [1,2,1] into a row buffer, then the horizontal one (zero
# padding), times 1/16. With BIAS, in1 holds a per-channel bias added to every input pixel first
# (the bias of the convolution that precedes the blur in generation, where adding it would be a
# pass of its own; see ops/cpu_generation.py).
BLUR_CPU_SOURCE = r"""
    const int C = in0_shape1, planes = in0_shape0 * C, H = in0_shape2, W = in0_shape3;
    #pragma omp parallel for
    for (int p = 0; p < planes; p++) {
        const in0_type* x = in0_p + (size_t)p * H * W;
        out0_type* y = out0_p + (size_t)p * H * W;
        const in0_type b = BIAS;
        std::vector<in0_type> v(W + 2, 0);
        for (int i = 0; i < H; i++) {
            const in0_type* mid = x + (size_t)i * W;
            for (int j = 0; j < W; j++) {
                in0_type s = 2 * (mid[j] + b);
                if (i > 0) s += mid[j - W] + b;
                if (i + 1 < H) s += mid[j + W] + b;
                v[j + 1] = s;
            }
            out0_type* row = y + (size_t)i * W;
            for (int j = 0; j < W; j++)
                row[j] = (v[j] + 2 * v[j + 1] + v[j + 2]) * (in0_type)0.0625;
        }
    }
"""


def blur_cpu(input, bias=None):
    """``blur(input + bias)`` (bias per channel, or none) on the CPU as a Jittor code operator
    (BLUR_CPU_SOURCE); not differentiable by itself (BlurFunction supplies the gradient)."""
    inputs = [input] if bias is None else [input, bias.reshape((input.shape[1],))]
    return jt.code(input.shape, input.dtype, inputs, cpu_header="#include <vector>",
                   cpu_src=BLUR_CPU_SOURCE.replace("BIAS", "0" if bias is None else "in1_p[p % C]"))


def blur_conv(input):
    """The blur as Jittor's depthwise convolution (CUDA, and the portable path)."""
    channels = input.shape[1]
    return nn.conv2d(input, blur_kernel(channels, input.dtype), padding=1, groups=channels)


class BlurFunction(jt.Function):
    """Depthwise 3x3 blur, zero padding 1, whose gradient is the same blur of the gradient.

    The kernel is symmetric and the padding zero, so the blur is self-adjoint: its backward is
    itself, and because ``grad`` applies this Function again, Jittor differentiates it to any
    order (the PyTorch original hand-writes ``BlurFunctionBackward`` for this). One pass per
    derivative instead of autograd through shifted slices.
    """

    def execute(self, input):
        if jt.flags.use_cuda or portable.enabled():
            return blur_conv(input)
        return blur_cpu(input)

    def grad(self, grad_output):
        return BlurFunction.apply(grad_output)


def blur(input):
    """Depthwise 3x3 blur with kernel [1,2,1] x [1,2,1] / 16, zero padding 1 (any order of
    derivative). The kernel is symmetric, so convolution and correlation agree."""
    return BlurFunction.apply(input)

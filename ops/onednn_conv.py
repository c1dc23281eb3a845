"""Convolutions for the CPU on the project's own oneDNN operator (``ops/onednn_conv_op.cc``).

Jittor 1.3.11 turns every ``nn.conv2d`` into its ``mkl_conv*`` operators, which on each call
build a new oneDNN primitive, allocate fresh blocked-layout buffers and, for the forward pass,
ask oneDNN for an inference primitive: oneDNN 2.6 answers that with its ``brgconv`` kernels,
up to 2x slower than its direct JIT kernels on the 4x4 and 8x8 maps of the low resolutions
(docs/benchmark.md, ``bench.py --conv_layers``). The operator here keeps primitives per shape
and one shared scratch, and asks for the training forward. Its three passes (forward, input
gradient, weight gradient) are linear in each argument, so each one's gradient is another of
the three: the closure below gives the R1 penalty's double backward too.

The 3x3, stride-1 convolutions on maps of at least ``WINOGRAD_MIN_MAP`` pixels a side (most of
the FLOPs from 8 px on) ask oneDNN for its Winograd kernels, F(4x4, 3x3): about 2x faster on
AVX-512 than the direct ones (``tools/onednn_kernels_bench.cpp``), with float32 rounding errors a
few times larger (docs/benchmark.md measures them); oneDNN falls back to direct ones on CPUs or
shapes it has no Winograd kernel for. ``STYLEGAN_WINOGRAD=0`` keeps every convolution direct.
A kernel as large as its unpadded input (the discriminator's last convolution, 4x4 on 4x4) runs
as oneDNN's inner product, one matrix product on the plain layouts; 1x1 kernels (to-RGB,
from-RGB) run on the plain layouts too, without the reorders to oneDNN's blocked one.

``conv2d`` and ``conv_transpose2d`` take the same arguments as ``jittor.nn``'s for the cases the
model uses (square kernels, one stride and padding, no groups, no dilation) and fall back to
``jittor.nn`` wherever this operator does not apply: on a GPU, without oneDNN (``use_mkl=0``),
for other dtypes, or when ``STYLEGAN_ONEDNN_CONV=0``.
"""
import os
import sys

import jittor as jt
from jittor import nn

from ops import portable

OPS_DIR = os.path.dirname(os.path.abspath(__file__))
ENV_SWITCH = "STYLEGAN_ONEDNN_CONV"
WINOGRAD_SWITCH = "STYLEGAN_WINOGRAD"
FORWARD, INPUT_GRAD, WEIGHT_GRAD = 0, 1, 2
DIRECT, WINOGRAD = 0, 1
# Smaller maps are not faster with Winograd: at 4x4 its forward is slower than the direct one and
# a training iteration at 8 or 16 px took the same time with it for some or all passes there
# (docs/benchmark.md).
WINOGRAD_MIN_MAP = 8
# Fewer channels are slower with Winograd: 16 -> 16 at 1024 x 1024 took 54 ms against 16 ms
# direct; from 32 channels it is as fast or faster (tools/onednn_kernels_bench.cpp).
WINOGRAD_MIN_CHANNELS = 32

_ops = None          # the compiled operator module, once built
_unavailable = None  # why it cannot be used, once known


def onednn_folders():
    """(include, lib) of the oneDNN Jittor links: its ``mkl_include_path`` / ``mkl_lib_path``
    when set, else the ``dnnl*`` folder in Jittor's cache (runtime/jittor_setup.py links Debian's there)."""
    include, lib = os.environ.get("mkl_include_path"), os.environ.get("mkl_lib_path")
    if include and lib:
        return include, lib
    import jittor_utils
    home = os.path.join(jittor_utils.home(), ".cache", "jittor", "mkl")
    folders = [os.path.join(home, name) for name in sorted(os.listdir(home))
               if name.startswith("dnnl") and os.path.isdir(os.path.join(home, name))]
    if not folders:
        raise RuntimeError(f"no oneDNN folder in {home}")
    return os.path.join(folders[0], "include"), os.path.join(folders[0], "lib")


def _compile():
    """Build the operator (Jittor caches the build) against the oneDNN Jittor itself uses."""
    include, lib = onednn_folders()
    flags = f' -I"{include}" -L"{lib}" -lmkldnn -Wl,-rpath,"{lib}" '
    files = [os.path.join(OPS_DIR, name) for name in ("onednn_conv_op.h", "onednn_conv_op.cc")]
    return jt.compile_custom_ops(files, extra_flags=flags)


def jittor_has_onednn():
    """True when Jittor runs with oneDNN (its mkl operators are built)."""
    return getattr(jt, "mkl_ops", None) is not None


def available():
    """True when this operator serves convolutions now (CPU, oneDNN, not switched off, not the
    portable path)."""
    global _ops, _unavailable
    if jt.flags.use_cuda or os.environ.get(ENV_SWITCH, "1") == "0" or portable.enabled():
        return False
    if _ops is None and _unavailable is None:
        if not jittor_has_onednn():
            _unavailable = "Jittor runs without oneDNN"
        else:
            try:
                _ops = _compile()
            except Exception as error:  # a failed build leaves Jittor's own convolutions
                _unavailable = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                print(f"onednn_conv: could not build ops/onednn_conv_op.cc ({_unavailable}); "
                      f"using Jittor's convolutions (slower on small maps)", file=sys.stderr)
    return _ops is not None


def algorithm_for(x_shape, weight_shape, stride, padding):
    """WINOGRAD for a 3x3, stride-1, padding-1 convolution of a ``x_shape`` input of at least
    WINOGRAD_MIN_MAP pixels a side, with at least WINOGRAD_MIN_CHANNELS input and output
    channels (unless STYLEGAN_WINOGRAD=0), else DIRECT. ``weight_shape`` is (out, in, k, k) of
    the forward convolution. All three passes of one convolution use the forward's choice."""
    if os.environ.get(WINOGRAD_SWITCH, "1") == "0":
        return DIRECT
    if ((weight_shape[2], weight_shape[3], stride, padding) == (3, 3, 1, 1)
            and min(x_shape[2:]) >= WINOGRAD_MIN_MAP
            and min(weight_shape[:2]) >= WINOGRAD_MIN_CHANNELS):
        return WINOGRAD
    return DIRECT


def _pass(mode, a, b, out_shape, conv):
    """One pass of the operator; ``conv`` is the convolution's (stride, padding, algorithm)."""
    return _ops.onednn_conv(a, b, out_shape, mode, *conv)


class _Forward(jt.Function):
    """y = conv(x, w). dx = input_grad(dy, w), dw = weight_grad(x, dy)."""

    def execute(self, x, w):
        return _pass(FORWARD, x, w, [], self.conv)

    def grad(self, grad_y):
        x, w = self.saved
        return (_apply(_InputGrad, grad_y, w, x.shape, self.conv),
                _apply(_WeightGrad, x, grad_y, w.shape, self.conv))


class _InputGrad(jt.Function):
    """dx = input_grad(dy, w) (a transposed convolution). Linear in dy and in w:
    d/d(dy) = conv(g, w), d/dw = weight_grad(g, dy)."""

    def execute(self, grad_y, w):
        return _pass(INPUT_GRAD, grad_y, w, self.out_shape, self.conv)

    def grad(self, g):
        grad_y, w = self.saved
        return (_apply(_Forward, g, w, None, self.conv),
                _apply(_WeightGrad, g, grad_y, w.shape, self.conv))


class _WeightGrad(jt.Function):
    """dw = weight_grad(x, dy). Linear in x and in dy:
    d/dx = input_grad(dy, g), d/d(dy) = conv(x, g)."""

    def execute(self, x, grad_y):
        return _pass(WEIGHT_GRAD, x, grad_y, self.out_shape, self.conv)

    def grad(self, g):
        x, grad_y = self.saved
        return (_apply(_InputGrad, grad_y, g, x.shape, self.conv),
                _apply(_Forward, x, g, None, self.conv))


def _apply(function, a, b, out_shape, conv):
    """Run one pass as a differentiable Function that keeps its (untaped) inputs for grad;
    ``conv`` is (stride, padding, algorithm), shared by all passes of one convolution."""
    f = function()
    f.saved, f.out_shape, f.conv = (a, b), list(out_shape or []), conv
    return f(a, b)


def _single(value, name):
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{name} must be the same along both axes here, not {value}")
        value = value[0]
    return int(value)


def _serves(x, weight):
    """True when the operator takes this convolution (else Jittor's does)."""
    return (available() and x.dtype == "float32" and weight.dtype == "float32"
            and weight.shape[2] == weight.shape[3])


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """``jittor.nn.conv2d(x, weight, bias, stride, padding)`` (groups 1, dilation 1)."""
    if not _serves(x, weight):
        return nn.conv2d(x, weight, bias, stride=stride, padding=padding)
    stride, padding = _single(stride, "stride"), _single(padding, "padding")
    conv = (stride, padding, algorithm_for(x.shape, weight.shape, stride, padding))
    y = _apply(_Forward, x, weight, None, conv)
    return y if bias is None else y + bias.reshape((1, -1, 1, 1))


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    """``jittor.nn.conv_transpose2d(x, weight, bias, stride, padding)`` (no output padding,
    groups 1): the input gradient of the convolution whose weight is ``weight`` [in, out, k, k]."""
    if not _serves(x, weight):
        return nn.conv_transpose2d(x, weight, bias, stride=stride, padding=padding)
    stride, padding = _single(stride, "stride"), _single(padding, "padding")
    n, _, h, w = x.shape
    k = weight.shape[2]
    out_shape = (n, weight.shape[1], (h - 1) * stride - 2 * padding + k,
                 (w - 1) * stride - 2 * padding + k)
    conv = (stride, padding,
            algorithm_for(out_shape, (weight.shape[1], weight.shape[0], k, k), stride, padding))
    y = _apply(_InputGrad, x, weight, out_shape, conv)
    return y if bias is None else y + bias.reshape((1, -1, 1, 1))

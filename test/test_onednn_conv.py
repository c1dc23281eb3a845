"""onednn_conv: the project's oneDNN convolution against Jittor's own and against numpy, for
the forward pass, both gradients and the double backward of an R1-like penalty."""
import numpy as np
import pytest

import jittor as jt
from jittor import nn

from ops import onednn_conv

pytestmark = pytest.mark.skipif(not onednn_conv.available(),
                                reason="the oneDNN operator is not available here")


def numpy_conv2d(x, w, stride, padding):
    """Direct convolution (cross-correlation, as deep-learning frameworks define it)."""
    n, c, h, _ = x.shape
    o, _, k, _ = w.shape
    padded = np.zeros((n, c, h + 2 * padding, h + 2 * padding), np.float64)
    padded[:, :, padding:padding + h, padding:padding + h] = x
    out = (h + 2 * padding - k) // stride + 1
    y = np.zeros((n, o, out, out))
    for i in range(out):
        for j in range(out):
            patch = padded[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            y[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return y


def derivatives(conv, x, w, **options):
    """y, dL/dx, dL/dw for L = sum(y^2)/2 + sum(y), then the gradients of the R1-like penalty
    P = |dL/dx|^2 with respect to w and x (the double backward)."""
    y = conv(x, w, None, **options)
    loss = (y * y).sum() * 0.5 + y.sum()
    grad_x, grad_w = jt.grad(loss, [x, w])
    penalty = (grad_x * grad_x).sum()
    penalty_w, penalty_x = jt.grad(penalty, [w, x])
    return [v.numpy() for v in (y, grad_x, grad_w, penalty_w, penalty_x)]


CASES = [  # (batch, in, out, map, kernel, stride, padding)
    (2, 8, 6, 8, 3, 1, 1),   # the 3x3 convolutions of every block
    (2, 8, 6, 9, 3, 2, 1),   # a stride-2 convolution (FusedDownsample's)
    (2, 3, 6, 8, 1, 1, 0),   # from_rgb / to_rgb
    (3, 8, 5, 4, 4, 1, 0),   # the discriminator's last 4x4 convolution
]


@pytest.mark.parametrize("batch, cin, cout, size, kernel, stride, padding", CASES)
def test_convolution_and_its_derivatives_match_jittor(batch, cin, cout, size, kernel, stride,
                                                      padding):
    rng = np.random.RandomState(size + kernel)
    x = jt.array(rng.randn(batch, cin, size, size).astype("float32"))
    w = jt.array(rng.randn(cout, cin, kernel, kernel).astype("float32"))
    ours = derivatives(onednn_conv.conv2d, x, w, stride=stride, padding=padding)
    theirs = derivatives(nn.conv2d, x, w, stride=stride, padding=padding)
    for name, a, b in zip(("y", "dx", "dw", "d2w", "d2x"), ours, theirs):
        assert a.shape == b.shape, name
        scale = np.abs(b).max()
        assert scale > 0, name
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * scale, err_msg=name)
    expected = numpy_conv2d(x.numpy().astype(np.float64), w.numpy().astype(np.float64),
                            stride, padding)
    np.testing.assert_allclose(ours[0], expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_transposed_convolution_and_its_derivatives_match_jittor():
    """FusedUpsample's stride-2 transposed convolution (4x4 kernel, padding 1)."""
    rng = np.random.RandomState(1)
    x = jt.array(rng.randn(2, 8, 5, 5).astype("float32"))
    w = jt.array(rng.randn(8, 6, 4, 4).astype("float32"))  # [in, out, k, k]
    ours = derivatives(onednn_conv.conv_transpose2d, x, w, stride=2, padding=1)
    theirs = derivatives(nn.conv_transpose2d, x, w, stride=2, padding=1)
    assert ours[0].shape == (2, 6, 10, 10)
    for name, a, b in zip(("y", "dx", "dw", "d2w", "d2x"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * np.abs(b).max(), err_msg=name)


def test_cached_plans_serve_shapes_in_any_order():
    """Plans and scratch are kept per shape: going back to a shape after a larger one (the
    shared scratch grown meanwhile) still gives the right numbers."""
    rng = np.random.RandomState(2)
    shapes = [(1, 4, 6), (3, 16, 12), (1, 4, 6)]
    for n, c, size in shapes:
        x = rng.randn(n, c, size, size).astype("float32")
        w = rng.randn(5, c, 3, 3).astype("float32")
        with jt.no_grad():
            y = onednn_conv.conv2d(jt.array(x), jt.array(w), padding=1).numpy()
        expected = numpy_conv2d(x.astype(np.float64), w.astype(np.float64), 1, 1)
        np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(onednn_conv.ENV_SWITCH, "0")
    assert not onednn_conv.available()
    monkeypatch.setenv(onednn_conv.ENV_SWITCH, "1")
    assert onednn_conv.available()


def test_bias_is_added_per_output_channel():
    x = jt.ones((1, 2, 3, 3))
    w = jt.zeros((4, 2, 1, 1))
    bias = jt.array(np.array([1, 2, 3, 4], "float32"))
    y = onednn_conv.conv2d(x, w, bias).numpy()
    np.testing.assert_array_equal(y[0, :, 1, 1], [1, 2, 3, 4])


def has_avx512():
    try:
        with open("/proc/cpuinfo") as info:
            return "avx512f" in info.read().split()
    except OSError:
        return False


def test_winograd_is_asked_for_3x3_stride_1_convolutions_from_8x8_maps_and_32_channels(
        monkeypatch):
    choose = onednn_conv.algorithm_for
    assert choose((2, 32, 8, 8), (32, 32, 3, 3), 1, 1) == onednn_conv.WINOGRAD
    assert choose((2, 32, 4, 4), (32, 32, 3, 3), 1, 1) == onednn_conv.DIRECT  # small maps
    assert choose((1, 16, 64, 64), (16, 16, 3, 3), 1, 1) == onednn_conv.DIRECT  # few channels
    assert choose((1, 32, 64, 64), (16, 32, 3, 3), 1, 1) == onednn_conv.DIRECT
    assert choose((2, 32, 16, 16), (32, 32, 3, 3), 2, 1) == onednn_conv.DIRECT  # stride 2
    assert choose((2, 32, 16, 16), (32, 32, 4, 4), 1, 0) == onednn_conv.DIRECT  # not 3x3
    assert choose((2, 32, 16, 16), (32, 32, 1, 1), 1, 0) == onednn_conv.DIRECT
    monkeypatch.setenv(onednn_conv.WINOGRAD_SWITCH, "0")
    assert choose((2, 32, 8, 8), (32, 32, 3, 3), 1, 1) == onednn_conv.DIRECT


@pytest.mark.parametrize("size", [8, 16])
def test_winograd_passes_and_double_backward_match_jittor_within_float32_rounding(size):
    """oneDNN's Winograd F(4x4, 3x3) kernels (AVX-512; direct ones elsewhere) for the forward,
    both gradients and the double backward, against Jittor's direct convolution."""
    rng = np.random.RandomState(size)
    x = jt.array(rng.randn(2, 32, size, size).astype("float32"))
    w = jt.array((rng.randn(32, 32, 3, 3) * np.sqrt(2 / 288)).astype("float32"))

    def forced(algorithm):
        def conv(x, w, bias, stride, padding):
            return onednn_conv._apply(onednn_conv._Forward, x, w, None,
                                      (stride, padding, algorithm))
        return derivatives(conv, x, w, stride=1, padding=1)

    winograd, direct = forced(onednn_conv.WINOGRAD), forced(onednn_conv.DIRECT)
    theirs = derivatives(nn.conv2d, x, w, stride=1, padding=1)
    for name, a, b in zip(("y", "dx", "dw", "d2w", "d2x"), winograd, theirs):
        # measured: errors of a few 1e-6 of the largest value (direct ones: 3e-7)
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * np.abs(b).max(), err_msg=name)
    if has_avx512():  # Winograd really ran: it rounds differently from the direct kernels
        assert not np.array_equal(winograd[0], direct[0])

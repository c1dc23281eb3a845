"""Tests of model.py against independent numpy computations and the reference's key lists."""
import math
import os
import random

import numpy as np
import pytest

import jittor as jt
import model
from model import (AdaptiveInstanceNorm, Blur, Discriminator, EqualConv2d, EqualLinear,
                   FusedDownsample, FusedUpsample, NoiseInjection, PixelNorm, StyledGenerator,
                   minibatch_stddev)
from ops import cpu_generation
from ops.blur import blur_cpu

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference")
CODE = 8     # latent size of the narrow test models
WIDTH = 8    # channels of their low-resolution blocks


@pytest.fixture(autouse=True)
def seeded():
    jt.set_global_seed(0)
    np.random.seed(0)
    random.seed(0)


def small_generator(n_mlp=2):
    return StyledGenerator(code_dim=CODE, n_mlp=n_mlp, width=WIDTH)


def f64(array):
    """A float64 Var (jt.array alone converts float64 to float32)."""
    return jt.array(array, dtype="float64")


def fixed_noise(batch, step, rng=np.random):
    return [jt.array(rng.randn(batch, 1, 4 * 2 ** i, 4 * 2 ** i).astype("float32"))
            for i in range(step + 1)]


# ---------------------------------------------------------------- numpy references

def conv2d_np(x, w, b=None, padding=0, stride=1):
    """Cross-correlation like torch's conv2d, in float64."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for a in range(kh):
        for c in range(kw):
            patch = x[:, :, a:a + stride * oh:stride, c:c + stride * ow:stride]
            out += np.einsum("nihw,oi->nohw", patch, w[:, :, a, c])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def blur_np(x):
    kernel = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    c = x.shape[1]
    out = np.zeros(x.shape)
    for ch in range(c):
        out[:, ch:ch + 1] = conv2d_np(x[:, ch:ch + 1], kernel.reshape(1, 1, 3, 3), padding=1)
    return out


def avg_pool_np(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def upsample_np(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


def numeric_grad(f, x, eps=1e-6):
    """Central finite differences of a scalar function of a float64 numpy array."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f(x)
        x[idx] = old - eps
        down = f(x)
        x[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


# ---------------------------------------------------------------- equalized learning rate

def test_equal_conv2d_scales_weight_by_sqrt_two_over_fan_in():
    layer = EqualConv2d(3, 5, 3, padding=1)
    layer.conv.bias.update(jt.array(np.random.randn(5).astype("float32")))
    x = np.random.randn(2, 3, 6, 6).astype("float32")
    w = layer.conv.weight_orig.numpy()
    expected = conv2d_np(x, w * math.sqrt(2 / (3 * 3 * 3)), layer.conv.bias.numpy(), padding=1)
    np.testing.assert_allclose(layer(jt.array(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_equal_linear_scales_weight_and_starts_from_unit_normal_and_zero_bias():
    layer = EqualLinear(512, 256)
    w = layer.linear.weight_orig.numpy()
    assert w.shape == (256, 512)
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    assert not layer.linear.bias.numpy().any()
    x = np.random.randn(4, 512).astype("float32")
    expected = x.astype(np.float64) @ (w * math.sqrt(2 / 512)).T.astype(np.float64)
    np.testing.assert_allclose(layer(jt.array(x)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_noise_injection_weight_starts_at_zero_and_is_scaled_by_channels():
    layer = NoiseInjection(4)
    assert not layer.weight_orig.numpy().any()
    weight = np.random.randn(1, 4, 1, 1).astype("float32")
    layer.weight_orig.update(jt.array(weight))
    image = np.random.randn(2, 4, 3, 3).astype("float32")
    noise = np.random.randn(2, 1, 3, 3).astype("float32")
    expected = image + weight * math.sqrt(2 / 4) * noise
    np.testing.assert_allclose(layer(jt.array(image), jt.array(noise)).numpy(), expected,
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- blur

@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 2, 1, 1), (1, 1, 1, 6), (3, 2, 33, 64)])
def test_blur_matches_numpy_depthwise_convolution(shape):
    x = np.random.randn(*shape).astype("float32")
    np.testing.assert_allclose(Blur()(jt.array(x)).numpy(), blur_np(x), rtol=1e-5, atol=1e-6)


def test_blur_gradient_matches_finite_differences():
    x = np.random.randn(1, 2, 4, 4)
    target = np.random.randn(1, 2, 4, 4)

    def loss_np(arr):
        return float((target * np.tanh(blur_np(arr))).sum())

    xv = f64(x)
    loss = (f64(target) * jt.tanh(Blur()(xv))).sum()
    np.testing.assert_allclose(jt.grad(loss, xv).numpy(), numeric_grad(loss_np, x.copy()),
                               rtol=1e-5, atol=1e-7)


def test_blur_second_derivative_matches_finite_differences():
    """The R1 penalty differentiates a gradient again: d/dx |d tanh(blur x).t / dx|^2."""
    x = np.random.randn(1, 2, 4, 4)
    target = np.random.randn(1, 2, 4, 4)

    def penalty(xv):
        loss = (f64(target) * jt.tanh(Blur()(xv))).sum()
        grad = jt.grad(loss, xv)
        return (grad * grad).sum()

    xv = f64(x)
    analytic = jt.grad(penalty(xv), xv).numpy()
    numeric = numeric_grad(lambda arr: penalty(f64(arr)).item(), x.copy())
    assert np.abs(analytic).max() > 1e-3
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- fused up/down-sampling

def test_fused_downsample_equals_conv_then_2x2_average_pool():
    layer = FusedDownsample(3, 4, 3, padding=1)
    layer.bias.update(jt.array(np.random.randn(4).astype("float32")))
    x = np.random.randn(2, 3, 8, 8).astype("float32")
    w = layer.weight.numpy() * math.sqrt(2 / (3 * 9))
    expected = avg_pool_np(conv2d_np(x, w, layer.bias.numpy(), padding=1))
    out = layer(jt.array(x)).numpy()
    assert out.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_fused_upsample_equals_nearest_upsample_then_flipped_conv_over_four():
    """Transposed conv with the box-filtered kernel = upsample + conv with the flipped kernel,
    times 1/4 (the PyTorch original divides the upsampling kernel by 4 too)."""
    layer = FusedUpsample(3, 4, 3, padding=1)
    layer.bias.update(jt.array(np.random.randn(4).astype("float32")))
    x = np.random.randn(2, 3, 5, 5).astype("float32")
    w = layer.weight.numpy() * math.sqrt(2 / (3 * 9))            # (in, out, 3, 3)
    conv_w = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)             # (out, in, 3, 3), flipped
    expected = conv2d_np(upsample_np(x), conv_w, padding=1) / 4 + layer.bias.numpy().reshape(1, -1, 1, 1)
    out = layer(jt.array(x)).numpy()
    assert out.shape == (2, 4, 10, 10)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- normalisations

def test_pixel_norm_matches_numpy():
    x = np.random.randn(4, 16).astype("float32") * 3
    expected = x / np.sqrt((x.astype(np.float64) ** 2).mean(axis=1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(PixelNorm()(jt.array(x)).numpy(), expected, rtol=1e-5)


def test_adaptive_instance_norm_matches_numpy_and_starts_as_identity_affine():
    layer = AdaptiveInstanceNorm(3, 6)
    bias = layer.style.linear.bias.numpy()
    np.testing.assert_array_equal(bias, [1, 1, 1, 0, 0, 0])
    x = (np.random.randn(2, 3, 5, 5) * 2 + 1).astype("float32")
    style = np.random.randn(2, 6).astype("float32")
    w = layer.style.linear.weight_orig.numpy() * math.sqrt(2 / 6)
    gamma_beta = style.astype(np.float64) @ w.T + bias
    gamma, beta = gamma_beta[:, :3, None, None], gamma_beta[:, 3:, None, None]
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)
    expected = gamma * (x - mean) / np.sqrt(var + 1e-5) + beta
    np.testing.assert_allclose(layer(jt.array(x), jt.array(style)).numpy(), expected,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.cpu_only
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (1, 2, 64, 48)])
def test_noise_lrelu_adain_in_one_operator_matches_numpy_and_the_modules(shape, with_bias):
    """Generation on the CPU runs noise, LeakyReLU and AdaIN as one operator (adding the bias
    of the convolution before, when given); with gradients they stay modules. Both against
    numpy."""
    n, c, h, w = shape
    noise_layer, lrelu, adain = NoiseInjection(c), jt.nn.LeakyReLU(0.2), AdaptiveInstanceNorm(c, 6)
    noise_layer.weight_orig = jt.array(np.random.randn(1, c, 1, 1).astype("float32"))
    x = (np.random.randn(*shape) * 2 + 0.5).astype("float32")
    noise = np.random.randn(n, 1, h, w).astype("float32")
    style = np.random.randn(n, 6).astype("float32")
    bias = np.random.randn(c).astype("float32") if with_bias else None
    t = x + (0 if bias is None else bias.reshape(1, c, 1, 1)) + \
        noise_layer.weight_orig.numpy() * math.sqrt(2 / c) * noise
    t = np.where(t > 0, t, 0.2 * t).astype(np.float64)
    gamma_beta = style @ (adain.style.linear.weight_orig.numpy().T * math.sqrt(2 / 6)) + \
        adain.style.linear.bias.numpy()
    gamma, beta = gamma_beta[:, :c, None, None], gamma_beta[:, c:, None, None]
    expected = gamma * (t - t.mean(axis=(2, 3), keepdims=True)) / np.sqrt(
        t.var(axis=(2, 3), keepdims=True) + 1e-5) + beta

    def run():
        return model.noise_lrelu_adain(jt.array(x), jt.array(noise), noise_layer, lrelu, adain,
                                       jt.array(style),
                                       None if bias is None else jt.array(bias)).numpy()
    with jt.no_grad():
        assert cpu_generation.noise_lrelu_adain_serves(jt.array(x), jt.array(noise))
        fused = run()
    assert not cpu_generation.noise_lrelu_adain_serves(jt.array(x), jt.array(noise))
    for got in (fused, run()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.cpu_only
def test_blur_operator_adds_a_bias_first_as_the_blur_of_the_biased_input():
    x = np.random.randn(2, 3, 7, 5).astype("float32")
    bias = np.random.randn(3).astype("float32")
    expected = blur_np(x.astype(np.float64) + bias.reshape(1, 3, 1, 1))   # zero padding after
    np.testing.assert_allclose(blur_cpu(jt.array(x), jt.array(bias)).numpy(), expected,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(blur_cpu(jt.array(x)).numpy(), blur_np(x), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.cpu_only
def test_generation_adding_each_bias_in_the_next_operator_draws_what_the_modules_draw(
        monkeypatch):
    """Generation on the CPU leaves the convolutions' bias to the blur or to the noise +
    LeakyReLU + AdaIN operator after them; with gradients every module runs. Random weights and
    biases (they start at zero), through the nearest-upsample blocks and the fused ones."""
    generator = StyledGenerator(8, n_mlp=2, width=8)
    rng = np.random.default_rng(3)
    generator.load_parameters({name: (rng.normal(size=p.shape) * 0.5).astype("float32")
                               for name, p in generator.named_parameters()})
    step = 5                                               # 128 px: blocks 1-4 nearest, 5 fused
    z = jt.array(rng.normal(size=(2, 8)).astype("float32"))
    noise = [jt.array(rng.normal(size=(2, 1, 4 * 2 ** i, 4 * 2 ** i)).astype("float32"))
             for i in range(step + 1)]
    deferred = []
    real = model.conv_deferring_bias
    monkeypatch.setattr(model, "conv_deferring_bias",
                        lambda layer, x: deferred.append(1) or real(layer, x))
    with jt.no_grad():
        fast = generator(z, noise=noise, step=step, alpha=0.5).numpy()
    assert len(deferred) == 2 * (step + 1)                 # conv1 and conv2 of every block
    modules = generator(z, noise=noise, step=step, alpha=0.5).numpy()   # gradients: modules
    assert len(deferred) == 2 * (step + 1)
    np.testing.assert_allclose(fast, modules, rtol=1e-5, atol=1e-5)
    assert np.abs(fast).max() > 0.1


# ---------------------------------------------------------------- minibatch standard deviation

def test_minibatch_stddev_value_matches_numpy():
    x = np.random.randn(5, 3, 4, 4).astype("float32")
    out = minibatch_stddev(jt.array(x)).numpy()
    expected = np.sqrt(x.astype(np.float64).var(axis=0) + 1e-8).mean()
    assert out.shape == (5, 4, 4, 4)
    np.testing.assert_array_equal(out[:, :3], x)
    np.testing.assert_allclose(out[:, 3], np.full((5, 4, 4), expected), rtol=1e-5)


def test_minibatch_stddev_gradient_matches_finite_differences():
    x = np.random.randn(3, 2, 4, 4)
    weight = np.random.randn(3, 3, 4, 4)

    def f_np(arr):
        std = np.sqrt(arr.var(axis=0) + 1e-8).mean()
        return float((weight[:, :2] * arr).sum() + (weight[:, 2] * std).sum())

    xv = f64(x)
    analytic = jt.grad((f64(weight) * minibatch_stddev(xv)).sum(), xv).numpy()
    np.testing.assert_allclose(analytic, numeric_grad(f_np, x.copy()), rtol=1e-5, atol=1e-7)


def test_discriminator_input_gradient_flows_through_minibatch_stddev():
    """In float64, D's directional derivative at 4 px equals finite differences; with the stddev
    channel detached (as the Jittor reference computes it) a visible part of it is missing."""
    d = Discriminator(width=WIDTH)
    for p in d.parameters():
        p.assign(p.float64())
    x = np.random.randn(4, 3, 4, 4)
    v = np.random.randn(4, 3, 4, 4)
    eps = 1e-6
    numeric = (d(f64(x + eps * v), step=0).sum().item()
               - d(f64(x - eps * v), step=0).sum().item()) / (2 * eps)

    def directional_derivative():
        xv = f64(x)
        return float((jt.grad(d(xv, step=0).sum(), xv).numpy() * v).sum())

    assert directional_derivative() == pytest.approx(numeric, rel=1e-6)
    original = model.minibatch_stddev
    try:
        model.minibatch_stddev = lambda out: jt.concat([out, original(out)[:, -1:].detach()], dim=1)
        cut = directional_derivative()
    finally:
        model.minibatch_stddev = original
    assert abs(cut - numeric) > 1e-3 * abs(numeric)


# ---------------------------------------------------------------- whole networks

def test_output_shapes_for_every_step():
    g = small_generator()
    d = Discriminator(width=WIDTH)
    z = jt.randn(1, CODE)
    for step in range(model.MAX_STEP + 1):
        size = 4 * 2 ** step
        image = g(z, step=step, alpha=0.5)
        assert tuple(image.shape) == (1, 3, size, size)
        assert tuple(d(image, step=step, alpha=0.5).shape) == (1, 1)


def test_generator_alpha_zero_is_upsampled_previous_rgb_and_alpha_one_is_new_branch():
    g = small_generator()
    z = jt.randn(3, CODE)
    noise = fixed_noise(3, 2)
    previous = g(z, noise=noise[:2], step=1).numpy()
    new_branch = g(z, noise=noise, step=2).numpy()
    np.testing.assert_allclose(g(z, noise=noise, step=2, alpha=0).numpy(), upsample_np(previous),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(g(z, noise=noise, step=2, alpha=1).numpy(), new_branch)
    half = g(z, noise=noise, step=2, alpha=0.25).numpy()
    np.testing.assert_allclose(half, 0.75 * upsample_np(previous) + 0.25 * new_branch,
                               rtol=1e-4, atol=1e-5)


def test_discriminator_alpha_zero_scores_the_pooled_image_and_alpha_one_the_new_branch():
    d = Discriminator(width=WIDTH)
    x = np.random.randn(3, 3, 16, 16).astype("float32")
    np.testing.assert_allclose(d(jt.array(x), step=2, alpha=0).numpy(),
                               d(jt.array(avg_pool_np(x).astype("float32")), step=1).numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(d(jt.array(x), step=2, alpha=1).numpy(),
                                  d(jt.array(x), step=2).numpy())


def record_block_styles(g, monkeypatch):
    """Patch every synthesis block to record the style it receives."""
    seen = {}
    for i, block in enumerate(g.generator.progression):
        original = block.execute

        def spy(input, style, noise, i=i, original=original):
            seen[i] = style.numpy()
            return original(input, style, noise)
        monkeypatch.setattr(block, "execute", spy)
    return seen


@pytest.mark.parametrize("mixing_range", [(0, 1), (2, 3), (1, 2)])
def test_mixing_range_gives_the_second_style_to_exactly_the_layers_in_range(mixing_range, monkeypatch):
    g = small_generator()
    z1, z2 = jt.randn(2, CODE), jt.randn(2, CODE)
    w1, w2 = g.style(z1).numpy(), g.style(z2).numpy()
    seen = record_block_styles(g, monkeypatch)
    g([z1, z2], step=3, mixing_range=mixing_range)
    assert sorted(seen) == [0, 1, 2, 3]
    for i, style in seen.items():
        expected = w2 if mixing_range[0] <= i <= mixing_range[1] else w1
        np.testing.assert_allclose(style, expected, rtol=1e-6)


def test_mixing_range_only_layers_in_range_respond_to_the_second_latent():
    g = small_generator()
    z1, z2, z2_other = jt.randn(2, CODE), jt.randn(2, CODE), jt.randn(2, CODE)
    noise = fixed_noise(2, 3)
    a = g([z1, z2], noise=noise, step=3, mixing_range=(0, 1)).numpy()
    b = g([z1, z2_other], noise=noise, step=3, mixing_range=(0, 1)).numpy()
    assert np.abs(a - b).max() > 1e-3
    # outside the range the second latent is not used at all
    c = g([z1, z2], noise=noise, step=3, mixing_range=(4, 8)).numpy()
    d = g([z1, z2_other], noise=noise, step=3, mixing_range=(4, 8)).numpy()
    np.testing.assert_array_equal(c, d)


def test_random_style_mixing_switches_once_from_first_to_second_style(monkeypatch):
    g = small_generator()
    z1, z2 = jt.randn(2, CODE), jt.randn(2, CODE)
    w1, w2 = g.style(z1).numpy(), g.style(z2).numpy()
    seen = record_block_styles(g, monkeypatch)
    crossovers = set()
    for seed in range(12):
        random.seed(seed)
        g([z1, z2], step=3)
        uses_second = [bool(np.allclose(seen[i], w2)) for i in range(4)]
        for i in range(4):
            assert np.allclose(seen[i], w2 if uses_second[i] else w1)
        first = uses_second.index(True)
        assert uses_second == [False] * first + [True] * (4 - first) and first >= 1
        crossovers.add(first)
    assert len(crossovers) > 1


def test_style_weight_zero_with_mean_style_makes_every_sample_the_same():
    g = small_generator()
    mean_style = g.mean_style(jt.randn(64, CODE))
    assert tuple(mean_style.shape) == (1, CODE)
    noise = [n[:1].repeat(4, 1, 1, 1) for n in fixed_noise(1, 2)]
    images = g(jt.randn(4, CODE), noise=noise, step=2, mean_style=mean_style,
               style_weight=0).numpy()
    for k in range(1, 4):
        np.testing.assert_allclose(images[k], images[0], rtol=1e-5, atol=1e-6)
    untruncated = g(jt.randn(4, CODE), noise=noise, step=2).numpy()
    assert np.abs(untruncated[1] - untruncated[0]).max() > 1e-3


def test_r1_penalty_backpropagates_into_every_discriminator_parameter_in_use():
    d = Discriminator(width=WIDTH, from_rgb_activate=True)
    real = jt.array(np.random.randn(4, 3, 8, 8).astype("float32"))
    score = d(real, step=1, alpha=0.5)
    grad_real = jt.grad(score.sum(), real)
    r1 = 10 / 2 * (grad_real * grad_real).reshape((4, -1)).sum(1).mean()
    used = {name: p for name, p in d.named_parameters()
            if name.startswith(("progression.7.", "progression.8.", "from_rgb.7.", "from_rgb.8."))
            and "weight_orig" in name}
    grads = jt.grad(r1, list(used.values()))
    assert r1.item() > 0
    for (name, _), grad in zip(used.items(), grads):
        assert np.abs(grad.numpy()).max() > 0, name


# ---------------------------------------------------------------- state dicts

def read_key_list(name):
    path = os.path.join(REFERENCE_DIR, name)
    if not os.path.exists(path):
        pytest.skip(f"reference key list {path} not found")
    keys = {}
    with open(path) as f:
        for line in f:
            key, shape = line.rstrip("\n").split("\t")
            keys[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return keys


def shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_state_dict_keys_and_shapes_equal_the_reference():
    assert shapes(StyledGenerator()) == read_key_list("jittor_reference_G_parameters.txt")
    assert shapes(Discriminator(from_rgb_activate=True)) == read_key_list(
        "jittor_reference_D_parameters.txt")
    plain = {k.replace(".0.conv.", ".conv.") if k.startswith("from_rgb.") else k: v
             for k, v in read_key_list("jittor_reference_D_parameters.txt").items()}
    assert shapes(Discriminator()) == plain


def reference_style_state_dict(g):
    """What the reference writes: parameters, plus EqualLR's derived ``weight`` (Jittor port)
    and Blur kernel buffers (PyTorch original)."""
    state = {k: v.numpy() for k, v in g.state_dict().items()}
    extras = {}
    for key, value in state.items():
        if key.endswith(".weight_orig"):
            fan_in = int(np.prod(value.shape[1:]))
            extras[key[:-len("_orig")]] = value * math.sqrt(2 / fan_in)
    blur = np.tile((np.outer([1, 2, 1], [1, 2, 1]) / 16).astype("float32"), (WIDTH, 1, 1, 1))
    extras["generator.progression.1.conv1.2.weight"] = blur.reshape(WIDTH, 1, 3, 3)
    extras["generator.progression.1.conv1.2.weight_flip"] = blur.reshape(WIDTH, 1, 3, 3)
    state.update(extras)
    return state


def test_reference_format_state_dict_round_trips_through_jt_save_and_load(tmp_path):
    source = small_generator(n_mlp=8)
    path = str(tmp_path / "reference.model")
    jt.save(reference_style_state_dict(source), path)
    target = small_generator(n_mlp=8)
    target.load_state_dict(jt.load(path))
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    z = jt.randn(2, CODE)
    noise = fixed_noise(2, 3)
    np.testing.assert_array_equal(target(z, noise=noise, step=3).numpy(),
                                  source(z, noise=noise, step=3).numpy())


def test_load_state_dict_rejects_other_width_and_missing_keys():
    state = {k: v.numpy() for k, v in StyledGenerator(code_dim=CODE, n_mlp=2, width=16).state_dict().items()}
    with pytest.raises(ValueError, match="shape"):
        small_generator().load_state_dict(state)
    state = {k: v.numpy() for k, v in small_generator().state_dict().items()}
    del state["style.1.linear.bias"]
    with pytest.raises(ValueError, match="missing 1 keys"):
        small_generator().load_state_dict(state)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("step", [-1, 9, 2.0])
def test_step_outside_range_is_rejected_with_the_expected_range(step):
    with pytest.raises(ValueError, match="step must be an integer from 0"):
        small_generator()(jt.randn(1, CODE), step=step)
    with pytest.raises(ValueError, match="step must be an integer from 0"):
        Discriminator(width=WIDTH)(jt.randn(1, 3, 4, 4), step=step)


def test_latent_of_wrong_size_is_rejected_with_the_expected_shape():
    with pytest.raises(ValueError, match=r"shape \(batch, 8\), got \(2, 5\)"):
        small_generator()(jt.randn(2, 5), step=0)


def test_noise_list_of_wrong_length_is_rejected_with_the_expected_length():
    with pytest.raises(ValueError, match="step \\+ 1 = 3 maps"):
        small_generator()(jt.randn(2, CODE), noise=fixed_noise(2, 1), step=2)


def test_discriminator_rejects_images_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"\(batch, 3, 8, 8\)"):
        Discriminator(width=WIDTH)(jt.randn(1, 3, 16, 16), step=1)

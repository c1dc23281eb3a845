"""The portable path (``STYLEGAN_PORTABLE=1``, ops/portable.py: plain Jittor operators, the code
CUDA runs) against the CPU path (the oneDNN convolution operator, the C++ blur, the fused
generation kernels) on the same weights and inputs, switched within one process.

Spies count the calls of each path's kernels, so every comparison is known to compare two
different computations. Differences are measured on the scale of the values compared:
max |portable - cpu| / max |cpu| over a whole output, or over all the parameter gradients of a
network at once. Per tensor they can be larger for R1's gradients with respect to biases: those
come from second-order terms that largely cancel (a bias shifts every image alike), some are
rounding noise, and at 128 px each path, the CPU path included, differed from a float64 run of
the portable path by up to 7e-4 of such a tensor's own largest value, while staying within 1e-5
of the network's largest gradient.
"""
import numpy as np
import pytest

import jittor as jt
import model
from model import Discriminator, StyledGenerator
from ops import blur, onednn_conv, portable
from training.losses import r1_discriminator_loss

OUTPUT_TOLERANCE = 1e-5      # relative, for images, scores and the R1 penalty
GRADIENT_TOLERANCE = 1e-4    # relative, for gradients (R1's double backward included)
BATCH = 3                    # more than one image: the fused generation path needs a batch
CODE_DIM, N_MLP, WIDTH = 8, 2, 8
# (step, alpha): 4 px; 16 px fading in; 128 px (the first fused up/down-sampling) faded in and
# fading in
CASES = [(0, -1), (2, 0.5), (5, 1), (5, 0.3)]
CPU_KERNELS = ("blur_cpu", "onednn_operator", "fused_generation")

pytestmark = pytest.mark.skipif(jt.flags.use_cuda, reason="under CUDA the CPU path does not run")


class KernelSpy:
    """Counts the calls of the CPU path's kernels and of the portable blur, passing each call on
    unchanged; ``run`` computes on one path and checks that path's kernels (and only those) ran."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.counts = {}
        for module, attribute, name in ((blur, "blur_cpu", "blur_cpu"),
                                        (model, "blur_cpu", "blur_cpu"),
                                        (onednn_conv, "_pass", "onednn_operator"),
                                        (model.StyledConvBlock, "execute_fused",
                                         "fused_generation"),
                                        (blur, "blur_conv", "blur_conv")):
            self._count(module, attribute, name)
        self.use("cpu")
        self.onednn_on_cpu = onednn_conv.available()   # False where Jittor runs without oneDNN

    def _count(self, module, attribute, name):
        original = getattr(module, attribute)
        self.counts[name] = 0

        def counted(*args, **kwargs):
            self.counts[name] += 1
            return original(*args, **kwargs)
        self.monkeypatch.setattr(module, attribute, counted)

    def use(self, path):
        if path == "portable":
            self.monkeypatch.setenv(portable.ENV_SWITCH, "1")
        else:
            self.monkeypatch.delenv(portable.ENV_SWITCH, raising=False)

    def run(self, path, compute, blurs, fused):
        """``compute()`` on ``path``; ``blurs``: the networks blur at this step; ``fused``: the
        CPU path generates through the fused kernels."""
        self.use(path)
        self.counts = dict.fromkeys(self.counts, 0)
        result = compute()
        ran = {name for name, count in self.counts.items() if count}
        if path == "portable":
            expected = {"blur_conv"} if blurs else set()
        else:
            expected = ({"blur_cpu"} if blurs else set()) | (
                {"onednn_operator"} if self.onednn_on_cpu else set()) | (
                {"fused_generation"} if fused else set())
        assert ran == expected, (path, self.counts)
        return result


@pytest.fixture
def spy(monkeypatch):
    return KernelSpy(monkeypatch)


def perturbed(network, seed):
    """``network`` with every parameter moved off its initial value (noise weights and biases
    start at zero, AdaIN as the identity), so that every term of the forward pass counts."""
    rng = np.random.default_rng(seed)
    network.load_parameters({
        name: (value.numpy() + 0.3 * rng.standard_normal(value.shape)).astype(np.float32)
        for name, value in network.state_dict().items()})
    return network


@pytest.fixture(scope="module")
def generator():
    jt.set_global_seed(0)
    return perturbed(StyledGenerator(CODE_DIM, N_MLP, width=WIDTH), 1)


@pytest.fixture(scope="module")
def discriminator():
    jt.set_global_seed(1)
    return perturbed(Discriminator(from_rgb_activate=True, width=WIDTH), 2)


def normal(rng, *shape):
    return jt.array(rng.standard_normal(shape).astype(np.float32))


def relative_difference(actual, expected):
    """max |actual - expected| / max |expected|, over one array or a list of them taken as one."""
    if isinstance(expected, list):
        actual, expected = (np.concatenate([a.ravel() for a in x]) for x in (actual, expected))
    scale = np.abs(expected).max()
    assert scale > 0, "nothing to compare: the values are all zero"
    return np.abs(actual - expected).max() / scale


def parameters(network, step, alpha):
    return [p for module in network.modules_in_use(step, alpha) for p in module.parameters()]


def generator_inputs(step):
    rng = np.random.default_rng(10 + step)
    size = 4 * 2 ** step
    return (normal(rng, BATCH, CODE_DIM),
            [normal(rng, BATCH, 1, 4 * 2 ** i, 4 * 2 ** i) for i in range(step + 1)],
            normal(rng, BATCH, 3, size, size))


@pytest.mark.parametrize("step, alpha", CASES)
def test_generation_draws_on_the_portable_path_what_the_fused_cpu_path_draws(
        spy, generator, step, alpha):
    latent, noise, _ = generator_inputs(step)

    def draw():
        with jt.no_grad():
            return generator(latent, noise=noise, step=step, alpha=alpha).numpy()

    cpu = spy.run("cpu", draw, blurs=step > 0, fused=True)
    on_portable = spy.run("portable", draw, blurs=step > 0, fused=False)
    assert relative_difference(on_portable, cpu) <= OUTPUT_TOLERANCE


@pytest.mark.parametrize("step, alpha", CASES)
def test_generator_images_and_parameter_gradients_agree_on_both_paths(
        spy, generator, step, alpha):
    latent, noise, weights = generator_inputs(step)
    used = parameters(generator, step, alpha)

    def train():
        images = generator(latent, noise=noise, step=step, alpha=alpha)
        return images.numpy(), [g.numpy() for g in jt.grad((images * weights).sum(), used)]

    cpu_images, cpu_grads = spy.run("cpu", train, blurs=step > 0, fused=False)
    images, grads = spy.run("portable", train, blurs=step > 0, fused=False)
    assert relative_difference(images, cpu_images) <= OUTPUT_TOLERANCE
    assert relative_difference(grads, cpu_grads) <= GRADIENT_TOLERANCE


@pytest.mark.parametrize("step, alpha", CASES)
def test_discriminator_scores_r1_penalty_and_its_double_backward_agree_on_both_paths(
        spy, discriminator, step, alpha):
    rng = np.random.default_rng(20 + step)
    size = 4 * 2 ** step
    real, fake = normal(rng, BATCH, 3, size, size), normal(rng, BATCH, 3, size, size)
    used = parameters(discriminator, step, alpha)

    def train():
        scores = discriminator(real, step=step, alpha=alpha)
        input_grad = jt.grad(scores.sum(), real)
        total, _, penalty = r1_discriminator_loss(discriminator, real, fake, step, alpha)
        return (scores.numpy(), input_grad.numpy(), penalty.numpy(),
                [g.numpy() for g in jt.grad(penalty, used)],      # R1's double backward alone
                [g.numpy() for g in jt.grad(total, used)])

    cpu = spy.run("cpu", train, blurs=step > 0, fused=False)
    on_portable = spy.run("portable", train, blurs=step > 0, fused=False)
    for what, portable_value, cpu_value, tolerance in zip(
            ("scores", "input gradient", "R1 penalty", "R1 gradients", "loss gradients"),
            on_portable, cpu, (OUTPUT_TOLERANCE, GRADIENT_TOLERANCE, OUTPUT_TOLERANCE,
                               GRADIENT_TOLERANCE, GRADIENT_TOLERANCE)):
        assert relative_difference(portable_value, cpu_value) <= tolerance, what


@pytest.mark.parametrize("value, enabled", [(None, False), ("", False), ("0", False),
                                            ("1", True), ("yes", True)])
def test_the_switch_is_read_from_the_environment_at_every_call(monkeypatch, value, enabled):
    monkeypatch.setenv(portable.ENV_SWITCH, "1")
    assert portable.enabled()
    if value is None:
        monkeypatch.delenv(portable.ENV_SWITCH)
    else:
        monkeypatch.setenv(portable.ENV_SWITCH, value)
    assert portable.enabled() is enabled

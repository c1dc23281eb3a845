"""bench.py's analytic FLOP counts against the layers the networks really run.

The independent count hooks every convolution and linear layer of a narrow StyledGenerator and
Discriminator, reads the shapes of its weight, input and output during a forward pass, and adds
2 x multiply-adds; bench.py counts from the channel tables alone. They must agree exactly.
"""
import numpy as np
import pytest

import jittor_env  # noqa: F401
import jittor as jt

import bench
import model
from model import Discriminator, StyledGenerator, size_for_step

CODE = 8
WIDTH = 8
BATCH = 2


def counted_flops(network, run):
    """2 x multiply-adds of every conv / linear layer that ``run()`` executes in ``network``."""
    total = []

    def conv(module, inputs, output):
        weight = module.weight_orig
        out_channels, in_channels, k, _ = weight.shape
        n, _, h, w = output.shape
        total.append(2 * n * out_channels * in_channels * k * k * h * w)

    def linear(module, inputs, output):
        out_dim, in_dim = module.weight_orig.shape
        total.append(2 * output.shape[0] * out_dim * in_dim)

    def fused_up(module, inputs, output):
        # transposed conv: every input pixel meets the whole (k+1) x (k+1) box-filtered kernel
        in_channels, out_channels, k, _ = module.weight.shape
        n, _, h, w = inputs[0].shape
        total.append(2 * n * in_channels * out_channels * (k + 1) ** 2 * h * w)

    def fused_down(module, inputs, output):
        out_channels, in_channels, k, _ = module.weight.shape
        n, _, h, w = output.shape
        total.append(2 * n * out_channels * in_channels * (k + 1) ** 2 * h * w)

    hooks = {model.ScaledWeightConv2d: conv, model.ScaledWeightLinear: linear,
             model.FusedUpsample: fused_up, model.FusedDownsample: fused_down}
    hooked = []
    for module in network.modules():
        for kind, hook in hooks.items():
            if type(module) is kind:
                module.register_forward_hook(hook)
                hooked.append(module)
    with jt.no_grad():
        run()
    for module in hooked:
        module.remove_forward_hook()
    return sum(total)


@pytest.mark.parametrize("step", [0, 1, 3, 5])
def test_generator_flops_match_the_layers_it_runs(step):
    generator = StyledGenerator(code_dim=CODE, width=WIDTH)
    latents = [jt.randn(BATCH, CODE), jt.randn(BATCH, CODE)]
    counted = counted_flops(generator, lambda: generator(latents, step=step, alpha=1).sync())
    assert counted == BATCH * bench.generator_flops(step, WIDTH, CODE, latents=2)
    assert counted > 0


@pytest.mark.parametrize("step", [0, 1, 3, 5])
def test_discriminator_flops_match_the_layers_it_runs(step):
    discriminator = Discriminator(width=WIDTH)
    size = size_for_step(step)
    images = jt.randn(BATCH, 3, size, size)
    counted = counted_flops(discriminator,
                            lambda: discriminator(images, step=step, alpha=1).sync())
    assert counted == BATCH * bench.discriminator_flops(step, WIDTH)


def test_flop_formulas_by_hand():
    assert bench.conv_flops(3, 4, 3, 5) == 2 * 3 * 4 * 9 * 25
    assert bench.linear_flops(7, 5) == 70
    # 4 px generator, width 512: mapping 8 x 512^2, two AdaIN linears 512 -> 1024, the 3x3 conv
    # 512 -> 512 on 4x4 (the constant input needs no conv1), the 1x1 to-RGB 512 -> 3.
    expected = 2 * (8 * 512 * 512 + 2 * 512 * 1024 + 512 * 512 * 9 * 16 + 512 * 3 * 16)
    assert bench.generator_flops(0) == expected
    # A training iteration is 4 generator and 11 discriminator forwards per image.
    assert bench.training_flops(0, 3) == 3 * (4 * bench.generator_flops(0, latents=2)
                                              + 11 * bench.discriminator_flops(0))


def test_compile_log_is_parsed_and_other_lines_pass_through(capfd):
    import os
    with bench.jittor_compile_log() as compiled:
        os.write(2, b"\rCompiling Operators(3/3) used: 1.5s eta: 0s \n")
        os.write(2, b"\rCompiling Operators(2/2) used: 0.25s eta: 0s \n")
    assert compiled == dict(ops=5, seconds=1.75)
    with bench.jittor_compile_log() as compiled:
        os.write(2, b"a real warning\n")
    assert compiled == dict(ops=0, seconds=0.0)
    assert "a real warning" in capfd.readouterr().err


def test_table_row_arithmetic():
    timing = (4.0, dict(ops=7, seconds=3.0), [0.5, 0.25, 1.0])
    r = bench.row("x", 8, 16, timing, flops=2e9, peak=10.0)
    assert r["median"] == 0.5 and r["images"] == 32
    assert np.isclose(r["gflops"], 4.0) and np.isclose(r["peak"], 40.0)
    assert r["compile"] == 3.0 and r["compiled_ops"] == 7

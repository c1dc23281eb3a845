"""The networks' shapes, without Jittor: channels and image size per progression step, and the
FLOPs of a forward pass and of a training iteration counted from them. model.py builds its
layers from these; tools/bench.py and tools/torch_bench.py (which runs under PyTorch alone)
count FLOPs with them.

Resolutions are indexed by ``step``: step s works at 4 * 2**s px, so steps 0..8 are 4..1024 px.
"""
from math import log2

MAX_STEP = 8                      # 4 * 2**8 = 1024 px
REFERENCE_WIDTH = 512             # channels of the reference's low-resolution blocks
N_MLP = 8                         # the reference's mapping network: 8 EqualLinear layers

# Output channels of the generator's blocks for 4, 8, ..., 1024 px, at the reference width.
GENERATOR_CHANNELS = (512, 512, 512, 512, 256, 128, 64, 32, 16)
# The first step whose up/down-sampling is fused with its convolution (128 px), as the reference.
FIRST_FUSED_STEP = 5


def size_for_step(step):
    """Image side in pixels produced at progression step ``step``."""
    return 4 * 2 ** step


def step_for_size(size):
    """Progression step for an image side ``size`` (a power of two from 4 to 1024)."""
    step = int(round(log2(size))) - 2 if size > 0 else -1
    if not 0 <= step <= MAX_STEP or size_for_step(step) != size:
        raise ValueError(f"image size must be a power of two from 4 to 1024, got {size}")
    return step


def check_step(step):
    if not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise ValueError(f"step must be an integer from 0 (4 px) to {MAX_STEP} (1024 px), got {step!r}")


def scaled_channels(reference_channels, width):
    """Channels of a layer that has ``reference_channels`` at the reference width 512."""
    return max(1, reference_channels * width // REFERENCE_WIDTH)


# ------------------------------------------------------------------------------------------------
# FLOPs, counted from the layer shapes
# ------------------------------------------------------------------------------------------------

def conv_flops(c_in, c_out, kernel, out_size):
    """Multiply-adds x 2 of one image through a k x k convolution with out_size^2 outputs."""
    return 2 * c_in * c_out * kernel * kernel * out_size * out_size


def linear_flops(d_in, d_out):
    return 2 * d_in * d_out


def generator_flops(step, width=REFERENCE_WIDTH, code_dim=512, n_mlp=N_MLP, latents=1):
    """Forward FLOPs of one image through ``StyledGenerator`` at ``step`` (alpha 1).

    Mapping network once per latent; per block an AdaIN style linear for each of its two
    layers; conv1 (3x3 after nearest upsampling, or the fused 4x4 transposed conv from 128 px:
    16 taps per input pixel) and conv2 (3x3); the final 1x1 to-RGB."""
    channels = [scaled_channels(c, width) for c in GENERATOR_CHANNELS]
    flops = latents * n_mlp * linear_flops(code_dim, code_dim)
    for i in range(step + 1):
        size, c = size_for_step(i), channels[i]
        flops += 2 * linear_flops(code_dim, 2 * c)
        if i >= FIRST_FUSED_STEP:
            flops += conv_flops(channels[i - 1], c, 4, size // 2)
        elif i > 0:
            flops += conv_flops(channels[i - 1], c, 3, size)
        flops += conv_flops(c, c, 3, size)
    return flops + conv_flops(channels[step], 3, 1, size_for_step(step))


def discriminator_flops(step, width=REFERENCE_WIDTH):
    """Forward FLOPs of one image through ``Discriminator`` at ``step`` (alpha 1): from-RGB 1x1,
    per block a 3x3 conv and a 3x3 conv (or the fused 4x4 stride-2 conv from 128 px), the last
    block's 3x3 conv on C + 1 channels and its 4x4 conv to 1x1, the final linear."""
    c = [scaled_channels(ch, width) for ch in reversed(GENERATOR_CHANNELS)]
    flops = conv_flops(3, c[MAX_STEP - step], 1, size_for_step(step))
    for i in range(step, 0, -1):
        index, size = MAX_STEP - i, size_for_step(i)
        flops += conv_flops(c[index], c[index + 1], 3, size)
        if i >= FIRST_FUSED_STEP:
            flops += conv_flops(c[index + 1], c[index + 1], 4, size // 2)
        else:
            flops += conv_flops(c[index + 1], c[index + 1], 3, size)
    last = c[MAX_STEP]
    flops += conv_flops(last + 1, last, 3, 4) + conv_flops(last, last, 4, 1)
    return flops + linear_flops(last, 1)


def training_flops(step, batch, width=REFERENCE_WIDTH, code_dim=512, n_mlp=N_MLP):
    """FLOPs of one training iteration, counted in forward passes (F_G, F_D per image).

    Rule: a backward pass costs 2 forwards (input and weight gradients), 1 where only input
    gradients are needed. D step: G forward (1 F_G), D forward on reals and fakes (2 F_D), R1's
    input gradient (1 F_D), backward of the loss through the real and fake passes (4 F_D) and
    through R1's gradient graph, the double backward (2 F_D). G step: G forward (1 F_G), D
    forward (1 F_D), input gradients through D (1 F_D), G backward (2 F_G). Total 4 F_G + 11 F_D;
    R1 accounts for 3 F_D of it. Mapping network counted for two latents (style mixing)."""
    f_g = generator_flops(step, width, code_dim, n_mlp, latents=2)
    return batch * (4 * f_g + 11 * discriminator_flops(step, width))

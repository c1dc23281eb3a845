"""StyleGAN v1 in Jittor: style-based generator and progressive discriminator.

A faithful port of rosinality/style-based-gan-pytorch (``model.py``) by way of the Jittor port
xUhEngwAng/StyleGAN-jittor. Same layers, same maths, same state-dict key names and shapes, so a
generator state dict written by either reference loads here. The classes come in the PyTorch
original's order, so the two files read side by side: equalized-learning-rate layers, fused
up/down-sampling, PixelNorm, Blur, the equalized conv and linear layers, the discriminator's
ConvBlock, AdaIN, noise injection, the constant input, the styled conv block, then the networks
(Karras et al. 2019, "A Style-Based Generator Architecture for GANs").

The kernels live in ``ops/``: the blur (``ops.blur``), the oneDNN convolution
(``ops.onednn_conv``) and, for generation on the CPU, fused operators that ``StyledConvBlock``
reaches through one hook (``ops.cpu_generation``). The module path written here is what training
and CUDA run.

Resolutions are indexed by ``step``: step s works at 4 * 2**s px, so steps 0..8 are 4..1024 px.
The optional ``width`` argument narrows every layer (``width / 512`` of the reference's channels)
for tests and CPU runs; the default is the reference network.
"""
import random
from math import sqrt

import jittor as jt
from jittor import nn

from ops import cpu_generation, onednn_conv
from networks.shapes import (FIRST_FUSED_STEP, GENERATOR_CHANNELS, MAX_STEP,  # noqa: F401
                              REFERENCE_WIDTH, check_step, scaled_channels, size_for_step,
                              step_for_size)   # (step_for_size: for the scripts, from here)
from files.state_dicts import fit_state_dict
from ops.blur import blur, blur_cpu

LEAKY_SLOPE = 0.2                 # LeakyReLU slope everywhere, as in the paper
PIXEL_NORM_EPS = 1e-8
INSTANCE_NORM_EPS = 1e-5          # torch.nn.InstanceNorm2d's default, used by the reference
SINGLE_PASS_PIXELS = 128 * 128    # spatial means up to 128 px in one pass (see spatial_mean)
MBSTD_EPS = 1e-8                  # minibatch-stddev: sqrt(var + eps), as the PyTorch original


def he_scale(fan_in):
    """Equalized learning rate (ProGAN section 4.1): weights stored N(0, 1), scaled at run time."""
    return sqrt(2 / fan_in)


def noise_shapes(step, batch):
    """Shapes of the per-resolution noise maps of a forward pass at ``step``: one
    (batch, 1, 4 * 2**i, 4 * 2**i) map for each synthesis layer i = 0..step (paper section 3.2)."""
    return [(batch, 1, size_for_step(i), size_for_step(i)) for i in range(step + 1)]


def check_latent(latent, code_dim, what="latent"):
    """ValueError unless ``latent`` has shape (batch, code_dim)."""
    if len(latent.shape) != 2 or latent.shape[1] != code_dim:
        raise ValueError(f"{what} must have shape (batch, {code_dim}), got {tuple(latent.shape)}")


def truncate(style, mean_style, psi):
    """The truncation trick in W (paper section 4): w <- mean + psi * (w - mean)."""
    return mean_style + psi * (style - mean_style)


def check_noise(noise, step):
    """ValueError unless ``noise`` holds step + 1 maps (..., 4*2**i, 4*2**i), i = 0..step."""
    if len(noise) != step + 1:
        raise ValueError(f"noise must be a list of step + 1 = {step + 1} maps (4 to "
                         f"{size_for_step(step)} px), got {len(noise)}")
    for i, maps in enumerate(noise):
        if tuple(maps.shape[-2:]) != (size_for_step(i),) * 2:
            raise ValueError(f"noise[{i}] must be {size_for_step(i)}x{size_for_step(i)} px, "
                             f"got shape {tuple(maps.shape)}")


def style_of_each_layer(n_styles, step, mixing_range=(-1, -1)):
    """Which of ``n_styles`` styles each synthesis layer 0..``step`` takes. With ``mixing_range``
    (first, last), those layers take style 1 and the others style 0; with (-1, -1) the layers
    switch style at random crossover points, the reference's style-mixing regularisation
    (paper section 3.1; at step 0 there is one layer and no crossover)."""
    mixing_range = tuple(mixing_range)
    if mixing_range != (-1, -1):
        if n_styles < 2:
            raise ValueError(f"mixing_range {mixing_range} needs a list of two latents")
        return [1 if mixing_range[0] <= i <= mixing_range[1] else 0 for i in range(step + 1)]
    if n_styles < 2 or step == 0:
        return [0] * (step + 1)
    crossovers = sorted(random.sample(list(range(step)), n_styles - 1))
    chosen, index = [], 0
    for i in range(step + 1):
        if index < len(crossovers) and i > crossovers[index]:
            index += 1
        chosen.append(index)
    return chosen


# ----------------------------------------------------------------------------------------------
# Equalized learning rate: the weights of these layers are scaled at every forward
# ----------------------------------------------------------------------------------------------

class ScaledWeightConv2d(nn.Module):
    """Conv2d whose trainable weight ``weight_orig`` is multiplied by sqrt(2 / fan_in) at every
    forward: what the reference's EqualLR hook does to ``nn.Conv2d`` (same key names)."""

    def __init__(self, in_channel, out_channel, kernel_size, padding=0):
        self.weight_orig = jt.randn(out_channel, in_channel, kernel_size, kernel_size)
        self.bias = jt.zeros(out_channel)
        self._scale = he_scale(in_channel * kernel_size * kernel_size)
        self._padding = padding

    def execute(self, input, bias=True):
        """The convolution, plus ``bias`` unless ``bias=False`` (then the caller adds it)."""
        return onednn_conv.conv2d(input, self.weight_orig * self._scale,
                                  self.bias if bias else None, padding=self._padding)


class ScaledWeightLinear(nn.Module):
    """Linear layer with equalized learning rate (``weight_orig`` scaled by sqrt(2 / in_dim))."""

    def __init__(self, in_dim, out_dim):
        self.weight_orig = jt.randn(out_dim, in_dim)
        self.bias = jt.zeros(out_dim)
        self._scale = he_scale(in_dim)

    def execute(self, input):
        # input @ weight^T without transposing the weight: Jittor runs this broadcast product as
        # one matmul with a transposed operand, where an explicit transpose copies the weight
        # on every call (docs/benchmark.md)
        return nn.matmul_transpose(input, self.weight_orig * self._scale) + self.bias


# ----------------------------------------------------------------------------------------------
# Fused up/down-sampling (from 128 px), PixelNorm, blur
# ----------------------------------------------------------------------------------------------

def box_filter_kernel(weight):
    """Pad a k x k kernel to (k+1) x (k+1) and average its four one-pixel shifts.

    Convolving with stride 2 by this kernel equals the k x k convolution followed by 2x2 average
    pooling (FusedDownsample); the transposed convolution by it equals nearest 2x upsampling
    followed by the flipped k x k convolution, times 1/4 (FusedUpsample). The 1/4 in the
    upsampling case is the PyTorch original's (the TF StyleGAN has none); kept for checkpoints.
    """
    padded = nn.pad(weight, [1, 1, 1, 1])
    return (padded[:, :, 1:, 1:] + padded[:, :, :-1, 1:]
            + padded[:, :, 1:, :-1] + padded[:, :, :-1, :-1]) / 4


class FusedUpsample(nn.Module):
    """2x upsampling fused with a 3x3 convolution (a stride-2 transposed conv), used from 128 px.

    ``weight`` has the transposed-conv layout (in, out, k, k) and is scaled by sqrt(2 / fan_in)
    with fan_in = in * k * k, as in the reference (plain ``weight``/``bias`` keys, no EqualLR hook).
    """

    def __init__(self, in_channel, out_channel, kernel_size, padding=0):
        self.weight = jt.randn(in_channel, out_channel, kernel_size, kernel_size)
        self.bias = jt.zeros(out_channel)
        self._scale = he_scale(in_channel * kernel_size * kernel_size)
        self._padding = padding

    def execute(self, input, bias=True):
        """The transposed convolution, plus ``bias`` unless ``bias=False``."""
        weight = box_filter_kernel(self.weight * self._scale)
        return onednn_conv.conv_transpose2d(input, weight, self.bias if bias else None,
                                            stride=2, padding=self._padding)


class FusedDownsample(nn.Module):
    """3x3 convolution fused with 2x2 average pooling (a stride-2 conv), used from 128 px."""

    def __init__(self, in_channel, out_channel, kernel_size, padding=0):
        self.weight = jt.randn(out_channel, in_channel, kernel_size, kernel_size)
        self.bias = jt.zeros(out_channel)
        self._scale = he_scale(in_channel * kernel_size * kernel_size)
        self._padding = padding

    def execute(self, input):
        weight = box_filter_kernel(self.weight * self._scale)
        return onednn_conv.conv2d(input, weight, self.bias, stride=2, padding=self._padding)


def upsample_nearest(input):
    """2x nearest-neighbour upsampling."""
    n, c, h, w = input.shape
    return input.reindex([n, c, 2 * h, 2 * w], ["i0", "i1", "i2/2", "i3/2"])


def avg_pool_2x2(input):
    """2x2 average pooling with stride 2."""
    n, c, h, w = input.shape
    return input.reshape((n, c, h // 2, 2, w // 2, 2)).mean(dims=(3, 5))


class Upsample(nn.Module):
    """Module form of :func:`upsample_nearest` (sits in Sequential slots like the reference's)."""

    def execute(self, input):
        return upsample_nearest(input)


class AvgPool2x2(nn.Module):
    def execute(self, input):
        return avg_pool_2x2(input)


class PixelNorm(nn.Module):
    """x / sqrt(mean over channels of x^2 + 1e-8) (ProGAN section 4.2), on the latent z."""

    def execute(self, input):
        return input / jt.sqrt((input * input).mean(dim=1, keepdims=True) + PIXEL_NORM_EPS)


class Blur(nn.Module):
    """StyleGAN's low-pass filter after upsampling / before downsampling (paper section 2):
    [1,2,1] x [1,2,1] / 16 (``ops.blur``).

    Holds no state: the reference's Jittor port saves none, and the PyTorch original's kernel
    buffers (``weight``, ``weight_flip``) are constants that ``load_state_dict`` skips.
    """

    def execute(self, input):
        return blur(input)


# ----------------------------------------------------------------------------------------------
# Equalized conv and linear layers, the discriminator's conv block
# ----------------------------------------------------------------------------------------------

class EqualConv2d(nn.Module):
    """Equalized-LR convolution; the layer sits at ``.conv`` as in the reference."""

    def __init__(self, in_channel, out_channel, kernel_size, padding=0):
        self.conv = ScaledWeightConv2d(in_channel, out_channel, kernel_size, padding)

    def execute(self, input, bias=True):
        return self.conv(input, bias)


class EqualLinear(nn.Module):
    """Equalized-LR linear layer; the layer sits at ``.linear`` as in the reference."""

    def __init__(self, in_dim, out_dim):
        self.linear = ScaledWeightLinear(in_dim, out_dim)

    def execute(self, input):
        return self.linear(input)


class ConvBlock(nn.Module):
    """Discriminator block: conv + LeakyReLU, then (blur +) conv (+ downsample) + LeakyReLU."""

    def __init__(self, in_channel, out_channel, kernel_size, padding, kernel_size2=None,
                 padding2=None, downsample=False, fused=False):
        kernel2 = kernel_size if kernel_size2 is None else kernel_size2
        pad2 = padding if padding2 is None else padding2

        self.conv1 = nn.Sequential(
            EqualConv2d(in_channel, out_channel, kernel_size, padding=padding),
            nn.LeakyReLU(LEAKY_SLOPE))

        if downsample and fused:
            self.conv2 = nn.Sequential(
                Blur(),
                FusedDownsample(out_channel, out_channel, kernel2, padding=pad2),
                nn.LeakyReLU(LEAKY_SLOPE))
        elif downsample:
            self.conv2 = nn.Sequential(
                Blur(),
                EqualConv2d(out_channel, out_channel, kernel2, padding=pad2),
                AvgPool2x2(),
                nn.LeakyReLU(LEAKY_SLOPE))
        else:
            self.conv2 = nn.Sequential(
                EqualConv2d(out_channel, out_channel, kernel2, padding=pad2),
                nn.LeakyReLU(LEAKY_SLOPE))

    def execute(self, input):
        return self.conv2(self.conv1(input))


# ----------------------------------------------------------------------------------------------
# Style and noise: AdaIN, noise injection, the constant input, the styled block
# ----------------------------------------------------------------------------------------------

def spatial_mean(input):
    """Mean over H, W. Jittor sums a reduction in one float32 pass, whose rounding grows with
    its length: above SINGLE_PASS_PIXELS (128 px) it averages rows, then the row means, which
    keeps 1024 px images as close to the PyTorch original's as the smaller ones
    (docs/pretrained.md has the errors)."""
    if input.shape[2] * input.shape[3] <= SINGLE_PASS_PIXELS:
        return input.mean(dims=(2, 3), keepdims=True)
    return input.mean(dims=(3,), keepdims=True).mean(dims=(2,), keepdims=True)


def instance_norm(input):
    """Per-sample, per-channel normalisation over H, W (biased variance, eps 1e-5)."""
    centred = input - spatial_mean(input)
    var = spatial_mean(centred * centred)
    return centred / jt.sqrt(var + INSTANCE_NORM_EPS)


class AdaptiveInstanceNorm(nn.Module):
    """AdaIN (paper section 2): instance norm, then a per-channel scale and bias from the style.

    The affine map from W gives (gamma, beta); its bias starts at 1 for gamma and 0 for beta.
    """

    def __init__(self, in_channel, style_dim):
        self.style = EqualLinear(style_dim, in_channel * 2)
        self.style.linear.bias = jt.concat([jt.ones(in_channel), jt.zeros(in_channel)])

    def gamma_beta(self, style):
        """The per-image, per-channel scale and bias, each (batch, channels)."""
        affine = self.style(style)
        channels = affine.shape[1] // 2
        return affine[:, :channels], affine[:, channels:]

    def execute(self, input, style):
        gamma, beta = self.gamma_beta(style)
        shape = (-1, input.shape[1], 1, 1)
        return gamma.reshape(shape) * instance_norm(input) + beta.reshape(shape)


class NoiseInjection(nn.Module):
    """Adds per-pixel noise scaled by a learned per-channel factor (paper section 3.2).

    The factor is stored as ``weight_orig`` (init 0) and scaled by sqrt(2 / channels): the
    reference wraps this module in EqualLR too.
    """

    def __init__(self, channel):
        self.weight_orig = jt.zeros((1, channel, 1, 1))
        self._scale = he_scale(channel)

    def scaled_weight(self):
        return self.weight_orig * self._scale

    def execute(self, image, noise):
        return image + self.scaled_weight() * noise


class ConstantInput(nn.Module):
    """The learned 4x4 constant the synthesis network starts from (paper section 2)."""

    def __init__(self, channel, size=4):
        self.input = jt.randn(1, channel, size, size)

    def execute(self, input):
        return self.input.repeat(input.shape[0], 1, 1, 1)


class StyledConvBlock(nn.Module):
    """One synthesis resolution: (upsample +) conv, noise, LeakyReLU, AdaIN, twice.

    The order noise -> LeakyReLU -> AdaIN is the reference's. ``conv1`` is the constant input at
    4 px, nearest-upsample + conv + blur below 128 px, and fused upsample + blur from 128 px.
    """

    def __init__(self, in_channel, out_channel, kernel_size=3, padding=1, style_dim=512,
                 initial=False, upsample=False, fused=False):
        if initial:
            self.conv1 = ConstantInput(in_channel)
        elif upsample and fused:
            self.conv1 = nn.Sequential(
                FusedUpsample(in_channel, out_channel, kernel_size, padding=padding),
                Blur())
        elif upsample:
            self.conv1 = nn.Sequential(
                Upsample(),
                EqualConv2d(in_channel, out_channel, kernel_size, padding=padding),
                Blur())
        else:
            self.conv1 = EqualConv2d(in_channel, out_channel, kernel_size, padding=padding)

        self.noise1 = NoiseInjection(out_channel)
        self.adain1 = AdaptiveInstanceNorm(out_channel, style_dim)
        self.lrelu1 = nn.LeakyReLU(LEAKY_SLOPE)

        self.conv2 = EqualConv2d(out_channel, out_channel, kernel_size, padding=padding)
        self.noise2 = NoiseInjection(out_channel)
        self.adain2 = AdaptiveInstanceNorm(out_channel, style_dim)
        self.lrelu2 = nn.LeakyReLU(LEAKY_SLOPE)

    def execute(self, input, style, noise):
        if cpu_generation.serves(input, noise):   # generation on the CPU: fused kernels
            return self.execute_fused(input, style, noise)
        out = self.conv1(input)
        out = self.noise1(out, noise)
        out = self.lrelu1(out)
        out = self.adain1(out, style)

        out = self.conv2(out)
        out = self.noise2(out, noise)
        out = self.lrelu2(out)
        return self.adain2(out, style)

    def execute_fused(self, input, style, noise):
        """``execute`` where ``cpu_generation.serves``: each convolution's bias added by the
        operator after it, noise + LeakyReLU + AdaIN as one operator."""
        out, bias = conv_deferring_bias(self.conv1, input)
        out = noise_lrelu_adain(out, noise, self.noise1, self.lrelu1, self.adain1, style, bias)
        out, bias = conv_deferring_bias(self.conv2, out)
        return noise_lrelu_adain(out, noise, self.noise2, self.lrelu2, self.adain2, style, bias)


def conv_deferring_bias(layer, input):
    """``layer(input)`` as ``(y, bias)``, equal to ``y + bias`` (per channel) for the next
    operator to add in its own pass: a synthesis layer's convolution without a pass for its
    bias. Where the layer ends in a blur, the blur operator adds it (before blurring, as the
    modules do) and ``bias`` is None; None too for the constant input."""
    *before, conv = list(layer) if isinstance(layer, nn.Sequential) else [layer]
    blurred = isinstance(conv, Blur)
    if blurred:
        *before, conv = before
    if not isinstance(conv, (EqualConv2d, FusedUpsample)):
        return layer(input), None
    for module in before:
        input = module(input)
    out = conv(input, False)                     # (positional: forward hooks see no kwargs)
    bias = conv.conv.bias if isinstance(conv, EqualConv2d) else conv.bias
    return (blur_cpu(out, bias), None) if blurred else (out, bias)


def noise_lrelu_adain(input, noise, noise_injection, lrelu, adain, style, bias=None):
    """``adain(lrelu(noise_injection(input + bias, noise)), style)`` (``bias`` per channel, or
    none): the second half of a synthesis layer, in one operator where
    ``cpu_generation.noise_lrelu_adain_serves``, else module by module."""
    if not cpu_generation.noise_lrelu_adain_serves(input, noise):
        if bias is not None:
            input = input + bias.reshape((1, -1, 1, 1))
        return adain(lrelu(noise_injection(input, noise)), style)
    gamma, beta = adain.gamma_beta(style)
    return cpu_generation.noise_lrelu_adain(
        input, noise, noise_injection.scaled_weight().reshape((input.shape[1],)), gamma, beta,
        bias, LEAKY_SLOPE, INSTANCE_NORM_EPS)


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------

class Generator(nn.Module):
    """Synthesis network: constant 4x4 input, then one StyledConvBlock per resolution."""

    def __init__(self, code_dim=512, fused=True, width=REFERENCE_WIDTH, style_dim=None):
        style_dim = code_dim if style_dim is None else style_dim
        channels = [scaled_channels(c, width) for c in GENERATOR_CHANNELS]
        blocks = [StyledConvBlock(channels[0], channels[0], 3, 1, style_dim=style_dim, initial=True)]
        for step in range(1, MAX_STEP + 1):
            blocks.append(StyledConvBlock(channels[step - 1], channels[step], 3, 1,
                                          style_dim=style_dim, upsample=True,
                                          fused=fused and step >= FIRST_FUSED_STEP))
        self.progression = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList([EqualConv2d(c, 3, 1) for c in channels])

    def execute(self, styles, noise, step=0, alpha=-1):
        """Synthesise images at ``step``: layer i takes ``styles[i]`` (batch, style_dim) and
        ``noise[i]``, as NVlabs' synthesis network takes one w per layer. ``0 <= alpha < 1``
        blends in the upsampled RGB of the previous resolution (progressive growing)."""
        out = noise[0]
        out_prev = None
        for i in range(step + 1):
            out_prev = out
            out = self.progression[i](out, styles[i], noise[i])
        images = self.to_rgb[step](out)
        if step > 0 and 0 <= alpha < 1:
            skip_rgb = upsample_nearest(self.to_rgb[step - 1](out_prev))
            images = (1 - alpha) * skip_rgb + alpha * images
        return images

    def modules_in_use(self, step, alpha):
        """The layers ``execute(step=step, alpha=alpha)`` runs: the blocks up to ``step``, its
        to-RGB, and the previous one's while fading in."""
        used = [self.progression[i] for i in range(step + 1)] + [self.to_rgb[step]]
        if step > 0 and 0 <= alpha < 1:
            used.append(self.to_rgb[step - 1])
        return used


class StyledGenerator(nn.Module):
    """Mapping network (PixelNorm + ``n_mlp`` EqualLinear/LeakyReLU) followed by synthesis.

    Args:
        code_dim: size of the latent z and of the style w (512 in the reference).
        n_mlp: layers of the mapping network (8 in the paper).
        width: channels of the 4..32 px blocks; higher resolutions scale alike (reference: 512).
    """

    def __init__(self, code_dim=512, n_mlp=8, width=REFERENCE_WIDTH):
        self.code_dim = code_dim
        self.generator = Generator(code_dim, width=width)
        layers = [PixelNorm()]
        for _ in range(n_mlp):
            layers += [EqualLinear(code_dim, code_dim), nn.LeakyReLU(LEAKY_SLOPE)]
        self.style = nn.Sequential(*layers)

    def noise_shapes(self, step, batch):
        """The shapes of a forward pass's noise maps at ``step``: one a size (``noise_shapes``)."""
        return noise_shapes(step, batch)

    def execute(self, input, noise=None, step=0, alpha=-1, mean_style=None, style_weight=0,
                mixing_range=(-1, -1), truncation_cutoff=None):
        """Generate images of side 4 * 2**step.

        Args:
            input: latent z of shape (batch, code_dim), or a list of them for style mixing.
            noise: list of step + 1 noise maps (batch, 1, 4*2**i, 4*2**i); drawn when None.
            step: resolution index 0..8 (4..1024 px).
            alpha: fade-in weight of the newest block in [0, 1); -1 or 1 means no fade-in.
            mean_style: (1, code_dim) mean w; with it, w <- mean + style_weight * (w - mean)
                (the truncation trick).
            mixing_range: (first, last) layer taking the second latent's style; (-1, -1) picks a
                random crossover as in training.
            truncation_cutoff: with ``mean_style``, truncate only the sizes whose two layers,
                counted as NVIDIA counts them (two per size: 8 = 4 to 32 px), are both below
                it; None truncates every size (the reference).
        """
        check_step(step)
        latents = list(input) if isinstance(input, (list, tuple)) else [input]
        if not latents:
            raise ValueError("expected at least one latent")
        for latent in latents:
            check_latent(latent, self.code_dim)
        styles = [self.style(latent) for latent in latents]
        if noise is None:
            noise = [jt.randn(*shape) for shape in self.noise_shapes(step, latents[0].shape[0])]
        check_noise(noise, step)
        if mean_style is not None and truncation_cutoff is None:
            styles = [truncate(style, mean_style, style_weight) for style in styles]
        layer_styles = [styles[k] for k in style_of_each_layer(len(styles), step, mixing_range)]
        if mean_style is not None and truncation_cutoff is not None:
            layer_styles = [truncate(w, mean_style, style_weight) if 2 * i + 1 < truncation_cutoff
                            else w for i, w in enumerate(layer_styles)]
        return self.generator(layer_styles, noise, step, alpha)

    def load_state_dict(self, state_dict):
        """Loads this project's keys, or the references' (``files.state_dicts``)."""
        self.load_parameters(fit_state_dict(self, state_dict))

    def modules_in_use(self, step, alpha):
        """The layers a forward pass at ``step`` and ``alpha`` runs (the mapping network too)."""
        return [self.style] + self.generator.modules_in_use(step, alpha)

    def modules_up_to(self, step):
        """The mapping network and every synthesis layer of steps 0..``step``: all that a
        progressive run has trained by ``step``; the layers above it are still as initialised."""
        g = self.generator
        return [self.style] + [m for i in range(step + 1) for m in (g.progression[i], g.to_rgb[i])]

    def mean_style(self, input):
        """Mean of the mapped styles of ``input`` latents, shape (1, code_dim)."""
        check_latent(input, self.code_dim)
        return self.style(input).mean(dim=0, keepdims=True)


def minibatch_stddev(out):
    """Append the mean over features of the across-batch standard deviation as a channel.

    ProGAN section 3. Computed with Jittor ops so gradients flow through it; the Jittor
    reference goes through numpy (``np.std(out.data)``), which cuts the gradient — we follow the
    PyTorch original: sqrt(biased variance + 1e-8), averaged to one scalar.
    """
    centred = out - out.mean(dim=0, keepdims=True)
    std = jt.sqrt((centred * centred).mean(dim=0) + MBSTD_EPS)
    n, _, h, w = out.shape
    return jt.concat([out, std.mean().reshape((1, 1, 1, 1)).broadcast((n, 1, h, w))], dim=1)


class Discriminator(nn.Module):
    """Progressive discriminator, 1024 -> 4 px, mirroring the generator.

    Args:
        fused: fused conv + downsampling in the blocks from 128 px up (the reference's default).
        from_rgb_activate: LeakyReLU after each from-RGB 1x1 conv (the reference's train.py
            builds ``Discriminator(from_rgb_activate=True)`` unless told otherwise).
        width: channels of the low-resolution blocks (reference: 512).
    """

    def __init__(self, fused=True, from_rgb_activate=False, width=REFERENCE_WIDTH):
        channels = [scaled_channels(c, width) for c in reversed(GENERATOR_CHANNELS)]  # 16 .. 512
        blocks = []
        for index in range(MAX_STEP):  # index 0 takes 1024 px, index 7 takes 8 px
            resolution_step = MAX_STEP - index
            blocks.append(ConvBlock(channels[index], channels[index + 1], 3, 1, downsample=True,
                                    fused=fused and resolution_step >= FIRST_FUSED_STEP))
        # 4 px, with the minibatch-stddev channel
        blocks.append(ConvBlock(channels[-1] + 1, channels[-1], 3, 1, 4, 0))
        self.progression = nn.ModuleList(blocks)

        def make_from_rgb(out_channel):
            if from_rgb_activate:
                return nn.Sequential(EqualConv2d(3, out_channel, 1), nn.LeakyReLU(LEAKY_SLOPE))
            return EqualConv2d(3, out_channel, 1)

        self.from_rgb = nn.ModuleList([make_from_rgb(ch) for ch in channels])
        self.n_layer = len(blocks)
        self.linear = EqualLinear(channels[-1], 1)

    def execute(self, input, step=0, alpha=-1):
        """Score images of side 4 * 2**step; ``0 <= alpha < 1`` fades in the newest block."""
        check_step(step)
        size = size_for_step(step)
        if len(input.shape) != 4 or tuple(input.shape[1:]) != (3, size, size):
            raise ValueError(f"images at step {step} must have shape (batch, 3, {size}, {size}), "
                             f"got {tuple(input.shape)}")
        out = None
        for i in range(step, -1, -1):
            index = self.n_layer - i - 1
            if i == step:
                out = self.from_rgb[index](input)
            if i == 0:
                out = minibatch_stddev(out)
            out = self.progression[index](out)
            if i > 0 and i == step and 0 <= alpha < 1:
                skip_rgb = self.from_rgb[index + 1](avg_pool_2x2(input))
                out = (1 - alpha) * skip_rgb + alpha * out
        return self.linear(out.reshape((out.shape[0], out.shape[1])))

    def load_state_dict(self, state_dict):
        """Loads this project's keys, or the references' (``files.state_dicts``)."""
        self.load_parameters(fit_state_dict(self, state_dict))

    def modules_in_use(self, step, alpha):
        """The layers ``execute(step=step, alpha=alpha)`` runs: the blocks of sizes up to
        ``step``'s, its from-RGB, the next smaller one's while fading in, the final linear."""
        first = self.n_layer - step - 1
        used = [self.progression[i] for i in range(first, self.n_layer)]
        used += [self.from_rgb[first], self.linear]
        if step > 0 and 0 <= alpha < 1:
            used.append(self.from_rgb[first + 1])
        return used

"""NVIDIA's StyleGAN v1 networks in Jittor, built from an official pickle's variables.

The maths of NVlabs/stylegan's ``training/networks_stylegan.py`` (G_style = G_mapping +
G_synthesis, and D_basic), where it differs from the PyTorch original that ``model.py`` ports:

* every weight is stored as the file stores it ([k, k, in, out] for convolutions, [in, out] for
  dense layers) and multiplied at run time by ``gain / sqrt(fan_in) * lrmul`` (``get_weight``);
  the mapping layers have lrmul 0.01 on weights and biases, the style and to-RGB layers gain 1;
* a synthesis layer is conv (+ blur), then noise, bias, activation, instance norm (eps 1e-8) and
  the style modulation ``x * (style + 1) + style'`` (``layer_epilogue``): two noise maps and two
  styles per resolution, and the bias of an up-sampling layer added after the blur;
* the fused up-sampling (from 128 px) is a transposed convolution by the sum of the four shifts
  of the kernel (no 1/4), the fused down-sampling a strided one by their mean;
* truncation only for the layers below a cutoff, towards the stored ``dlatent_avg``;
* the discriminator changes channels in its second convolution, and its minibatch stddev is
  taken over groups of up to 4 images in strided order (image i in group i mod N/G).

Progressive growing uses the project's ``step`` and ``alpha``: the official ``lod`` is
``max step - step`` with ``alpha = 1 - fraction``, the same linear blend (``structure='linear'``).
Layers are indexed as NVIDIA's: layer 2s and 2s+1 belong to step s (4 * 2**s px).
"""
from math import ceil, prod, sqrt

import numpy as np

import jittor as jt
from jittor import nn

from model import (LEAKY_SLOPE, avg_pool_2x2, check_latent, spatial_mean, style_of_each_layer,
                   truncate, upsample_nearest)
from networks.shapes import size_for_step
from ops import onednn_conv
from ops.blur import blur

SQRT2 = sqrt(2)
INSTANCE_NORM_EPS = 1e-8       # networks_stylegan.instance_norm
PIXEL_NORM_EPS = 1e-8
MBSTD_EPS = 1e-8
FLAVOUR = "nvidia"


def weight_coefficient(shape, gain, use_wscale, lrmul=1.0):
    """``get_weight``'s run-time multiplier of a weight of (TF) ``shape``: He's constant
    ``gain / sqrt(fan_in)`` times ``lrmul`` with equalized learning rate, else ``lrmul``."""
    if use_wscale:
        return gain / sqrt(prod(shape[:-1])) * lrmul
    return lrmul


def activation(name):
    if name == "relu":
        return nn.relu
    return lambda x: nn.leaky_relu(x, LEAKY_SLOPE)


def conv_weight(weight, coefficient):
    """A [k, k, in, out] weight times its multiplier, in Jittor's [out, in, k, k] layout."""
    return (weight * coefficient).permute(3, 2, 0, 1)


def four_shift_sum(weight):
    """``tf.add_n`` of the four one-pixel shifts of a zero-padded [out|in, in|out, k, k] kernel:
    the (k+1) x (k+1) kernel of a fused 2x resampling convolution."""
    padded = nn.pad(weight, [1, 1, 1, 1])
    return (padded[:, :, 1:, 1:] + padded[:, :, :-1, 1:]
            + padded[:, :, 1:, :-1] + padded[:, :, :-1, :-1])


def instance_norm(x, eps=INSTANCE_NORM_EPS):
    """Over H, W per image and channel, with the original's two-pass means above 128 px
    (``model.spatial_mean``: Jittor's one float32 pass drifts at 1024 px)."""
    x = x - spatial_mean(x)
    return x / jt.sqrt(spatial_mean(x * x) + eps)


def pixel_norm(x, eps=PIXEL_NORM_EPS):
    return x / jt.sqrt((x * x).mean(dim=1, keepdims=True) + eps)


class Dense(nn.Module):
    """``dense`` + ``apply_bias``: weight [in, out] and bias, each times its multiplier."""

    def __init__(self, in_dim, out_dim, gain, use_wscale, lrmul=1.0):
        self.weight = jt.randn(in_dim, out_dim) / lrmul
        self.bias = jt.zeros(out_dim)
        self._coefficient = weight_coefficient((in_dim, out_dim), gain, use_wscale, lrmul)
        self._bias_mult = lrmul

    def execute(self, x):
        x = x.reshape((x.shape[0], -1))
        return nn.matmul(x, self.weight * self._coefficient) + self.bias * self._bias_mult


class Mapping(nn.Module):
    """G_mapping: PixelNorm of z (``normalize_latents``), then dense + bias + activation."""

    def __init__(self, arch):
        sizes = [arch["latent_size"]] + list(arch["mapping_sizes"])
        self.layers = nn.ModuleList([
            Dense(sizes[i], sizes[i + 1], SQRT2, arch["mapping_use_wscale"], arch["mapping_lrmul"])
            for i in range(len(sizes) - 1)])
        self._act = activation(arch["mapping_nonlinearity"])
        self._normalize = arch["normalize_latents"]

    def execute(self, z):
        x = pixel_norm(z) if self._normalize else z
        for layer in self.layers:
            x = self._act(layer(x))
        return x


class SynthesisLayer(nn.Module):
    """One synthesis layer: the constant, a 3x3 conv, or an up-sampling conv (nearest + conv +
    blur, or the fused transposed conv + blur), then ``layer_epilogue``."""

    def __init__(self, kind, in_channel, out_channel, dlatent_size, arch):
        self._kind = kind
        if kind == "const":
            self.const = jt.ones((1, out_channel, 4, 4))
        else:
            self.weight = jt.randn(3, 3, in_channel, out_channel)
            self._coefficient = weight_coefficient((3, 3, in_channel, out_channel), SQRT2,
                                                   arch["use_wscale"])
        if arch["use_noise"]:
            self.noise_strength = jt.zeros(out_channel)
        self.bias = jt.zeros(out_channel)
        self.style = Dense(dlatent_size, 2 * out_channel, 1.0, arch["use_wscale"])
        self._act = activation(arch["nonlinearity"])
        self._blur = arch["blur"]
        self._pixel_norm, self._instance_norm = arch["use_pixel_norm"], arch["use_instance_norm"]

    def execute(self, x, w, noise):
        if self._kind == "const":
            x = self.const.repeat(w.shape[0], 1, 1, 1)
        elif self._kind == "conv":
            x = onednn_conv.conv2d(x, conv_weight(self.weight, self._coefficient), padding=1)
        elif self._kind == "up":
            x = onednn_conv.conv2d(upsample_nearest(x), conv_weight(self.weight, self._coefficient),
                                   padding=1)
        else:  # fused: the transposed conv's [in, out, k, k] kernel is the TF [k, k, in, out] one
            kernel = four_shift_sum((self.weight * self._coefficient).permute(2, 3, 0, 1))
            x = onednn_conv.conv_transpose2d(x, kernel, stride=2, padding=1)
        if self._kind in ("up", "fused_up") and self._blur:
            x = blur(x)
        if noise is not None and hasattr(self, "noise_strength"):
            x = x + noise * self.noise_strength.reshape((1, -1, 1, 1))
        x = self._act(x + self.bias.reshape((1, -1, 1, 1)))
        if self._pixel_norm:
            x = pixel_norm(x)
        if self._instance_norm:
            x = instance_norm(x)
        style = self.style(w)
        channels = x.shape[1]
        return (x * (style[:, :channels].reshape((-1, channels, 1, 1)) + 1)
                + style[:, channels:].reshape((-1, channels, 1, 1)))


class ToRGB(nn.Module):
    def __init__(self, channel, use_wscale):
        self.weight = jt.randn(1, 1, channel, 3)
        self.bias = jt.zeros(3)
        self._coefficient = weight_coefficient((1, 1, channel, 3), 1.0, use_wscale)

    def execute(self, x):
        return onednn_conv.conv2d(x, conv_weight(self.weight, self._coefficient),
                                  self.bias)


def per_layer(values, step, what):
    """``values`` for the 2 (step + 1) layers: as given, or each per-step value twice."""
    values = list(values)
    if len(values) == step + 1:
        return [v for v in values for _ in range(2)]
    if len(values) != 2 * (step + 1):
        raise ValueError(f"{what} must hold {step + 1} (one per size) or {2 * (step + 1)} (one per "
                         f"layer) entries at step {step}, got {len(values)}")
    return values


class Synthesis(nn.Module):
    """G_synthesis: layers 0..2 (step + 1) - 1 and the to-RGB of ``step``."""

    def __init__(self, arch):
        channels, dlatent = arch["channels"], arch["dlatent_size"]
        layers = []
        for step, channel in enumerate(channels):
            if step == 0:
                first = SynthesisLayer("const", channel, channel, dlatent, arch)
            else:
                kind = "fused_up" if arch["fused"][step] else "up"
                first = SynthesisLayer(kind, channels[step - 1], channel, dlatent, arch)
            layers += [first, SynthesisLayer("conv", channel, channel, dlatent, arch)]
        self.layers = nn.ModuleList(layers)
        self.to_rgb = nn.ModuleList([ToRGB(c, arch["use_wscale"]) for c in channels])

    def execute(self, styles, noise, step, alpha=-1):
        """Images at ``step``: ``styles`` and ``noise`` one per layer, or one per step (used by
        both of its layers, as the PyTorch original feeds them); noise entries may be None."""
        styles = per_layer(styles, step, "styles")
        noise = per_layer(noise, step, "noise")
        x = previous = None
        for s in range(step + 1):
            previous = x
            x = self.layers[2 * s](x, styles[2 * s], noise[2 * s])
            x = self.layers[2 * s + 1](x, styles[2 * s + 1], noise[2 * s + 1])
        images = self.to_rgb[step](x)
        if step > 0 and 0 <= alpha < 1:  # lerp(img, upscale(previous img), lod fraction)
            skip = upsample_nearest(self.to_rgb[step - 1](previous))
            images = images + (skip - images) * (1 - alpha)
        return images


class NvidiaStyledGenerator(nn.Module):
    """G_style with the interface of ``model.StyledGenerator`` (``style``, ``generator``,
    ``code_dim``, ``execute``), so the scripts drive either. ``dlatent_avg`` (the truncation
    centre) and ``stored_noise`` (one map per layer, the official ``randomize_noise=False``) are
    constants of the file, kept out of the parameters."""

    flavour = FLAVOUR
    mapping_lr_mult = 1.0   # the mapping's lrmul is in its weights' run-time multiplier

    def __init__(self, arch):
        self.arch = dict(arch)
        self.code_dim = arch["latent_size"]
        self.max_step = len(arch["channels"]) - 1
        self.style = Mapping(arch)
        self.generator = Synthesis(arch)
        self.dlatent_avg = np.zeros((1, arch["dlatent_size"]), np.float32)
        self.lod = 0.0      # > 0: a file saved mid-growth, rendered as NVIDIA's code renders it
        self.stored_noise = [np.zeros(shape, np.float32)
                             for shape in self.noise_shapes(self.max_step, 1)]

    def noise_shapes(self, step, batch):
        """The shapes of a forward pass's noise maps: two per size, one a layer."""
        return [(batch, 1, size_for_step(s), size_for_step(s))
                for s in range(step + 1) for _ in range(2)]

    def noise_maps(self, step, batch, stored=False):
        """Noise for every layer up to ``step``: the file's (shared by the batch) or random."""
        if stored:
            return [jt.array(m) for m in self.stored_noise[:2 * (step + 1)]]
        return [jt.randn(*shape) for shape in self.noise_shapes(step, batch)]

    def execute(self, input, noise=None, step=None, alpha=-1, mean_style=None, style_weight=0,
                mixing_range=(-1, -1), truncation_cutoff=None):
        """As ``StyledGenerator.execute``; ``noise`` one map per layer or per step; with
        ``mean_style``, the layers below ``truncation_cutoff`` (all when None) are truncated."""
        step = self.max_step if step is None else step
        if not 0 <= step <= self.max_step:
            raise ValueError(f"step must be 0..{self.max_step}, got {step}")
        latents = list(input) if isinstance(input, (list, tuple)) else [input]
        for latent in latents:
            check_latent(latent, self.code_dim)
        styles = [self.style(latent) for latent in latents]
        chosen = per_layer(style_of_each_layer(len(styles), step, mixing_range), step, "styles")
        layer_styles = [styles[k] for k in chosen]
        if mean_style is not None:
            layer_styles = [truncate(w, mean_style, style_weight)
                            if truncation_cutoff is None or i < truncation_cutoff else w
                            for i, w in enumerate(layer_styles)]
        if noise is None:
            noise = self.noise_maps(step, latents[0].shape[0])
        if step == self.max_step and self.lod > 0 and not 0 <= alpha < 1:
            grown, alpha, upscales = self.grown_view()
            layers = 2 * (grown + 1)
            images = self.generator(layer_styles[:layers],
                                    per_layer(noise, step, "noise")[:layers], grown, alpha)
            for _ in range(upscales):
                images = upsample_nearest(images)
            return images
        return self.generator(layer_styles, noise, step, alpha)

    def grown_view(self):
        """``(step, alpha, upscales)`` of the file's ``lod``, as G_synthesis' recursive
        structure renders it: the first step s whose lod (max step - s) the file's reaches,
        blended with the step below by the fraction beyond it, upscaled to full size."""
        top = self.max_step
        step = min(top, max(1, ceil(top - self.lod)))
        fraction = self.lod - (top - step)
        return step, (1 - fraction if fraction > 0 else -1), top - step

    def mean_style(self, input):
        return self.style(input).mean(dim=0, keepdims=True)

    def modules_in_use(self, step, alpha):
        used = [self.style] + list(self.generator.layers[:2 * (step + 1)])
        used.append(self.generator.to_rgb[step])
        if step > 0 and 0 <= alpha < 1:
            used.append(self.generator.to_rgb[step - 1])
        return used

    def modules_up_to(self, step):
        g = self.generator
        return ([self.style] + list(g.layers[:2 * (step + 1)])
                + [g.to_rgb[s] for s in range(step + 1)])

    def load_state_dict(self, state_dict):
        self.load_parameters(checked_parameters(self, state_dict))


def grouped_minibatch_stddev(x, group_size, features):
    """``minibatch_stddev_layer``: the stddev over groups of G = min(group_size, N) images,
    image i in group i mod (N / G), averaged over each channel group and pixel, appended as
    ``features`` maps. A batch G does not divide takes the largest group size that does
    (NVIDIA's code needs N divisible by G)."""
    n, c, h, w = x.shape
    group = min(group_size, n)
    while n % group:
        group -= 1
    m = n // group
    y = x.reshape((group, m, features, c // features, h, w))
    y = y - y.mean(dim=0, keepdims=True)
    y = jt.sqrt((y * y).mean(dim=0) + MBSTD_EPS)
    y = y.mean(dims=(2, 3, 4))                                   # (m, features)
    y = y.reshape((1, m, features, 1, 1)).broadcast((group, m, features, h, w))
    return jt.concat([x, y.reshape((n, features, h, w))], dim=1)


class Conv(nn.Module):
    """A discriminator convolution [k, k, in, out] with its bias; ``down``: blur + conv + 2x2
    mean (or the fused strided conv) before the bias, as ``conv2d_downscale2d``."""

    def __init__(self, in_channel, out_channel, kernel, use_wscale, down=False, fused=False,
                 blurred=True):
        self.weight = jt.randn(kernel, kernel, in_channel, out_channel)
        self.bias = jt.zeros(out_channel)
        self._coefficient = weight_coefficient((kernel, kernel, in_channel, out_channel), SQRT2,
                                               use_wscale)
        self._down, self._fused, self._blur = down, fused, blurred
        self._padding = kernel // 2

    def execute(self, x):
        weight = conv_weight(self.weight, self._coefficient)
        if self._down and self._blur:
            x = blur(x)
        if self._down and self._fused:
            x = onednn_conv.conv2d(x, four_shift_sum(weight) * 0.25, stride=2, padding=1)
        else:
            x = onednn_conv.conv2d(x, weight, padding=self._padding)
            if self._down:
                x = avg_pool_2x2(x)
        return x + self.bias.reshape((1, -1, 1, 1))


class NvidiaDiscriminator(nn.Module):
    """D_basic with ``model.Discriminator``'s interface (``execute(images, step, alpha)``)."""

    flavour = FLAVOUR

    def __init__(self, arch):
        self.arch = dict(arch)
        channels, use_wscale = arch["channels"], arch["use_wscale"]
        self.max_step = len(channels) - 1
        self.from_rgb = nn.ModuleList([Conv(3, c, 1, use_wscale) for c in channels])
        blocks = [nn.ModuleList([Conv(channels[0] + arch["mbstd_features"], channels[0], 3,
                                      use_wscale)])]
        for s in range(1, len(channels)):
            blocks.append(nn.ModuleList([
                Conv(channels[s], channels[s], 3, use_wscale),
                Conv(channels[s], channels[s - 1], 3, use_wscale, down=True,
                     fused=arch["fused"][s], blurred=arch["blur"])]))
        self.blocks = nn.ModuleList(blocks)
        self.dense0 = Dense(channels[0] * 16, arch["dense_channels"], SQRT2, use_wscale)
        self.dense1 = Dense(arch["dense_channels"], 1, 1.0, use_wscale)
        self._act = activation(arch["nonlinearity"])

    def execute(self, input, step=None, alpha=-1):
        step = self.max_step if step is None else step
        size = size_for_step(step)
        if len(input.shape) != 4 or tuple(input.shape[1:]) != (3, size, size):
            raise ValueError(f"images at step {step} must have shape (batch, 3, {size}, {size}), "
                             f"got {tuple(input.shape)}")
        x = self._act(self.from_rgb[step](input))
        for s in range(step, 0, -1):
            for conv in self.blocks[s]:
                x = self._act(conv(x))
            if s == step and 0 <= alpha < 1:  # lerp(x, fromrgb(downscaled), lod fraction)
                skip = self._act(self.from_rgb[s - 1](avg_pool_2x2(input)))
                x = x + (skip - x) * (1 - alpha)
        if self.arch["mbstd_group"] > 1:
            x = grouped_minibatch_stddev(x, self.arch["mbstd_group"], self.arch["mbstd_features"])
        x = self._act(self.blocks[0][0](x))
        x = self._act(self.dense0(x))
        return self.dense1(x)

    def modules_in_use(self, step, alpha):
        used = [self.from_rgb[step], self.dense0, self.dense1] + list(self.blocks[:step + 1])
        if step > 0 and 0 <= alpha < 1:
            used.append(self.from_rgb[step - 1])
        return used

    def load_state_dict(self, state_dict):
        self.load_parameters(checked_parameters(self, state_dict))


def checked_parameters(module, state_dict):
    """``state_dict`` when it has exactly ``module``'s keys and shapes, else ValueError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unknown = sorted(set(state_dict) - set(own))
    if missing or unknown:
        raise ValueError(f"state dict does not fit {type(module).__name__}: "
                         + (f"missing {missing[0]}" if missing else f"unexpected {unknown[0]}"))
    for key, value in state_dict.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(f"state dict does not fit {type(module).__name__}: {key} has shape "
                             f"{tuple(value.shape)}, expected {tuple(own[key].shape)}")
    return state_dict

"""Projection: the latent (w in W, or one w per layer in W+) and the noise maps that make the
generator reproduce given images.

The optimisation follows NVlabs' projector (stylegan2-ada-pytorch ``projector.py``, after
Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", appendix D):
start from the mean w, Adam (betas 0.9, 0.999) at a learning rate that ramps up over the first
5 % of the steps and down along a cosine over the last 25 %, Gaussian noise added to w that
decays to zero over the first 75 % (scaled by the spread of w), the noise maps optimised too,
with a penalty on their autocorrelation at every scale and renormalised after every step.

Their distance is LPIPS on VGG16 (``LpipsDistance``, ``metrics/lpips.py``), with images larger
than 256 px averaged down to 256 px first; it needs VGG16's weights and LPIPS' linear layers,
which the user gives. Without them the distance (``ImageDistance``) needs no downloaded
weights: the mean squared pixel difference at every scale from the image's size down to 8 px,
plus, when a discriminator is given, the distance between its features at each of the model's
resolutions (each feature vector scaled to unit length over the channels, as LPIPS does with
VGG's, equally weighted). Every image of a batch is fitted on its own: the loss is a sum over
images and no term mixes them (the discriminator's minibatch-stddev block, which would, is left
out).
"""
import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

import jittor as jt

from latents.synthesis import synthesize
from model import avg_pool_2x2, noise_shapes

W_STATISTICS_LATENTS = 10000     # NVlabs' w_avg_samples
W_STATISTICS_SEED = 123          # NVlabs draws them from RandomState(123)
W_STATISTICS_BATCH = 1000
SMALLEST_PIXEL_SCALE = 8         # the pixel distance's coarsest scale, in px
SMALLEST_NOISE_SCALE = 8         # the noise penalty downsamples a map down to this size
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
FEATURE_EPS = 1e-10              # LPIPS' normalize_tensor eps
PEAK_SIGNAL = 2.0                # images span [-1, 1]
LPIPS_MAX_SIZE = 256             # NVlabs average larger images down to this before VGG16


@dataclass
class Schedule:
    """NVlabs' projector's settings (their defaults)."""
    steps: int = 1000
    initial_lr: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown: float = 0.25
    lr_rampup: float = 0.05
    noise_ramp: float = 0.75
    noise_regularization: float = 1e5
    pixel_weight: float = 1.0
    feature_weight: float = 1.0

    def learning_rate(self, t):
        """The rate at ``t`` = step / steps: a linear ramp up, a half cosine down at the end."""
        ramp = min(1.0, (1.0 - t) / self.lr_rampdown)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        return self.initial_lr * ramp * min(1.0, t / self.lr_rampup)

    def w_noise_scale(self, t, w_std):
        """The standard deviation of the noise added to w at ``t``: quadratic decay to 0."""
        return w_std * self.initial_noise_factor * max(0.0, 1.0 - t / self.noise_ramp) ** 2


@jt.no_grad()
def w_statistics(generator, n_latents=W_STATISTICS_LATENTS, seed=W_STATISTICS_SEED):
    """``(w_avg (1, code_dim) float32, w_std)``: the mean mapped style of ``n_latents`` random
    z and the root mean squared distance of their w to it (NVlabs' w_std, one number)."""
    z = np.random.RandomState(seed).randn(n_latents, generator.code_dim).astype(np.float32)
    w = np.concatenate([generator.style(jt.array(z[i:i + W_STATISTICS_BATCH])).numpy()
                        for i in range(0, n_latents, W_STATISTICS_BATCH)]).astype(np.float64)
    w_avg = w.mean(axis=0, keepdims=True)
    w_std = float(np.sqrt(((w - w_avg) ** 2).sum() / n_latents))
    return w_avg.astype(np.float32), w_std


def pixel_distance(images, targets):
    """Per image (n,): the mean squared difference at every scale from the images' size down to
    SMALLEST_PIXEL_SCALE (or the size itself when smaller), averaged over the scales."""
    total, scales = 0, 0
    while True:
        total = total + ((images - targets) ** 2).mean(dims=(1, 2, 3))
        scales += 1
        if images.shape[2] <= SMALLEST_PIXEL_SCALE:
            return total / scales
        images, targets = avg_pool_2x2(images), avg_pool_2x2(targets)


def discriminator_features(discriminator, images, step):
    """The discriminator's activations for ``images`` at step ``step``: its from-RGB output and
    each block's output down to 4 px, before the minibatch-stddev block (which mixes images)."""
    first = discriminator.n_layer - step - 1
    out = discriminator.from_rgb[first](images)
    features = [out]
    for index in range(first, discriminator.n_layer - 1):
        out = discriminator.progression[index](out)
        features.append(out)
    return features


def unit_channels(features):
    """Each pixel's feature vector scaled to unit length (LPIPS' normalize_tensor)."""
    return features / jt.sqrt((features * features).sum(dim=1, keepdims=True) + FEATURE_EPS)


def feature_distance(image_features, target_features):
    """Per image (n,): the squared distance of unit feature vectors, summed over channels and
    averaged over pixels and layers (LPIPS with every channel weighted alike)."""
    total = 0
    for ours, theirs in zip(image_features, target_features):
        difference = unit_channels(ours) - unit_channels(theirs)
        total = total + (difference * difference).sum(dim=1).mean(dims=(1, 2))
    return total / len(image_features)


class ImageDistance:
    """The projection's distance to fixed ``targets`` (n, 3, s, s) in [-1, 1]: pixels at every
    scale, plus the discriminator's features when one is given. Called on images, it returns
    the per-image distance (n,)."""

    def __init__(self, targets, step, discriminator=None, schedule=None):
        self.schedule = schedule or Schedule()
        self.targets = jt.array(targets).stop_grad()
        self.step = step
        self.discriminator = discriminator
        self.target_features = None
        if discriminator is not None:
            with jt.no_grad():
                self.target_features = [f.stop_grad() for f in
                                        discriminator_features(discriminator, self.targets, step)]

    def __call__(self, images):
        distance = self.schedule.pixel_weight * pixel_distance(images, self.targets)
        if self.discriminator is not None:
            features = discriminator_features(self.discriminator, images, self.step)
            distance = distance + self.schedule.feature_weight * feature_distance(
                features, self.target_features)
        return distance


def area_downsample(images, size):
    """``images`` (n, c, s, s) averaged over s/size x s/size blocks down to ``size`` px when
    larger (PyTorch's ``interpolate(mode="area")`` for a whole factor, which the generator's
    powers of two always give); smaller images unchanged."""
    n, c, height, width = images.shape
    if height <= size and width <= size:
        return images
    if height % size or width % size:
        raise ValueError(f"cannot average {height} x {width} px down to {size} px by blocks")
    return images.reshape((n, c, size, height // size, size, width // size)).mean(dims=(3, 5))


class LpipsDistance:
    """NVlabs' projection distance to fixed ``targets`` (n, 3, s, s) in [-1, 1]: LPIPS
    (``metrics.lpips.LPIPS``), both images averaged down to LPIPS_MAX_SIZE px when larger.
    Called on images, it returns the per-image distance (n,)."""

    def __init__(self, targets, lpips):
        self.lpips = lpips
        with jt.no_grad():
            self.target_features = [f.stop_grad() for f in lpips.features(
                area_downsample(jt.array(targets), LPIPS_MAX_SIZE))]

    def __call__(self, images):
        features = self.lpips.features(area_downsample(images, LPIPS_MAX_SIZE))
        return self.lpips.distance(features, self.target_features)


def noise_penalty(noise_maps):
    """Per image (n,): NVlabs' noise regularisation, the squared autocorrelation of each map
    with itself shifted one pixel across and one down, at its size and every halving down to
    SMALLEST_NOISE_SCALE; means taken per image so images do not interact."""
    total = 0
    for maps in noise_maps:
        while True:
            across = (maps * maps.roll(1, 3)).mean(dims=(1, 2, 3))
            down = (maps * maps.roll(1, 2)).mean(dims=(1, 2, 3))
            total = total + across * across + down * down
            if maps.shape[2] <= SMALLEST_NOISE_SCALE:
                break
            maps = avg_pool_2x2(maps)
    return total


def normalized_noise(maps):
    """Each image's map shifted to mean 0 and scaled to mean square 1, as NVlabs' after a step."""
    centred = maps - maps.mean(dims=(1, 2, 3), keepdims=True)
    return centred / jt.sqrt((centred * centred).mean(dims=(1, 2, 3), keepdims=True))


def psnr(images, targets):
    """Per image (n,): peak signal-to-noise ratio in dB of numpy images in [-1, 1]."""
    images = np.clip(np.asarray(images, dtype=np.float64), -1, 1)
    mse = ((images - np.asarray(targets, dtype=np.float64)) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(PEAK_SIGNAL ** 2 / np.maximum(mse, 1e-12))


class Adam:
    """Adam over a few jt.Var (PyTorch's update and bias correction), at a rate set per step."""

    def __init__(self, params, betas=ADAM_BETAS, eps=ADAM_EPS):
        self.params = params
        self.betas, self.eps, self.count = betas, eps, 0
        self.m = [jt.zeros(p.shape).stop_grad() for p in params]
        self.v = [jt.zeros(p.shape).stop_grad() for p in params]

    def step(self, loss, lr):
        grads = jt.grad(loss, self.params)
        self.count += 1
        b1, b2 = self.betas
        correction1, correction2 = 1 - b1 ** self.count, math.sqrt(1 - b2 ** self.count)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.update(b1 * m + (1 - b1) * g)
            v.update(b2 * v + (1 - b2) * g * g)
            p.update(p - (lr / correction1) * m / (jt.sqrt(v) / correction2 + self.eps))
        jt.sync(self.params + self.m + self.v)


def project(generator, targets, step, discriminator=None, w_plus=False, schedule=None,
            seed=0, progress=None, frames=0, lpips=None):
    """Fit latents and noise to ``targets`` (n, 3, 4*2**step, same) in [-1, 1], numpy. The
    distance is LPIPS when ``lpips`` (a ``metrics.lpips.LPIPS``) is given (``discriminator``
    is then not used), else ``ImageDistance``'s.

    Returns an object with ``w`` ((n, code_dim), or (n, step + 1, code_dim) for ``w_plus``),
    ``noise`` (step + 1 maps (n, 1, 4*2**i, 4*2**i)), ``images`` (the reconstructions),
    ``start_images`` (mean w with the initial noise, where the optimisation starts),
    ``distance`` (n,), the final per-image loss without the noise penalty, and ``frames``: up to
    ``frames`` snapshots (n, 3, s, s) of the images during the optimisation, for a GIF.
    ``progress`` (a tqdm bar) advances once a step, with the mean distance as its postfix.
    """
    schedule = schedule or Schedule()
    targets = np.asarray(targets, dtype=np.float32)
    n = targets.shape[0]
    layers = step + 1
    jt.set_global_seed(seed)
    w_avg, w_std = w_statistics(generator)

    w_start = np.repeat(w_avg[:, None, :], layers if w_plus else 1, axis=1)
    w_opt = jt.array(np.repeat(w_start, n, axis=0))                # (n, 1 or layers, code_dim)
    noise = [jt.randn(*shape) for shape in noise_shapes(step, n)]
    distance_of = (LpipsDistance(targets, lpips) if lpips is not None
                   else ImageDistance(targets, step, discriminator, schedule))
    optimizer = Adam([w_opt] + noise)

    def styles(w):
        return w if w_plus else w.broadcast((n, layers, w.shape[2]))

    with jt.no_grad():
        start_images = synthesize(generator, styles(w_opt), noise, step).numpy()
    snapshots = []
    frame_steps = set(np.linspace(0, schedule.steps - 1, frames).round().astype(int)) if frames else set()
    for i in range(schedule.steps):
        t = i / schedule.steps
        # one noise vector for all layers, as NVlabs' (W+ then explores as W does)
        w_noise = jt.randn(n, 1, w_opt.shape[2]) * schedule.w_noise_scale(t, w_std)
        images = synthesize(generator, styles(w_opt + w_noise), noise, step)
        distance = distance_of(images)
        # one sum over 2n terms: Jittor 1.3.11 fails to compile this gradient when the sums
        # are over one image each (n = 1)
        loss = jt.concat([distance, schedule.noise_regularization * noise_penalty(noise)]).sum()
        optimizer.step(loss, schedule.learning_rate(t))
        for maps in noise:
            maps.update(normalized_noise(maps))
        jt.sync(noise)
        if i in frame_steps:
            snapshots.append(images.numpy())
        if progress is not None:
            progress.set_postfix(loss=f"{float(distance.mean().item()):.4f}", refresh=False)
            progress.update(1)

    with jt.no_grad():
        final = synthesize(generator, styles(w_opt), noise, step)
        final_distance = distance_of(final).numpy()
        final = final.numpy()
    w = w_opt.numpy()
    return SimpleNamespace(w=w if w_plus else w[:, 0], noise=[maps.numpy() for maps in noise],
                           images=final, start_images=start_images, distance=final_distance,
                           frames=snapshots)


def discriminator_state_dict(obj):
    """The discriminator state dict held by a loaded checkpoint dict, or None: a training
    checkpoint's or training snapshot's ``discriminator``, or ``obj`` itself when it is one."""
    from files.checkpoint import is_discriminator_state_dict, strip_data_parallel
    obj = strip_data_parallel(obj)
    if isinstance(obj, dict) and "discriminator" in obj:
        inner = strip_data_parallel(obj["discriminator"])
        return inner if is_discriminator_state_dict(inner) else None
    return obj if is_discriminator_state_dict(obj) else None


def load_discriminator(path, width):
    """``(discriminator, None)`` from the checkpoint at ``path`` for a generator of ``width``,
    or ``(None, why)`` when the file holds none; CheckpointError when the file cannot be read
    or its discriminator does not fit."""
    from files.checkpoint import (CheckpointError, describe_object, from_rgb_activated,
                                  is_generator_state_dict, load_checkpoint, strip_data_parallel)
    from model import Discriminator
    obj = load_checkpoint(path)
    state_dict = discriminator_state_dict(obj)
    if state_dict is None:
        kind = ("a generator state dict" if is_generator_state_dict(strip_data_parallel(obj))
                else describe_object(obj))
        return None, f"{path} holds no discriminator ({kind})"
    discriminator = Discriminator(from_rgb_activate=from_rgb_activated(state_dict), width=width)
    try:
        discriminator.load_state_dict(state_dict)
    except ValueError as error:
        raise CheckpointError(f"{path}: its discriminator does not fit the generator (width "
                              f"{width}): {error}") from None
    discriminator.eval()
    return discriminator, None

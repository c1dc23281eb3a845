"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric") on VGG16, in Jittor: the lpips package's ``LPIPS(net="vgg", version="0.1")`` with its
defaults (learned linear layers, one number per image pair), from two weight files the user
gives, read by ``files.checkpoint``'s safe reader (no PyTorch, no code run from either file):

* torchvision's VGG16 (``vgg16-397923af.pth``, a ``torch.save`` state dict): the 13
  convolutions of ``features`` (``features.N.weight`` / ``bias``); its ``classifier.*`` is
  not used;
* the lpips package's linear layers for VGG (``lpips/weights/v0.1/vgg.pth`` inside the
  package): ``lin0.model.1.weight`` .. ``lin4.model.1.weight``, one (1, C, 1, 1) weight each.

For images ``x0``, ``x1`` (N, 3, H, W) in [-1, 1], H and W at least 16:

1. each is shifted and scaled per channel (the lpips ScalingLayer's constants: ImageNet's
   mean and spread, expressed for [-1, 1] input);
2. VGG16's ``features`` run to relu5_3, keeping relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
   (3x3 convolutions with padding 1, ReLU, 2x2 max pools of stride 2 that drop an odd last
   row or column, as PyTorch's floor mode);
3. at each of the five, every pixel's feature vector is divided by its length plus 1e-10
   (lpips' ``normalize_tensor``), the two images' vectors are subtracted and squared;
4. the squares are weighted per channel by the linear layer (a 1x1 convolution to one
   channel, no bias), averaged over the pixels, and the five layers summed.

The distance is differentiable in the images (the projector descends it); the weights are
constants.
"""
import os
from collections import OrderedDict

import numpy as np

import jittor as jt

from files.checkpoint import CheckpointError, check_weight_shapes, load_state_dict
from ops import onednn_conv

# lpips' ScalingLayer: (x - SHIFT) / SCALE per RGB channel, for input in [-1, 1]
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# VGG16's convolutions up to relu5_3, block by block (torchvision's configuration "D"); a 2x2
# max pool stands before every block but the first
BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
NORM_EPS = 1e-10                   # lpips' normalize_tensor: x / (|x| + eps)
# Under the square root of the length only: a pixel whose features are all 0 (every ReLU off)
# then has a finite gradient instead of 0 x inf; it changes no length above ~1e-15 in float32
LENGTH_FLOOR = 1e-30
MIN_SIZE = 16                      # four pools halve 16 px to relu5_3's 1 px
VGG_WEIGHTS_NAME = "vgg16-397923af.pth"
VGG_WEIGHTS_URL = "https://download.pytorch.org/models/" + VGG_WEIGHTS_NAME
LIN_WEIGHTS_NAME = "lpips/weights/v0.1/vgg.pth"
IGNORED_VGG_PREFIX = "classifier."
LIN_KEY = "lin{}.model.1.weight"


class LpipsWeightsError(CheckpointError):
    """A weight file is missing, unsafe, damaged or another network's (one line)."""


def vgg_feature_shapes():
    """``{key: shape}`` of the convolutions torchvision's ``vgg16().features`` holds up to
    relu5_3, in its order: a convolution and its ReLU take two indices, a pool one."""
    shapes, index, channels = OrderedDict(), 0, 3
    for block, widths in enumerate(BLOCKS):
        if block:
            index += 1
        for width in widths:
            shapes[f"features.{index}.weight"] = (width, channels, 3, 3)
            shapes[f"features.{index}.bias"] = (width,)
            index += 2
            channels = width
    return shapes


def lin_shapes():
    """``{key: shape}`` of the lpips package's linear layers for VGG."""
    return OrderedDict((LIN_KEY.format(k), (1, widths[-1], 1, 1))
                       for k, widths in enumerate(BLOCKS))


def read_weights(path, shapes, what, ignored=None):
    """``{key: float32 array}`` for ``shapes``' keys from the file at ``path`` (safe reader);
    LpipsWeightsError naming the file when it cannot be read or is not ``what``."""
    expected = f"expected {what} (a torch.save state dict)"
    try:
        state_dict = load_state_dict(path, expected)
    except CheckpointError as error:
        raise LpipsWeightsError(str(error)) from None
    try:
        check_weight_shapes(state_dict, shapes, what, LpipsWeightsError,
                            None if ignored is None else lambda key: key.startswith(ignored))
    except LpipsWeightsError as error:
        raise LpipsWeightsError(f"{path}: {error}") from None
    return OrderedDict((key, np.asarray(state_dict[key], np.float32)) for key in shapes)


def max_pool_2x2(x):
    """2x2 max pool of stride 2; an odd last row or column is dropped (PyTorch's floor mode)."""
    n, c, h, w = x.shape
    if h % 2 or w % 2:
        x = x[:, :, :h - h % 2, :w - w % 2]
    return x.reshape((n, c, h // 2, 2, w // 2, 2)).max(dims=(3, 5))


def unit_length(x):
    """Each pixel's feature vector divided by its length + NORM_EPS (lpips' normalize_tensor)."""
    length = jt.sqrt((x * x).sum(dim=1, keepdims=True) + LENGTH_FLOOR)
    return x / (length + NORM_EPS)


class LPIPS:
    """``lpips.LPIPS(net="vgg", version="0.1")`` with given weights (``load_lpips`` reads them
    from the files). Called on two (N, 3, H, W) batches in [-1, 1], returns (N,) distances."""

    def __init__(self, vgg_weights, lin_weights):
        keys = list(vgg_weights)
        self.convolutions = []      # per block: [(weight, bias), ...]
        for widths in BLOCKS:
            block = []
            for _ in widths:
                weight, bias = vgg_weights[keys.pop(0)], vgg_weights[keys.pop(0)]
                block.append((jt.array(weight).stop_grad(), jt.array(bias).stop_grad()))
            self.convolutions.append(block)
        # the 1x1 convolution to one channel, as per-channel weights (1, C, 1, 1)
        self.lins = [jt.array(lin_weights[LIN_KEY.format(k)].reshape(1, -1, 1, 1)).stop_grad()
                     for k in range(len(BLOCKS))]
        self.shift = jt.array(np.array(SHIFT, np.float32).reshape(1, 3, 1, 1)).stop_grad()
        self.scale = jt.array(np.array(SCALE, np.float32).reshape(1, 3, 1, 1)).stop_grad()

    def features(self, images):
        """The five unit-length feature maps (relu1_2 .. relu5_3) of (N, 3, H, W) images in
        [-1, 1]; ValueError when H or W is under MIN_SIZE."""
        if len(images.shape) != 4 or images.shape[1] != 3:
            raise ValueError(f"LPIPS takes (N, 3, H, W) images, got shape {tuple(images.shape)}")
        if min(images.shape[2:]) < MIN_SIZE:
            raise ValueError(f"LPIPS needs images of at least {MIN_SIZE} x {MIN_SIZE} px, got "
                             f"{images.shape[2]} x {images.shape[3]}")
        x = (images - self.shift) / self.scale
        out = []
        for index, block in enumerate(self.convolutions):
            if index:
                x = max_pool_2x2(x)
            for weight, bias in block:
                x = jt.nn.relu(onednn_conv.conv2d(x, weight, bias, stride=1, padding=1))
            out.append(unit_length(x))
        return out

    def layer_distances(self, features0, features1):
        """Per layer, per image: the weighted squared difference of two images' unit features,
        averaged over the pixels; a list of five (N,) values."""
        return [((a - b) * (a - b) * lin).sum(dim=1).mean(dims=(1, 2))
                for a, b, lin in zip(features0, features1, self.lins)]

    def distance(self, features0, features1):
        """(N,) LPIPS from two images' ``features`` (so fixed targets' are computed once)."""
        total = 0
        for value in self.layer_distances(features0, features1):
            total = total + value
        return total

    def __call__(self, images0, images1):
        return self.distance(self.features(images0), self.features(images1))


def load_lpips(vgg16_path, lin_path):
    """LPIPS with torchvision's VGG16 weights at ``vgg16_path`` and the lpips package's VGG
    linear layers at ``lin_path``; LpipsWeightsError (one line naming the file) when either is
    missing, would run code, is damaged or holds another network."""
    for path, where in ((vgg16_path, f"download torchvision's {VGG_WEIGHTS_URL}"),
                        (lin_path, f"the lpips package holds it as {LIN_WEIGHTS_NAME}")):
        if not os.path.exists(path):
            raise LpipsWeightsError(f"{path}: no such file; {where}")
    vgg = read_weights(vgg16_path, vgg_feature_shapes(),
                       f"torchvision's VGG16 weights ({VGG_WEIGHTS_NAME})", IGNORED_VGG_PREFIX)
    lin = read_weights(lin_path, lin_shapes(),
                       f"the lpips package's VGG linear layers ({LIN_WEIGHTS_NAME})")
    return LPIPS(vgg, lin)

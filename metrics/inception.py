"""The Inception-v3 that FID is computed with, in Jittor: pytorch-fid's ``InceptionV3`` up to its
2048-d pool features, with pytorch-fid's weight file ``pt_inception-2015-12-05-6726825d.pth``.

pytorch-fid (mseitzer/pytorch-fid, ``src/pytorch_fid/inception.py``) ports the TensorFlow graph of
2015-12-05 that the FID paper and the StyleGAN papers used. It differs from torchvision's
Inception-v3 in three places, all kept here:

* the A and C blocks (``Mixed_5b..5d``, ``Mixed_6b..6e``) and the first E block (``Mixed_7b``)
  average-pool without counting the zero padding (TensorFlow's ``avg_pool``);
* the second E block (``Mixed_7c``) max-pools instead of average-pooling in its pool branch;
* 1008 classes (unused here: the features are taken before the classifier).

Input: (N, 3, H, W) images of any size with values 0..255 (the uint8 values a PNG holds). As
pytorch-fid does (``ToTensor`` then ``InceptionV3(resize_input=True, normalize_input=True)``),
pixels are divided by 255, resized to 299 x 299 bilinearly (``F.interpolate(mode="bilinear",
align_corners=False)``, no antialiasing, so a large image is sampled, not averaged) and scaled to
[-1, 1]. Output: (N, 2048) float32, the global average of ``Mixed_7c``'s maps.

Each ``BasicConv2d`` (convolution without bias, batch norm with eps 0.001 in eval mode, ReLU) is
run as one convolution with the batch norm folded into its weight and bias; pools, concatenation
and the average are Jittor's operators. The weight file is read by ``files.checkpoint``'s safe
reader (no PyTorch, no code run from the file); ``load_weights`` checks every key and shape.
"""
import hashlib
import os
from collections import OrderedDict

import numpy as np

import jittor as jt
from jittor import nn

from files.checkpoint import CheckpointError, check_weight_shapes, load_state_dict
from ops import onednn_conv

INPUT_SIZE = 299                  # pytorch-fid resizes every image to 299 x 299
FEATURES = 2048                   # the pool features FID is computed on
CLASSES = 1008                    # the TF graph's classifier (its weights are in the file)
BN_EPS = 1e-3                     # torchvision's BasicConv2d: BatchNorm2d(eps=0.001)
PIXEL_MAX = 255.0
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               + WEIGHTS_NAME)
WEIGHTS_SHA256_PREFIX = "6726825d"   # torch hub's convention: the name holds the hash's start
BN_KEYS = ("weight", "bias", "running_mean", "running_var")
OPTIONAL_SUFFIX = ".num_batches_tracked"   # written by PyTorch >= 0.4.1, not needed


class InceptionWeightsError(CheckpointError):
    """The weight file is missing, unsafe, damaged or another network's (one line)."""


# ------------------------------------------------------------------------------------------------
# The architecture: torchvision's module names, which are the weight file's keys
# ------------------------------------------------------------------------------------------------

class BasicConv2d(jt.Module):
    """Convolution (no bias) + batch norm (eval, folded in) + ReLU; the weights come from
    ``fold`` (the module holds no parameters of its own until then)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        kernel = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
        self.shape = (out_channels, in_channels) + kernel
        self.stride = stride
        self.padding = padding if isinstance(padding, tuple) else (padding, padding)
        self.weight = jt.zeros(self.shape)
        self.bias = jt.zeros((out_channels,))

    def fold(self, conv_weight, bn):
        """Set the folded weight and bias from the file's ``conv.weight`` and ``bn.*``."""
        scale = bn["weight"].astype(np.float64) / np.sqrt(bn["running_var"].astype(np.float64)
                                                          + BN_EPS)
        weight = conv_weight.astype(np.float64) * scale[:, None, None, None]
        bias = bn["bias"].astype(np.float64) - bn["running_mean"].astype(np.float64) * scale
        self.weight = jt.array(weight.astype(np.float32))
        self.bias = jt.array(bias.astype(np.float32))

    def execute(self, x):
        if self.padding[0] == self.padding[1] and self.shape[2] == self.shape[3]:
            y = onednn_conv.conv2d(x, self.weight, self.bias, stride=self.stride,
                                   padding=self.padding[0])
        else:  # the 1x7, 7x1, 1x3 and 3x1 kernels
            y = nn.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return nn.relu(y)


def average_pool_3x3(x):
    """3x3, stride 1, padding 1, the padding not counted (TensorFlow's avg_pool): the sum over
    the window divided by the pixels it covers inside the map (9, 6 on the edges, 4 in the
    corners). Jittor 1.3.11's ``avg_pool2d(count_include_pad=False)`` divides by 9 everywhere."""
    height, width = x.shape[2], x.shape[3]
    rows = 3 - (np.arange(height) == 0) - (np.arange(height) == height - 1)
    columns = 3 - (np.arange(width) == 0) - (np.arange(width) == width - 1)
    scale = jt.array((9.0 / np.outer(rows, columns)).astype(np.float32))
    return nn.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True) * scale


def max_pool_3x3(x, stride=1, padding=1):
    return nn.max_pool2d(x, 3, stride=stride, padding=padding)


class InceptionA(jt.Module):
    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def execute(self, x):
        return jt.concat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(average_pool_3x3(x)),
        ], dim=1)


class InceptionB(jt.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def execute(self, x):
        return jt.concat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            max_pool_3x3(x, stride=2, padding=0),
        ], dim=1)


class InceptionC(jt.Module):
    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def execute(self, x):
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            double = layer(double)
        return jt.concat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(average_pool_3x3(x)),
        ], dim=1)


class InceptionD(jt.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def execute(self, x):
        seven = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            seven = layer(seven)
        return jt.concat([
            self.branch3x3_2(self.branch3x3_1(x)),
            seven,
            max_pool_3x3(x, stride=2, padding=0),
        ], dim=1)


class InceptionE(jt.Module):
    """The E block; ``max_pool`` is pytorch-fid's second E block (``FIDInceptionE_2``), which
    max-pools where the first average-pools."""

    def __init__(self, in_channels, max_pool=False):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def execute(self, x):
        three = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = max_pool_3x3(x) if self.max_pool else average_pool_3x3(x)
        return jt.concat([
            self.branch1x1(x),
            self.branch3x3_2a(three), self.branch3x3_2b(three),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        ], dim=1)


class FIDInceptionV3(jt.Module):
    """pytorch-fid's ``InceptionV3()`` (output block 3): images -> (N, 2048) pool features."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.loaded = False

    def convolutions(self):
        """``{file prefix: BasicConv2d}``, e.g. ``Mixed_5b.branch1x1``, in the network's order."""
        return OrderedDict((name, module) for name, module in self.named_modules()
                           if isinstance(module, BasicConv2d))

    def execute(self, x):
        """``x``: (N, 3, 299, 299) float32 in [-1, 1] -> (N, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = max_pool_3x3(x, stride=2, padding=0)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = max_pool_3x3(x, stride=2, padding=0)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return x.mean(dims=(2, 3))


def expected_shapes():
    """``{key: shape}`` of every tensor the weight file must hold (pytorch-fid's
    ``fid_inception_v3().state_dict()``, less the optional ``*.num_batches_tracked``)."""
    shapes = OrderedDict()
    for name, module in FIDInceptionV3().convolutions().items():
        shapes[f"{name}.conv.weight"] = module.shape
        for key in BN_KEYS:
            shapes[f"{name}.bn.{key}"] = (module.shape[0],)
    shapes["fc.weight"] = (CLASSES, FEATURES)
    shapes["fc.bias"] = (CLASSES,)
    return shapes


# ------------------------------------------------------------------------------------------------
# The weight file
# ------------------------------------------------------------------------------------------------

def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def is_optional_key(key, shapes):
    """``*.num_batches_tracked`` of a batch norm whose weight is expected (PyTorch >= 0.4.1)."""
    return key.endswith(OPTIONAL_SUFFIX) and key[:-len(OPTIONAL_SUFFIX)] + ".weight" in shapes


def check_state_dict(state_dict):
    """Raise InceptionWeightsError (one line) unless ``state_dict`` holds every key of
    ``expected_shapes`` with its shape, finite, and nothing else but ``*.num_batches_tracked``."""
    shapes = expected_shapes()
    check_weight_shapes(state_dict, shapes, "pytorch-fid's Inception weights",
                        InceptionWeightsError, lambda key: is_optional_key(key, shapes))


def load_weights(path, model=None):
    """``model`` (a new FIDInceptionV3 when None) with the weights of pytorch-fid's file at
    ``path``, read without PyTorch; InceptionWeightsError with one line when the file is
    missing, would run code, is damaged or truncated, or holds another network."""
    expected = (f"expected pytorch-fid's Inception weights ({WEIGHTS_NAME}, a torch.save state "
                f"dict)")
    try:
        state_dict = load_state_dict(path, expected)
    except CheckpointError as error:
        raise InceptionWeightsError(str(error)) from None
    try:
        check_state_dict(state_dict)
    except InceptionWeightsError as error:
        raise InceptionWeightsError(f"{path}: {error}") from None
    model = FIDInceptionV3() if model is None else model
    for name, module in model.convolutions().items():
        module.fold(state_dict[f"{name}.conv.weight"],
                    {key: state_dict[f"{name}.bn.{key}"] for key in BN_KEYS})
    model.eval()
    model.loaded = True
    return model


# ------------------------------------------------------------------------------------------------
# Images to features
# ------------------------------------------------------------------------------------------------

def bilinear_taps(in_size, out_size=INPUT_SIZE):
    """For each output index: the two source indices and the second one's weight, as PyTorch's
    bilinear ``interpolate(align_corners=False)`` computes them (source = (i + 0.5) * in / out
    - 0.5, clamped at 0; the upper neighbour clamped to the last index)."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    source = np.maximum(source, np.float32(0))
    low = source.astype(np.int64)
    weight = (source - low).astype(np.float32)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, weight


def to_inception_input(pixels, size=INPUT_SIZE):
    """(N, 3, H, W) values 0..255 -> (N, 3, size, size) float32 in [-1, 1] as pytorch-fid makes
    them: / 255, bilinear to ``size`` (align_corners False, no antialiasing), x 2 - 1."""
    x = np.asarray(pixels)
    if x.shape[2] != size:  # rows picked before any float copy: a large image is never widened
        low, high, weight = bilinear_taps(x.shape[2], size)
        x = (x[:, :, low].astype(np.float32) * (1 - weight)[:, None]
             + x[:, :, high].astype(np.float32) * weight[:, None])
    if x.shape[3] != size:
        low, high, weight = bilinear_taps(x.shape[3], size)
        x = x[..., low].astype(np.float32) * (1 - weight) + x[..., high].astype(np.float32) * weight
    x = x.astype(np.float32) / np.float32(PIXEL_MAX)
    return x * np.float32(2) - np.float32(1)


def check_pixels(pixels):
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[1] != 3 or min(pixels.shape[2:]) < 1:
        raise ValueError(f"images must be an (N, 3, H, W) array, got shape {pixels.shape}")
    return pixels


def features(model, pixels, batch=50, progress=None):
    """(N, 2048) float32 pool features of (N, 3, H, W) images with values 0..255, ``batch`` at
    a time (the memory used grows with ``batch``, not N). ``pixels`` may also be an iterable of
    such arrays (batches of any size, e.g. images as they are generated). ``progress``: optional
    tqdm-like object, ``update(k)`` after each k images."""
    if not getattr(model, "loaded", False):
        raise ValueError("the Inception network has no weights: use load_weights")
    chunks = [check_pixels(pixels)] if isinstance(pixels, np.ndarray) else pixels
    out = []
    with jt.no_grad():
        for chunk in chunks:
            chunk = check_pixels(chunk)
            for start in range(0, len(chunk), batch):
                part = chunk[start:start + batch]
                x = jt.array(to_inception_input(part))
                out.append(model(x).numpy().astype(np.float32))
                del x
                jt.gc()
                if progress is not None:
                    progress.update(len(part))
    if not out:
        return np.zeros((0, FEATURES), np.float32)
    return np.concatenate(out)


def default_weights_path(environ=os.environ):
    """Where pytorch-fid's own download lands (torch hub's cache): ``$TORCH_HOME/hub/checkpoints/``
    or ``~/.cache/torch/hub/checkpoints/``, so a machine that ran pytorch-fid already has it."""
    torch_home = environ.get("TORCH_HOME") or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return os.path.join(torch_home, "hub", "checkpoints", WEIGHTS_NAME)


def missing_weights_message(path):
    """The one line said when the weight file is not there: where to get it, where it goes."""
    return (f"no Inception weights at {path}: download pytorch-fid's {WEIGHTS_URL} and put it "
            f"there, or pass --inception FILE")

"""Reading images as training does: which files are images, and how one becomes an RGB square.

The rules of resize.py's outputs and of the data folders alike: any common format and colour mode
(converted to RGB, alpha composited on white, 16-bit scaled to 8), EXIF orientation applied,
centre-cropped to a square and resized with LANCZOS, as the reference's ``resize.py`` and the
PyTorch original's ``prepare_data.py`` do. Needs no Jittor.
"""
import io
import os

import numpy as np
from PIL import Image, ImageOps

from files.atomic import atomic_write
from files.grid import PNG_OPTIONS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
BACKGROUND = (255, 255, 255)  # what transparent pixels become
RESAMPLE = Image.LANCZOS
JPEG_QUALITY = 100  # rosinality's prepare_data.py stores its JPEGs at quality 100
JPEG_FULL_CHROMA = 0  # 4:4:4, no colour subsampling: small images lose too much otherwise
SAVE_OPTIONS = {"JPEG": {"quality": JPEG_QUALITY, "subsampling": JPEG_FULL_CHROMA},
                "WEBP": {"lossless": True}, "PNG": PNG_OPTIONS}
SIXTEEN_BIT_TO_EIGHT = 257.0  # 65535 / 255
EXIF_ORIENTATION = 0x0112
# How the files of IMAGE_EXTENSIONS begin: enough to tell an image from other bytes without
# decoding it (WebP: "RIFF", four bytes of length, then "WEBP").
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")
WEBP_SIGNATURE = (b"RIFF", b"WEBP")
SIGNATURE_BYTES = 12

def is_power_of_two(n):
    return isinstance(n, int) and n > 0 and n & (n - 1) == 0


def list_images(folder):
    """Sorted names of the image files in ``folder`` (any letter case; hidden files left out)."""
    names = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
            names.append(entry.name)
    return sorted(names)


def to_rgb(img):
    """``img`` as an RGB image: grayscale, palette, CMYK and 16-bit converted, alpha on white."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode.startswith("I"):  # 16/32-bit grayscale: PIL's convert would clip at 255
        pixels = np.asarray(img, dtype=np.float64)
        if pixels.max() > 255:
            pixels = pixels / SIXTEEN_BIT_TO_EIGHT
        img = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def center_crop_square(img):
    """The largest centred square of ``img`` (``img`` itself when already square)."""
    width, height = img.size
    if width == height:
        return img
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return img.crop((left, top, left + side, top + side))


def upright(img):
    """``img`` turned as its EXIF orientation tag says (photos from cameras); most images have
    no such tag and come back unchanged."""
    if img.getexif().get(EXIF_ORIENTATION, 1) != 1:
        return ImageOps.exif_transpose(img)
    return img


def square_rgb(img):
    """``img`` upright, RGB and centre-cropped to a square."""
    return center_crop_square(to_rgb(upright(img)))


def prepare_image(img, size):
    """``img`` as an RGB square of side ``size``: the exact pixels when already so, else
    converted, centre-cropped and resized with LANCZOS (what ``resize.py`` writes)."""
    square = square_rgb(img)
    if square.size != (size, size):
        square = square.resize((size, size), RESAMPLE)
    return square


def looks_like_image(head):
    """True when the bytes ``head`` (a file's first SIGNATURE_BYTES or more) begin a JPEG, PNG,
    BMP or WebP file."""
    head = bytes(head[:SIGNATURE_BYTES])
    return head.startswith(IMAGE_SIGNATURES) or (
        head[:4] == WEBP_SIGNATURE[0] and head[8:12] == WEBP_SIGNATURE[1])


def encode_image(img, fmt):
    """``img`` as the bytes of a ``fmt`` file ("JPEG", "PNG", ...), saved with the options
    resize.py's outputs use (JPEG at quality 100 without chroma subsampling, ...)."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
    return buffer.getvalue()


def save_atomically(img, path):
    """Save ``img`` to ``path`` through a hidden temporary file, so a run that is stopped never
    leaves a truncated image under a real name (it would look up to date on the next run)."""
    fmt = Image.registered_extensions()[os.path.splitext(path)[1].lower()]
    with atomic_write(path) as temporary:  # WriteError (one line) on a full disk, ...
        with open(temporary, "wb") as f:
            img.save(f, format=fmt, **SAVE_OPTIONS.get(fmt, {}))

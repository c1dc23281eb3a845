"""The errors every image source raises, and the one message for a source that lacks sizes
(``files/datasets.py``'s folders, ``lmdb_data``'s LMDBs, ``zip_data``'s zips). Needs no Jittor."""
import shlex

from PIL import Image


class DatasetError(ValueError):
    """A data source is missing, incomplete, hostile or lacks a size; or an image in it cannot
    be read. The text is one line, naming the path and what to do."""


class UnreadableImage(DatasetError):
    """An image cannot be read (damaged, truncated, deleted, a decompression bomb); ``path``
    names it (None when another MPI process met it)."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path


# What Pillow raises for a file it cannot read; DecompressionBombError (an image far over
# Image.MAX_IMAGE_PIXELS, a guard against memory exhaustion) is none of the others.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def size_list(sizes):
    return ", ".join(str(size) for size in sorted(sizes))


def missing_sizes_error(source, have, missing, largest):
    """The DatasetError for an LMDB or zip ``source`` that holds the sizes ``have`` but not
    ``missing``: the ones below ``largest`` come with the resize.py command that adds them."""
    smaller = [size for size in missing if size < largest]
    larger = [size for size in missing if size > largest]
    hints = []
    if smaller:
        hints.append(f"add them with: python resize.py {shlex.quote(source.path)} "
                     f"--min_size {min(smaller)}")
    if larger:
        hints.append(f"{size_list(larger)} cannot be made from {largest} px, its largest size, "
                     f"since resize.py only shrinks: train with --max_size {largest} or make "
                     f"the data set from larger images")
    return DatasetError(f"{source.path} ({source.kind}) lacks sizes {size_list(missing)} (it "
                        f"holds {size_list(have) or 'none'}); " + "; ".join(hints))

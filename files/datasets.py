"""Where training images come from, behind one small interface: a folder per size (resize.py's),
an LMDB of the PyTorch original's ``prepare_data.py``, or a zip of NVlabs' ``dataset_tool.py``.

    source = open_source("data")        # data/8, data/16, ... written by resize.py
    source = open_source("data.lmdb")   # keys '8-00000', '16-00000', ... and 'length'
    source = open_source("data.zip")    # one size in the zip, the smaller ones in data/<size>
    source.check([8, 16, 32])           # one DatasetError naming every missing size and the
                                        # command that makes them
    items = source.items(8)             # what there is to read at size 8, in a fixed order
    img = source.open_image(8, items[0])  # a decoded PIL image (IMAGE_ERRORS if it cannot be)
    source.describe(8, items[0])        # its name in messages: a path, 'data.lmdb key 8-00000'

``dataset.py`` turns what a source gives into training arrays; ``resize.py`` reads sources to
write smaller sizes. Everything read is untrusted: nothing in a data set runs code, and a
hostile or unfinished zip or LMDB stops with one DatasetError line before anything is written.
The LMDB and zip sources reopen their handle in each new process: a forked loader worker must
not share its parent's LMDB environment or zip file position. Needs no Jittor.
"""
import os
import shlex

from PIL import Image

from files.data_errors import DatasetError
from files.images import is_power_of_two, list_images


def open_source(path):
    """The image source at ``path``: an LMDB (a folder holding ``data.mdb``), a zip file, or
    else a folder of size folders (also when ``path`` does not exist: its check says so).
    Raises DatasetError for an LMDB or zip that cannot be used."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, LMDB_DATA_FILE)):
        from files.lmdb_data import LmdbSource  # the lmdb package only where an LMDB is read
        return LmdbSource(path)
    if os.path.isfile(path):
        from files.zip_data import ZipSource
        return ZipSource(path)
    return FolderSource(path)


LMDB_DATA_FILE = "data.mdb"


class FolderSource:
    """``root/<size>/``: one folder of images per size, as resize.py writes them."""

    kind = "folders"
    repair = "remove or replace it"

    def __init__(self, root):
        self.path = root
        self.notes = []

    def items(self, size):
        folder = resolution_folder(self.path, size)
        return [os.path.join(folder, name) for name in list_images(folder)]

    def open_image(self, size, item):
        with Image.open(item) as img:
            img.load()  # decode now, so a truncated file fails here
            return img

    def describe(self, size, item):
        return item

    def check(self, sizes):
        check_folders(self.path, sizes)

    def close(self):
        pass


def resolution_folder(root, resolution):
    return os.path.join(root, str(resolution))


def _image_count(folder):
    return len(list_images(folder)) if os.path.isdir(folder) else 0


def largest_image_folder(root):
    """The largest power-of-two size ``s`` such that ``root/<s>`` holds images; None if none."""
    if not os.path.isdir(root):
        return None
    sizes = [int(name) for name in os.listdir(root) if name.isdigit() and is_power_of_two(int(name))]
    sizes = [size for size in sizes if _image_count(resolution_folder(root, size))]
    return max(sizes, default=None)


def resize_command(root, sizes):
    """The shell command that writes ``root/<size>`` for every size in ``sizes`` from the
    largest image folder in ``root``; None when there is no folder larger than all of them."""
    source = largest_image_folder(root)
    if source is None or source <= max(sizes):
        return None
    return (f"python resize.py {shlex.quote(resolution_folder(root, source))} "
            f"--min_size {min(sizes)}")


def check_folders(root, sizes):
    """Raise one DatasetError naming every folder ``root/<size>`` (for ``size`` in ``sizes``)
    that is missing or holds no images, with the resize.py command that writes them."""
    problems, missing = [], []
    for size in sorted(set(sizes)):
        folder = resolution_folder(root, size)
        if not os.path.isdir(folder):
            problems.append(f"{folder} (missing)")
        elif not _image_count(folder):
            problems.append(f"{folder} (no images)")
        else:
            continue
        missing.append(size)
    if not missing:
        return
    source = largest_image_folder(root)
    smaller = [size for size in missing if source is not None and size < source]
    larger = [size for size in missing if size not in smaller]
    hints = []
    if smaller:
        hints.append(f"make them with: {resize_command(root, smaller)}")
    if larger and source is not None:
        hints.append(f"{', '.join(resolution_folder(root, s) for s in larger)} cannot be made "
                     f"from {resolution_folder(root, source)}, the largest image folder, since "
                     f"resize.py only shrinks: put images of that size there")
    if larger and source is None:
        example = resolution_folder(root, "<size>")
        hints.append(f"no image folder in {root}: put square images in {example} (or run: "
                     f"python build_emoji.py {shlex.quote(root)}, which writes "
                     f"{resolution_folder(root, 128)}), then run: python resize.py {example} "
                     f"--min_size {min(missing)}")
    raise DatasetError(f"missing or empty resolution folders: {', '.join(problems)}; "
                       + "; ".join(hints))

"""NVlabs' ``dataset_tool.py`` zips (StyleGAN2-ADA, StyleGAN3), read as they are.

Such a zip holds PNG images of one square power-of-two size in numbered folders
(``00000/img00000000.png``, ...) and ``dataset.json`` with optional class labels. Training here
is unconditional, so the labels are ignored (one note says so).

The zip gives its own size directly. The smaller sizes are made once, by
``python resize.py data.zip --min_size 8``, into resize.py's folders beside the zip
(``data/8``, ``data/16``, ...; each image under its member name with ``/`` turned into ``_``),
and read from there: resizing on the fly would decode every full-size image again for every
small image in every epoch, and the low-resolution phases, with their large batches, would
then wait on the decoder.

The zip is untrusted: a member whose name leaves the zip's folder (``../x``, ``/x``, ``C:x``),
a member larger than MAX_MEMBER_BYTES once decompressed (a zip bomb), a member that is neither
an image nor ``dataset.json``, or a zip without its central directory (still being written, or
cut short) each stop with one DatasetError line before anything is read or written.
"""
import io
import json
import os
import zipfile

from PIL import Image

from files.data_errors import DatasetError, missing_sizes_error
from files.images import IMAGE_EXTENSIONS, SIGNATURE_BYTES, is_power_of_two, looks_like_image

LABELS_FILE = "dataset.json"
# Far above any image of a data set (an uncompressed 4096 px RGBA PNG is 64 MiB), far below what
# would exhaust memory when several loader workers each decompress one.
MAX_MEMBER_BYTES = 256 * 2 ** 20


def output_name(member):
    """The file name of ``member`` in the size folders beside the zip."""
    return member.replace("/", "_")


def is_unsafe_name(name):
    """True for a member name that would leave the zip's folder if extracted."""
    parts = name.replace("\\", "/").split("/")
    return (name.startswith(("/", "\\")) or "\x00" in name or ".." in parts
            or (len(name) > 1 and name[1] == ":"))


class ZipSource:
    """A dataset_tool.py zip: ``size`` is its images' side; ``members`` its images, sorted;
    ``folder_root`` where the smaller sizes are (the zip's path without ``.zip``)."""

    kind = "zip"
    repair = "make the zip again from its images"

    def __init__(self, path):
        self.path = path
        self.folder_root = os.path.splitext(path)[0]
        self.notes = []
        self._zip_pid, self._zip = None, None
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
                self.members = self._image_members(infos)
                self.size = self._image_size(archive)
                labels = [info for info in infos if info.filename == LABELS_FILE]
                if labels:
                    self._note_labels(archive, labels[0])
        except zipfile.BadZipFile as error:
            raise DatasetError(f"{path} is not a complete zip file ({error}): it is still being "
                               f"written, was cut short, or is no zip; give a data folder, an "
                               f"LMDB or a dataset_tool.py zip") from None
        except OSError as error:
            raise DatasetError(f"cannot read {path} ({type(error).__name__}: {error})") from None

    def _image_members(self, infos):
        images, others, seen = [], [], set()
        for info in infos:
            name = info.filename
            if is_unsafe_name(name):
                raise DatasetError(f"{self.path}: member {name!r} points outside the zip's folder "
                                   f"(a path traversal); refusing the zip")
            if info.is_dir():
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                raise DatasetError(
                    f"{self.path}: member {name!r} decompresses to {info.file_size} bytes (from "
                    f"{info.compress_size}), over the {MAX_MEMBER_BYTES} allowed: a zip bomb or "
                    f"no image data set; refusing the zip")
            if name == LABELS_FILE:
                continue
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                others.append(name)
                continue
            if output_name(name) in seen:
                raise DatasetError(f"{self.path}: member {name!r} appears twice (or clashes "
                                   f"with another once '/' becomes '_'); refusing the zip")
            seen.add(output_name(name))
            images.append(name)
        if others:
            more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
            raise DatasetError(f"{self.path}: member {others[0]!r}{more} is not an image; a "
                               f"dataset_tool.py zip holds only images and {LABELS_FILE}")
        if not images:
            raise DatasetError(f"{self.path} holds no images "
                               f"(looked for {' '.join(IMAGE_EXTENSIONS)})")
        return sorted(images)

    def _image_size(self, archive):
        first = self.members[0]
        try:
            with archive.open(first) as member, Image.open(member) as img:
                width, height = img.size
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DatasetError(f"cannot read {self.path}:{first} ({type(error).__name__}: "
                               f"{error}); {self.repair}") from None
        if width != height or not is_power_of_two(width):
            raise DatasetError(f"{self.path}: its images are {width}x{height}; a dataset_tool.py "
                               f"zip for training holds squares of a power-of-two size "
                               f"(dataset_tool.py --width N --height N --transform center-crop)")
        return width

    def _note_labels(self, archive, info):
        try:
            labels = json.loads(archive.read(info)).get("labels")
        except (ValueError, RecursionError, AttributeError, zipfile.BadZipFile):
            labels = "unreadable"
        if labels:
            what = (f"class labels for {len(labels)} images" if isinstance(labels, list)
                    else "labels")
            self.notes.append(f"{self.path}: its {LABELS_FILE} has {what}; training is "
                              f"unconditional and ignores them")

    def archive(self):
        """This process's open zip (opened anew after a fork: a file position must not be
        shared with the parent)."""
        if self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def sizes(self):
        return [self.size]

    def items(self, size):
        return self.members

    def size_file(self, size, member):
        return os.path.join(self.folder_root, str(size), output_name(member))

    def read_bytes(self, member):
        """The bytes of ``member``; OSError when they cannot be had (a bad CRC, a cut file)."""
        try:
            with self.archive().open(member) as stream:
                return stream.read(MAX_MEMBER_BYTES + 1)
        except zipfile.BadZipFile as error:
            raise OSError(f"{error}") from None

    def open_image(self, size, member):
        if size != self.size:
            with Image.open(self.size_file(size, member)) as img:
                img.load()
                return img
        with Image.open(io.BytesIO(self.read_bytes(member))) as img:
            img.load()
            return img

    def describe(self, size, member):
        if size != self.size:
            return self.size_file(size, member)
        return f"{self.path}:{member}"

    def missing_files(self, size):
        """Members whose image at ``size`` is not in its folder or is older than the zip."""
        folder = os.path.join(self.folder_root, str(size))
        zip_time = os.stat(self.path).st_mtime_ns
        try:
            with os.scandir(folder) as entries:
                times = {entry.name: entry.stat().st_mtime_ns for entry in entries}
        except OSError:
            return list(self.members)
        return [m for m in self.members if times.get(output_name(m), -1) < zip_time]

    def check(self, sizes):
        """DatasetError unless every size in ``sizes`` can be read: the zip's own size (each
        member must begin like an image), or a smaller one with its folder complete and newer
        than the zip."""
        if self.size in sizes:
            self.check_members()
        missing = [size for size in sorted(set(sizes))
                   if size != self.size and (size > self.size or self.missing_files(size))]
        if missing:
            have = [self.size] + [size for size in sizes
                                  if size < self.size and size not in missing]
            raise missing_sizes_error(self, have, missing, self.size)

    def check_members(self):
        """DatasetError unless every image member begins like an image."""
        archive = self.archive()
        for member in self.members:
            try:
                with archive.open(member) as stream:
                    head = stream.read(SIGNATURE_BYTES)
            except (zipfile.BadZipFile, OSError) as error:
                raise DatasetError(f"cannot read {self.path}:{member} ({error}); "
                                   f"{self.repair}") from None
            if not looks_like_image(head):
                raise DatasetError(f"{self.path}:{member} is not an image (it begins "
                                   f"{head!r}); {self.repair}")

    def close(self):
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip, self._zip_pid = None, None

"""The latent and direction files the server may read: those it was started with, and the
``.npz`` files directly inside the folders it was started with. A request names a file by its
listed name, never by a path, so a name such as ``../../etc/passwd`` matches nothing.
"""
import os

from explorer.state import FILE_NAME

SUFFIX = ".npz"


class Catalogue:
    """Names -> paths for one kind of file ("latents" or "directions"), from files and folders.

    A folder is listed again at every ``names()``, so files written into it after the start
    appear; a file whose real path leaves its folder (a symbolic link out of it) is not listed.
    """

    def __init__(self, kind, paths):
        self.kind = kind
        self.files = []
        self.folders = []
        for path in paths:
            (self.folders if os.path.isdir(path) else self.files).append(os.path.abspath(path))
        self._loaded = {}

    def check(self):
        """The one-line problem with the paths given at the start, or None."""
        seen = {}
        for path in self.files:
            name = os.path.basename(path)
            if not os.path.isfile(path):
                return f"{self.kind} file {path} does not exist"
            if not FILE_NAME.fullmatch(name):
                return (f"{self.kind} file {path}: its name must be letters, digits and . _ + -"
                        f" (it is what the page and the URL show)")
            if name in seen:
                return f"two {self.kind} files are named {name}: {seen[name]} and {path}"
            seen[name] = path
        return None

    def paths(self):
        """{name: path}: the files given, then each folder's .npz files (first name wins)."""
        found = {os.path.basename(p): p for p in self.files}
        for folder in self.folders:
            real_folder = os.path.realpath(folder)
            try:
                entries = sorted(os.listdir(folder))
            except OSError:
                continue
            for entry in entries:
                path = os.path.join(folder, entry)
                if (entry in found or not entry.endswith(SUFFIX) or not FILE_NAME.fullmatch(entry)
                        or os.path.dirname(os.path.realpath(path)) != real_folder
                        or not os.path.isfile(path)):
                    continue
                found[entry] = path
        return found

    def names(self):
        return tuple(self.paths())

    def load(self, name, loader):
        """``loader(path)`` for the file listed as ``name``, cached while the file's size and
        modification time stay the same; KeyError for a name not listed."""
        path = self.paths()[name]
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in self._loaded:
            self._loaded = {k: v for k, v in self._loaded.items() if k[0] != path}
            self._loaded[key] = loader(path)
        return self._loaded[key]

"""Atomic file writes: the one helper every output of this project goes through.

    with atomic_write("out/log.csv") as temporary:     # a hidden file beside the real one
        with open(temporary, "w") as f:
            f.write(text)
    # now out/log.csv is the complete new file, or (after any error) the previous one

The temporary file is flushed to disk and renamed over the real name (``os.replace`` is atomic),
so a crash, a SIGKILL or a full disk mid-write never leaves a partial file under a real name: the
previous version stays intact. Any ``OSError`` (full disk, read-only folder, a file where a folder
should be) becomes a ``WriteError`` whose message is one line naming the path and what to do.
"""
import contextlib
import errno
import os
import uuid

HINTS = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is exceeded: free some space",
    errno.EACCES: "permission denied: make it writable or choose another folder",
    errno.EPERM: "permission denied: make it writable or choose another folder",
    errno.EROFS: "a read-only file system: choose another folder",
    errno.ENOTDIR: "a file is in the way where a folder should be: choose another folder",
    errno.EEXIST: "a file is in the way where a folder should be: choose another folder",
    errno.EISDIR: "a folder is in the way: choose another name",
}


class WriteError(OSError):
    """An output could not be written; ``str()`` is one line naming the path and what to do."""

    def __init__(self, message, errno_=None):
        super().__init__(errno_, message)
        self.message = message

    def __str__(self):
        return self.message

    def __reduce__(self):  # survives a process pool (OSError's would swap the arguments)
        return WriteError, (self.message, self.errno)


def write_error(path, error):
    """A WriteError for ``error`` (an OSError) met while writing ``path``."""
    if isinstance(error, WriteError):
        return error
    reason = error.strerror or str(error) or type(error).__name__
    hint = HINTS.get(error.errno)
    return WriteError(f"cannot write {path}: {reason}" + (f" ({hint})" if hint else ""),
                      error.errno)


def make_folder(folder):
    """``os.makedirs(folder, exist_ok=True)``, raising WriteError."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise write_error(folder, error) from None
    if not os.path.isdir(folder):
        raise WriteError(f"cannot write {folder}: not a folder (a file is in the way: choose "
                         f"another folder)", errno.ENOTDIR)


def _fsync_folder(folder):
    """Make a rename in ``folder`` durable (best effort)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_write(path, suffix=""):
    """Yield a temporary path beside ``path``; when the block ends, flush it to disk and rename
    it to ``path``. On any error the temporary file is removed and ``path`` keeps its previous
    content; an OSError is raised as WriteError. Creates the parent folder. ``suffix`` ends the
    temporary name (e.g. ``.png`` for writers that pick the format from it)."""
    folder = os.path.dirname(os.path.abspath(path))
    make_folder(folder)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp{suffix}")
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        try:
            if os.path.exists(temporary):
                os.remove(temporary)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise write_error(path, error) from None
        raise
    _fsync_folder(folder)

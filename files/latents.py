"""Latent files: projected images (``projector.py``) and edit directions (``directions.py``).

Both are ``.npz`` archives of plain arrays, written atomically and read with
``allow_pickle=False``, so a file from elsewhere cannot run code. Needs no Jittor.

Latents (``save_latents`` / ``load_latents``):

* ``w``: float32, (n, code_dim) for W (one style for every synthesis layer) or
  (n, layers, code_dim) for W+ (one style per synthesis layer i, which works at 4 * 2**i px);
* ``noise_0`` .. ``noise_k`` (optional): float32 noise maps, ``noise_i`` of shape
  (n, 1, 4 * 2**i, 4 * 2**i), one per synthesis layer from 4 px up;
* ``names``: unicode array (n,), the source images' names.

Directions (``save_directions`` / ``load_directions``):

* ``vectors``: float32 (K, code_dim), unit rows sorted by eigenvalue, largest first;
* ``layers``: int64 (2,), the first and last synthesis layer (inclusive) they were computed over
  and are applied to;
* ``values``: float32 (K,), the eigenvalues.

Anything else (a missing or unexpected key, a wrong shape or dtype, a NaN, a pickle) raises
``LatentsError``, one line naming the file.
"""
import zipfile
from types import SimpleNamespace

import numpy as np

from files.atomic import atomic_write
from networks.shapes import MAX_STEP, size_for_step

N_LAYERS = MAX_STEP + 1          # synthesis layers of a generator: 4 .. 1024 px
UNIT_TOLERANCE = 1e-3            # how far a direction's norm may be from 1
LATENT_KEYS = ("w", "names")
DIRECTION_KEYS = ("vectors", "layers", "values")
NOISE_PREFIX = "noise_"
NPZ_MAGIC = b"PK\x03\x04"       # an .npz archive is a zip archive


class LatentsError(ValueError):
    """A latents or directions file that cannot be used; the text is one line naming the file."""


def _write_npz(path, arrays):
    # np.savez given a file name appends ".npz" to it; given an open file it writes there
    with atomic_write(path, suffix=".npz") as temporary:
        with open(temporary, "wb") as f:
            np.savez(f, **arrays)


def _read_npz(path, what):
    """The arrays of the .npz archive at ``path``, as a dict; LatentsError for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPZ_MAGIC))
        if head != NPZ_MAGIC:  # np.load would take other bytes for a pickle
            raise LatentsError(f"{path}: not a readable .npz archive of {what} (it does not "
                               f"start as a zip archive)")
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise LatentsError(f"{path}: a single .npy array, not an .npz archive of {what}")
            return {key: archive[key] for key in archive.files}
    except LatentsError:
        raise
    except AttributeError:  # np.load returned a bare array (no context manager)
        raise LatentsError(f"{path}: a single .npy array, not an .npz archive of {what}") from None
    except FileNotFoundError:
        raise LatentsError(f"{path}: no such file; expected an .npz archive of {what}") from None
    except IsADirectoryError:
        raise LatentsError(f"{path}: is a directory; expected an .npz archive of {what}") from None
    except PermissionError:
        raise LatentsError(f"{path}: not readable (permission denied)") from None
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise LatentsError(f"{path}: holds a pickled object, refused (it could run code); "
                               f"expected an .npz archive of {what}") from None
        raise LatentsError(f"{path}: not an .npz archive of {what} ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise LatentsError(f"{path}: not a readable .npz archive of {what} "
                           f"({type(error).__name__}: {error})") from None


def _float_array(path, key, value, shape_text, ndims):
    if value.dtype.kind != "f":
        raise LatentsError(f"{path}: {key} has dtype {value.dtype}, expected float32")
    if value.ndim not in ndims:
        raise LatentsError(f"{path}: {key} has shape {value.shape}, expected {shape_text}")
    if not np.all(np.isfinite(value)):
        raise LatentsError(f"{path}: {key} holds NaN or infinite values")
    return value.astype(np.float32, copy=False)


def save_latents(path, w, noise=None, names=None):
    """Write projected latents to ``path`` (.npz, atomically): ``w`` (n, code_dim) in W or
    (n, layers, code_dim) in W+, ``noise`` a list of per-layer maps (n, 1, 4*2**i, 4*2**i) from
    4 px up, or None, ``names`` the n source images' names (default "0", "1", ...)."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim not in (2, 3) or (w.ndim == 3 and not 1 <= w.shape[1] <= N_LAYERS):
        raise ValueError(f"w must be (n, code_dim) or (n, layers <= {N_LAYERS}, code_dim), "
                         f"got {w.shape}")
    n = w.shape[0]
    names = [str(i) for i in range(n)] if names is None else [str(name) for name in names]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} latents")
    arrays = {"w": w, "names": np.array(names, dtype=np.str_)}
    for i, maps in enumerate(noise or []):
        maps = np.asarray(maps, dtype=np.float32)
        side = size_for_step(i)
        if maps.shape != (n, 1, side, side):
            raise ValueError(f"noise[{i}] must be ({n}, 1, {side}, {side}), got {maps.shape}")
        arrays[f"{NOISE_PREFIX}{i}"] = maps
    _write_npz(path, arrays)


def load_latents(path, code_dim):
    """The latents in ``path`` for a model of ``code_dim``: an object with ``w`` (n, layers,
    code_dim) float32 (a W file's style repeated for all N_LAYERS layers), ``w_plus`` (whether
    the file held one style per layer), ``noise`` (list of per-layer maps, or None) and
    ``names`` (list of str). LatentsError (one line) for anything else."""
    what = "latents (projector.py: w, noise_0.., names)"
    arrays = _read_npz(path, what)
    missing = [key for key in LATENT_KEYS if key not in arrays]
    if missing:
        if "w" not in arrays and set(DIRECTION_KEYS) <= set(arrays):
            raise LatentsError(f"{path}: a directions file (directions.py), not latents")
        raise LatentsError(f"{path}: no {missing[0]!r} array; expected {what}")
    noise_keys = sorted((k for k in arrays if k.startswith(NOISE_PREFIX)),
                        key=lambda k: (len(k), k))
    unexpected = sorted(set(arrays) - set(LATENT_KEYS) - set(noise_keys))
    if unexpected:
        raise LatentsError(f"{path}: unexpected array {unexpected[0]!r}; expected {what}")

    w = _float_array(path, "w", arrays["w"], "(n, code_dim) or (n, layers, code_dim)", (2, 3))
    if w.shape[-1] != code_dim:
        raise LatentsError(f"{path}: latents of dimension {w.shape[-1]}, made for another model "
                           f"(this one's code_dim is {code_dim})")
    n = w.shape[0]
    if n == 0:
        raise LatentsError(f"{path}: holds no latents (w has shape {w.shape})")
    w_plus = w.ndim == 3
    if w_plus and not 1 <= w.shape[1] <= N_LAYERS:
        raise LatentsError(f"{path}: w+ with {w.shape[1]} layers; a generator has 1 to "
                           f"{N_LAYERS}")
    if not w_plus:
        w = np.repeat(w[:, None, :], N_LAYERS, axis=1)

    names = arrays["names"]
    if names.dtype.kind != "U" or names.shape != (n,):
        raise LatentsError(f"{path}: names must be {n} strings, got {names.dtype} {names.shape}")

    noise = None
    if noise_keys:
        if len(noise_keys) > N_LAYERS or noise_keys != [f"{NOISE_PREFIX}{i}"
                                                        for i in range(len(noise_keys))]:
            raise LatentsError(f"{path}: noise maps must be noise_0 .. noise_k (k < {N_LAYERS}) "
                               f"with none missing, got {', '.join(noise_keys)}")
        noise = []
        for i, key in enumerate(noise_keys):
            side = size_for_step(i)
            maps = _float_array(path, key, arrays[key], f"({n}, 1, {side}, {side})", (4,))
            if maps.shape != (n, 1, side, side):
                raise LatentsError(f"{path}: {key} has shape {maps.shape}, expected "
                                   f"({n}, 1, {side}, {side})")
            noise.append(maps)
    return SimpleNamespace(w=w, w_plus=w_plus, noise=noise, names=[str(s) for s in names])


def save_directions(path, vectors, layers, values):
    """Write edit directions to ``path`` (.npz, atomically): ``vectors`` (K, code_dim) unit rows
    sorted by eigenvalue, largest first; ``layers`` (first, last), the inclusive range of
    synthesis layers; ``values`` the K eigenvalues."""
    vectors = np.asarray(vectors, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    first, last = (int(layer) for layer in layers)
    if vectors.ndim != 2 or values.shape != (vectors.shape[0],):
        raise ValueError(f"vectors must be (K, code_dim) and values (K,), got {vectors.shape} "
                         f"and {values.shape}")
    if not 0 <= first <= last <= MAX_STEP:
        raise ValueError(f"layers must be 0 <= first <= last <= {MAX_STEP}, got {layers}")
    _write_npz(path, {"vectors": vectors, "layers": np.array([first, last], dtype=np.int64),
                      "values": values})


def load_directions(path, code_dim):
    """The directions in ``path`` for a model of ``code_dim``: an object with ``vectors``
    (K, code_dim) float32, ``layers`` (first, last) and ``values`` (K,). LatentsError (one
    line) for anything else."""
    what = "edit directions (directions.py: vectors, layers, values)"
    arrays = _read_npz(path, what)
    missing = [key for key in DIRECTION_KEYS if key not in arrays]
    if missing:
        if "w" in arrays:
            raise LatentsError(f"{path}: a latents file (projector.py), not directions")
        raise LatentsError(f"{path}: no {missing[0]!r} array; expected {what}")
    unexpected = sorted(set(arrays) - set(DIRECTION_KEYS))
    if unexpected:
        raise LatentsError(f"{path}: unexpected array {unexpected[0]!r}; expected {what}")
    vectors = _float_array(path, "vectors", arrays["vectors"], "(K, code_dim)", (2,))
    if vectors.shape[1] != code_dim:
        raise LatentsError(f"{path}: directions of dimension {vectors.shape[1]}, made for another "
                           f"model (this one's code_dim is {code_dim})")
    k = vectors.shape[0]
    if k == 0:
        raise LatentsError(f"{path}: holds no directions")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    if np.any(np.abs(norms - 1) > UNIT_TOLERANCE):
        raise LatentsError(f"{path}: direction {int(np.argmax(np.abs(norms - 1)))} is not a unit "
                           f"vector (norm {norms.max():.4g})")
    values = _float_array(path, "values", arrays["values"], f"({k},)", (1,))
    if values.shape != (k,):
        raise LatentsError(f"{path}: values has shape {values.shape}, expected ({k},)")
    layers = arrays["layers"]
    if layers.dtype.kind not in "iu" or layers.shape != (2,):
        raise LatentsError(f"{path}: layers must be two integers (first, last), got "
                           f"{layers.dtype} {layers.shape}")
    first, last = int(layers[0]), int(layers[1])
    if not 0 <= first <= last <= MAX_STEP:
        raise LatentsError(f"{path}: layers {first}-{last} outside 0-{MAX_STEP}")
    return SimpleNamespace(vectors=vectors, layers=(first, last), values=values)

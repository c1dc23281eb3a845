"""Checkpoint reading and writing: the one place that knows the file formats.

Files written here are ``jt.save`` files: a pickle (protocol 4) of a dict, followed by its SHA-1
(20 bytes) and the trailer ``HCAJSLHD``. Arrays are stored as numpy arrays (``atomic_save``
converts ``jt.Var`` values), so a file does not depend on the Jittor version.

Files read, told apart by their first bytes, never by their names (``file_format``):

* ``jt.save`` files and plain pickles (this project's, the Jittor reference's; ``jt.Var`` values
  become numpy arrays);
* the PyTorch original's ``torch.save`` files, in the zip format (PyTorch >= 1.6: ``data.pkl``
  plus one raw entry per storage) and the legacy format (a sequence of pickles and raw storages),
  read without PyTorch; tensors become numpy arrays.

Every pickle goes through ``SafeUnpickler``, which builds only numpy arrays and dtypes, torch
storages and tensors, ``jt.Var``, dicts, OrderedDicts, lists, tuples, numbers and strings, and
refuses anything else (``UnsafeCheckpointError``, naming what the file asked for): a downloaded
checkpoint cannot run code. Jittor's own readers (``jt.load``, ``jittor_utils.load_pytorch``)
are not used: they unpickle any global and choose the format by the file name.

Three kinds of dict are read:

* **Generator state dict** (the reference's ``FFHQ_80000.model``, this project's
  ``checkpoint/NNNNNN.model``, a bare ``torch.save(g_running.state_dict())``):
  ``StyledGenerator.state_dict()``, parameter name -> array, keys ``generator.*`` (synthesis
  network) and ``style.*`` (mapping network). A file written by the Jittor reference also holds
  derived ``*.weight`` entries beside ``*.weight_orig``, and a PyTorch-original state dict holds
  Blur buffers (``*.weight``, ``*.weight_flip``); ``StyledGenerator.load_state_dict`` drops
  both. Keys saved through ``nn.DataParallel`` (``module.*``) lose that prefix. The architecture
  is read from the shapes (see ``generator_config``), so narrow models (``width`` < 512) load too.
* **Training checkpoint** (written by ``train.py``): a dict with the keys
  ``TRAINING_CHECKPOINT_KEYS``: ``generator``, ``discriminator``, ``g_running`` (state dicts; the
  last is the exponential moving average of the generator, the one to sample from),
  ``g_optimizer``, ``d_optimizer`` (Jittor optimizer states, ``{"defaults": {..., "n_step",
  "param_groups": [{"lr", "m", "values", "steps", ...}]}}``; ``steps``, the per-parameter
  counts of ``optimizers.Adam``, is missing in older files), ``step`` (progression step reached, image
  side 4 * 2**step), ``alpha`` (fade-in weight), ``used_sample`` (images seen in the current
  phase), ``iteration`` (iterations done) and ``args`` (dict of the training arguments, among
  them ``code_dim``, ``n_mlp``, ``width``); optionally ``rng`` (random-generator state).
* **Training snapshot** (the reference's ``train_step-K.model``; the PyTorch original's
  ``train_step-K.model`` and published "Model & Optimizer" files): a dict with ``generator``,
  ``discriminator``, ``g_running``; the PyTorch original's also hold ``g_optimizer`` and
  ``d_optimizer``, torch Adam states (``{"state": {index: {"step", "exp_avg", "exp_avg_sq"}},
  "param_groups": [{"params": [index, ...], ...}]}``, indices in the order of the groups'
  parameters; see ``torch_adam_moments``). Generation reads ``g_running``.

Anything else raises ``CheckpointError`` with a one-line message saying what the file is and what
was expected.
"""
import collections
import hashlib
import io
import os
import pickle
import zipfile

import numpy as np

import jittor as jt

from files.atomic import atomic_write
from model import MAX_STEP, StyledGenerator, size_for_step, step_for_size
from ops.blur import blur_kernel

TRAINING_CHECKPOINT_KEYS = ("generator", "discriminator", "g_running", "g_optimizer",
                            "d_optimizer", "step", "alpha", "used_sample", "iteration", "args")
GENERATOR_PREFIXES = ("generator.", "style.")
DISCRIMINATOR_PREFIXES = ("progression.", "from_rgb.", "linear.")

# Keys the generator's architecture is read from (see generator_config).
CONSTANT_INPUT_KEY = "generator.progression.0.conv1.input"      # (1, width, 4, 4)
MAPPING_WEIGHT_KEY = "style.{}.linear.weight_orig"              # layer i of the Sequential
FIRST_MAPPING_LAYER = 1                                          # index 0 is PixelNorm
MAPPING_LAYER_STRIDE = 2                                         # EqualLinear, LeakyReLU, ...

# First bytes of files people mistake for checkpoints, to say what a file is.
FILE_SIGNATURES = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
)
TORCH_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c   # first pickle of a pre-1.6 torch.save file
TORCH_LEGACY_PROTOCOL = 1001
TORCH_LEGACY_HEAD = pickle.dumps(TORCH_LEGACY_MAGIC, protocol=2)  # how such a file starts
JITTOR_TRAILER = b"HCAJSLHD"
EXPECTED = ("expected a StyleGAN checkpoint (a generator state dict or a training checkpoint, "
            "from jt.save or the PyTorch original's torch.save)")


class CheckpointError(ValueError):
    """A file is missing, not a checkpoint, or not the kind of checkpoint needed (one line)."""


def to_numpy_tree(obj):
    """Copy of ``obj`` with every ``jt.Var`` inside dicts, lists and tuples made a numpy array."""
    if isinstance(obj, jt.Var):
        return obj.numpy()
    if isinstance(obj, dict):
        return type(obj)((key, to_numpy_tree(value)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy_tree(value) for value in obj)
    return obj


def atomic_save(obj, path):
    """``jt.save`` ``obj`` (arrays as numpy) to ``path`` through ``atomic.atomic_write``: a crash
    mid-write keeps the previous file; an OSError is raised as a one-line WriteError."""
    tree = to_numpy_tree(obj)
    with atomic_write(path) as temporary:
        jt.save(tree, temporary)


def describe_file(path):
    """What a file that is not a readable checkpoint looks like, e.g. 'a PNG image'."""
    size = os.path.getsize(path)
    if size == 0:
        return "an empty file"
    with open(path, "rb") as f:
        head = f.read(512)
        f.seek(max(0, size - len(JITTOR_TRAILER)))
        tail = f.read()
    for signature, name in FILE_SIGNATURES:
        if head.startswith(signature):
            return name
    if tail == JITTOR_TRAILER:
        return f"a damaged Jittor checkpoint ({size} bytes; checksum or pickle does not match)"
    if head[:1] == b"\x80":
        return f"a truncated or damaged pickle ({size} bytes)"
    try:
        head.decode("utf-8")
        return f"a text file ({size} bytes)"
    except UnicodeDecodeError:
        return f"a binary file of {size} bytes that is not a pickle"


def describe_object(obj):
    """Short description of a loaded object, for error messages."""
    if isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:4]]
        more = ", ..." if len(obj) > len(keys) else ""
        noun = "key" if len(obj) == 1 else "keys"
        return f"a dict with {len(obj)} {noun} ({', '.join(keys)}{more})"
    return f"a pickled {type(obj).__name__}"


# ------------------------------------------------------------------------------------------------
# Reading: a restricted unpickler for every format (nothing read from disk may run code)
# ------------------------------------------------------------------------------------------------

class UnsafeCheckpointError(CheckpointError):
    """The file asks the unpickler for something no checkpoint holds (it could run code)."""


class _TorchStorageType:
    """Stands for ``torch.FloatStorage`` etc. in a torch file: only its element type matters."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, np.dtype(dtype)

    def decode(self, raw, numel, byteorder="little"):
        """The storage's ``numel`` elements from its raw bytes, as a native 1-D array (bfloat16
        widened to float32, exactly); ValueError when ``raw`` is too short."""
        dtype = self.dtype.newbyteorder(">") if byteorder == "big" else self.dtype
        if len(raw) < numel * dtype.itemsize:
            raise ValueError(f"a storage of {len(raw)} bytes, fewer than its {numel} elements")
        array = np.frombuffer(raw, dtype, numel).astype(dtype.newbyteorder("="))
        if self.name == "BFloat16Storage":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


# torch storage class -> how its bytes are stored (bfloat16 is read as uint16, then widened)
TORCH_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


class _TorchTensor:
    """A tensor of a torch file, built into a numpy array once every storage has been read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)

    def to_numpy(self, storages):
        data = storages[self.storage]
        if len(self.size) != len(self.stride) or min((*self.size, *self.stride, self.offset), default=0) < 0:
            raise ValueError("a tensor with a negative size, stride or offset")
        if 0 in self.size:
            array = np.zeros(self.size, data.dtype)
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if last >= data.size:  # never read past the storage (as_strided would)
                raise ValueError(f"a tensor reaching element {last} of a storage of {data.size}")
            array = np.lib.stride_tricks.as_strided(
                data[self.offset:], self.size, [s * data.itemsize for s in self.stride]).copy()
        return array


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """torch._utils._rebuild_tensor(_v2): (storage, offset, size, stride, [requires_grad, hooks])."""
    return _TorchTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_):
    """torch._utils._rebuild_parameter(data, requires_grad, hooks): the tensor itself."""
    return data


def _jittor_var(array, *_):
    """How ``jt.Var`` pickles (``jittor_core.Var(array)``): kept as the numpy array."""
    if not isinstance(array, np.ndarray):
        raise ValueError("a jittor Var without an array")
    return array


def _safe_globals():
    # numpy 2 renamed numpy.core to numpy._core; numpy 1.26 has a partial numpy._core too (once
    # something imports it), so the version decides, not which attribute exists
    numpy_core = np._core if int(np.__version__.split(".")[0]) >= 2 else np.core
    reconstruct = numpy_core.multiarray._reconstruct
    scalar = numpy_core.multiarray.scalar
    frombuffer = numpy_core.numeric._frombuffer
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("jittor", "jittor_core.Var"): _jittor_var,
        ("jittor_core", "Var"): _jittor_var,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }
    for module in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x spellings
        allowed[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = frombuffer
    for name, dtype in TORCH_STORAGE_DTYPES.items():
        allowed[("torch", name)] = _TorchStorageType(name, dtype)
    return allowed


SAFE_GLOBALS = _safe_globals()


class SafeUnpickler(pickle.Unpickler):
    """Builds only what checkpoints hold: numpy arrays and dtypes, torch storages and tensors
    (as numpy arrays), jt.Var (as numpy arrays), dicts, OrderedDicts, lists, tuples, numbers,
    strings. Any other global raises UnsafeCheckpointError naming it, before anything is built
    (the rule PyTorch made its default in 2.6 with ``torch.load(weights_only=True)``)."""

    extra_globals = {}          # what a subclass builds beside SAFE_GLOBALS
    holder = "checkpoint"       # what the refusal says the file is not

    def __init__(self, file, persistent_load=None):
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load

    def find_class(self, module, name):
        found = self.extra_globals.get((module, name), SAFE_GLOBALS.get((module, name)))
        if found is None:
            raise UnsafeCheckpointError(
                f"refused: the file asks to build {module}.{name}, which no {self.holder} holds "
                f"(unpickling it could run code)")
        return found

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError("a persistent id in a plain pickle")
        return self._persistent(pid)


def _unpickle(file, persistent_load=None):
    return SafeUnpickler(file, persistent_load).load()


def _storage_type(obj):
    """``obj`` if it is a storage type the unpickler built, else UnpicklingError."""
    if not isinstance(obj, _TorchStorageType):
        raise pickle.UnpicklingError("a storage of an unknown type")
    return obj


def _materialize(obj, storages):
    """Replace every _TorchTensor inside dicts, lists and tuples by its numpy array."""
    if isinstance(obj, _TorchTensor):
        return obj.to_numpy(storages)
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _materialize(value, storages)
        return obj
    if isinstance(obj, list):
        obj[:] = [_materialize(value, storages) for value in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(_materialize(value, storages) for value in obj)
    return obj


def _read_torch_zip(path):
    """``torch.save`` since PyTorch 1.6: a zip of ``PREFIX/data.pkl`` (the pickle; tensors refer
    to storages by key) and ``PREFIX/data/KEY`` (each storage's raw bytes)."""
    storages = {}
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
        if not pickles:
            raise CheckpointError("a zip archive without data.pkl (not a torch.save file)")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = (archive.read(prefix + "byteorder").decode().strip()
                     if prefix + "byteorder" in names else "little")

        def persistent_load(pid):
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise pickle.UnpicklingError(f"an unknown persistent id {str(pid)[:40]}")
            _, storage_type, key, _location, numel = pid
            key = str(key)
            if key not in storages:
                storages[key] = _storage_type(storage_type).decode(
                    archive.read(f"{prefix}data/{key}"), int(numel), byteorder)
            return key

        with archive.open(pickles[0]) as data:
            obj = _unpickle(data, persistent_load)
    return _materialize(obj, storages)


def _read_torch_legacy(file):
    """``torch.save`` before PyTorch 1.6 (``_use_new_zipfile_serialization=False``): pickles of
    the magic number, the protocol version and system info, then the object (storages as
    persistent ids), then the list of storage keys, then each storage as an int64 element count
    and its raw little-endian bytes."""
    if _unpickle(file) != TORCH_LEGACY_MAGIC:
        raise CheckpointError("not a torch.save file")
    if _unpickle(file) != TORCH_LEGACY_PROTOCOL:
        raise CheckpointError("a legacy torch.save file of an unknown protocol version")
    _unpickle(file)  # system info: byte order and type sizes (little-endian assumed)
    storages, wanted, views = {}, {}, {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"an unknown persistent id {str(pid)[:40]}")
        _, storage_type, key, _location, numel, view = pid
        wanted[str(key)] = (_storage_type(storage_type), int(numel))
        if view is None:
            return str(key)
        view_key, offset, size = view
        views[str(view_key)] = (str(key), int(offset), int(size))
        return str(view_key)

    obj = _unpickle(file, persistent_load)
    keys = _unpickle(file)
    if not isinstance(keys, list):
        raise CheckpointError("a legacy torch.save file without its storage list")
    for key in keys:
        storage_type, numel = wanted[str(key)]
        count = np.frombuffer(file.read(8), "<i8")
        raw = file.read(numel * storage_type.dtype.itemsize)
        if count.size != 1 or int(count[0]) != numel or len(raw) != numel * storage_type.dtype.itemsize:
            raise CheckpointError("a truncated legacy torch.save file")
        storages[str(key)] = storage_type.decode(raw, numel)
    for view_key, (key, offset, size) in views.items():
        storages[view_key] = storages[key][offset:offset + size]
    return _materialize(obj, storages)


def _read_jittor(data):
    """``jt.save``: a pickle, its SHA-1 (20 bytes) and the trailer; or a plain pickle."""
    if data.endswith(JITTOR_TRAILER):
        body, checksum = data[:-28], data[-28:-8]
        if hashlib.sha1(body).digest() != checksum:
            raise ValueError("checksum does not match")  # describe_file says what it is
        data = body
    return _unpickle(io.BytesIO(data))


def file_format(path):
    """'torch zip', 'torch legacy' or 'pickle', read from the first bytes (never the name)."""
    with open(path, "rb") as f:
        head = f.read(len(TORCH_LEGACY_HEAD))
    if head.startswith(b"PK\x03\x04"):
        return "torch zip"
    if head == TORCH_LEGACY_HEAD:
        return "torch legacy"
    return "pickle"


def read_file(path):
    """The object stored in ``path``, in any format this module reads, through SafeUnpickler.

    Raises UnsafeCheckpointError for a file that asks for anything else, CheckpointError for a
    torch file that is damaged, and OSError / pickle errors for other unreadable files."""
    kind = file_format(path)
    if kind == "torch zip":
        return _read_torch_zip(path)
    with open(path, "rb") as f:
        if kind == "torch legacy":
            return _read_torch_legacy(f)
        return _read_jittor(f.read())


def load_checkpoint(path, expected=EXPECTED):
    """The dict stored in ``path`` (see read_file); CheckpointError with one line otherwise,
    ending with ``expected`` (what the caller wanted the file to be)."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file; {expected}")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: is a directory, not a file; {expected}")
    try:
        obj = read_file(path)
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"{path}: {error}; load only files you trust") from None
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}; {expected}") from None
    except zipfile.BadZipFile as error:
        raise CheckpointError(f"{path}: a damaged or truncated zip archive ({error}); download or "
                              f"copy it again") from None
    except PermissionError:
        raise CheckpointError(f"{path}: not readable (permission denied); check its permissions") from None
    except Exception:  # noqa: BLE001  (pickle raises many types; all mean "not a checkpoint")
        raise CheckpointError(f"{path}: not a checkpoint: {describe_file(path)}; {expected}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a checkpoint: {describe_object(obj)}; {expected}")
    return obj


def is_training_checkpoint(obj):
    """True for a dict holding every key of this project's training checkpoints."""
    return isinstance(obj, dict) and all(key in obj for key in TRAINING_CHECKPOINT_KEYS)


def is_state_dict(obj):
    """True for a non-empty dict of name -> array (any network's)."""
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()))


def load_state_dict(path, expected):
    """The state dict (name -> numpy array) of any network stored in ``path``, in any format
    ``read_file`` reads (a ``torch.save(model.state_dict())`` file among them), through the safe
    reader, without the ``module.`` prefix of ``nn.DataParallel``; CheckpointError with one line
    ending with ``expected`` when the file is missing, unsafe, damaged or holds something else."""
    obj = strip_data_parallel(load_checkpoint(path, expected))
    if not is_state_dict(obj):
        raise CheckpointError(f"{path}: not a state dict of arrays: {describe_object(obj)}; "
                              f"{expected}")
    return dict(obj)


def check_weight_shapes(state_dict, shapes, what, error=CheckpointError, optional=None):
    """Raise ``error`` (one line) unless ``state_dict`` holds every key of ``shapes`` ({key:
    shape}) with that shape and finite float values, and no other key but those ``optional``
    (a predicate on the key) allows. The messages say the file is not ``what`` (a network's
    weight file, as a user would name it), or that it is damaged."""
    missing = [key for key in shapes if key not in state_dict]
    unknown = [key for key in state_dict
               if key not in shapes and not (optional is not None and optional(key))]
    if missing or unknown:
        found = len(state_dict) - len(unknown)
        problem = (f"missing {len(missing)} of its {len(shapes)} tensors (e.g. {missing[0]})"
                   if missing else f"{len(unknown)} keys it does not have (e.g. {unknown[0]})")
        raise error(f"not {what}: {problem}; {found} keys match"
                    + (f", first key {next(iter(state_dict))}" if state_dict else ""))
    for key, shape in shapes.items():
        array = state_dict[key]
        if tuple(array.shape) != tuple(shape):
            raise error(f"not {what}: {key} has shape {tuple(array.shape)}, expected "
                        f"{tuple(shape)}")
        if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
            raise error(f"{key} holds {array.dtype} values that are not all finite numbers; the "
                        f"file is damaged")


def strip_data_parallel(state_dict):
    """A state dict saved from ``nn.DataParallel`` (every key ``module.*``) without the prefix."""
    if (isinstance(state_dict, dict) and state_dict
            and all(isinstance(k, str) and k.startswith("module.") for k in state_dict)):
        return type(state_dict)((k[len("module."):], v) for k, v in state_dict.items())
    return state_dict


def is_generator_state_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and k.startswith(GENERATOR_PREFIXES) for k in obj))


def is_discriminator_state_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and k.startswith(DISCRIMINATOR_PREFIXES) for k in obj))


def from_rgb_activated(discriminator_state_dict):
    """True when a discriminator state dict has a LeakyReLU after each from-RGB convolution: its
    from-RGB layers are ``nn.Sequential(conv, LeakyReLU)``, so their keys read ``from_rgb.I.0.``
    (``Discriminator(from_rgb_activate=True)``, the reference's train.py default)."""
    return any(str(key).startswith("from_rgb.0.0.") for key in discriminator_state_dict)


def generator_state_dict(obj):
    """The bare generator state dict in ``obj``: ``obj`` itself, or its ``g_running``."""
    expected = ("expected a generator state dict (keys generator.*, style.*) or a training "
                "checkpoint with g_running")
    obj = strip_data_parallel(obj)
    if isinstance(obj, dict) and "g_running" in obj:
        inner = strip_data_parallel(obj["g_running"])
        if is_generator_state_dict(inner):
            return inner
        raise CheckpointError(f"its g_running is {describe_object(inner)}, not a generator state "
                              f"dict; {expected}")
    if is_generator_state_dict(obj):
        return obj
    if is_discriminator_state_dict(obj):
        raise CheckpointError(f"a discriminator state dict; {expected}")
    if isinstance(obj, dict) and ("generator" in obj or "discriminator" in obj):
        raise CheckpointError(f"a training checkpoint without g_running ({describe_object(obj)}); "
                              f"{expected}")
    if is_state_dict(obj):
        raise CheckpointError(f"a state dict of another network (no key {CONSTANT_INPUT_KEY}; "
                              f"{describe_object(obj)}); {expected}")
    raise CheckpointError(f"{describe_object(obj)}; {expected}")


def _shape(state_dict, key):
    if key not in state_dict:
        raise CheckpointError(f"a generator state dict without {key}; expected a complete "
                              f"StyledGenerator state dict")
    return tuple(int(n) for n in state_dict[key].shape)


def generator_config(state_dict):
    """``dict(code_dim, n_mlp, width)`` of the StyledGenerator that wrote ``state_dict``.

    code_dim: input size of the first mapping layer; n_mlp: number of mapping layers;
    width: channels of the 4 px constant input (512 for the reference).
    """
    first = MAPPING_WEIGHT_KEY.format(FIRST_MAPPING_LAYER)
    code_dim = _shape(state_dict, first)[1]
    n_mlp = sum(1 for k in state_dict if isinstance(k, str) and k.startswith("style.")
                and k.endswith(".linear.weight_orig"))
    for i in range(n_mlp):  # layers must be style.1, style.3, ... with no gap
        _shape(state_dict, MAPPING_WEIGHT_KEY.format(FIRST_MAPPING_LAYER + MAPPING_LAYER_STRIDE * i))
    width = _shape(state_dict, CONSTANT_INPUT_KEY)[1]
    return dict(code_dim=code_dim, n_mlp=n_mlp, width=width)


def load_generator(path, obj=None):
    """Build the generator stored in ``path`` (already read into ``obj`` when given) and load
    its weights.

    Returns ``(generator, info)``: the StyledGenerator in eval mode, and a dict with its
    ``code_dim``, ``n_mlp``, ``width``, the ``kind`` of file, and ``max_step``: the step a training
    checkpoint reached (its ``step``), or MAX_STEP for a bare state dict, which always holds every
    resolution's weights but does not say how far its training went.
    """
    obj = load_checkpoint(path) if obj is None else obj
    try:
        state_dict = generator_state_dict(obj)
        config = generator_config(state_dict)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    generator = StyledGenerator(**config)
    try:
        generator.load_state_dict(state_dict)
    except ValueError as error:
        raise CheckpointError(f"{path}: generator state dict does not fit the architecture read "
                              f"from it ({_config_text(config)}): {error}") from None
    generator.eval()
    info = dict(config, path=path)
    if is_training_checkpoint(obj):
        info.update(kind="training checkpoint", max_step=int(obj["step"]))
    elif isinstance(obj, dict) and "g_running" in obj:
        info.update(kind="reference training snapshot", max_step=MAX_STEP)
    else:
        info.update(kind="generator state dict", max_step=MAX_STEP)
    return generator, info


def size_beyond_training(size, info):
    """The one-line reason why ``info``'s generator (from load_generator) cannot draw ``size`` px,
    or None: a training checkpoint stops at the size its training reached; a bare state dict
    holds every size's weights and allows any."""
    if step_for_size(size) <= info["max_step"]:
        return None
    return (f"--size {size} is larger than this {info['kind']} supports: its training reached "
            f"{size_for_step(info['max_step'])} px (step {info['max_step']})")


def _config_text(config):
    return ", ".join(f"{k}={v}" for k, v in config.items())


# ------------------------------------------------------------------------------------------------
# The PyTorch original's formats: its Adam state, and writing a file its generate.py loads
# ------------------------------------------------------------------------------------------------

def torch_parameter_order(state_dict, parameter_names):
    """Names of a network's parameters in the order torch's ``parameters()`` yields them: the
    order of its state dict (an OrderedDict in registration order), less the buffers."""
    return [key for key in strip_data_parallel(state_dict) if key in parameter_names]


def torch_adam_moments(optimizer_state, group_names, shapes):
    """Adam moments of a torch ``optimizer.state_dict()``, by parameter name.

    ``group_names``: for each parameter group, the names of its parameters in the order the
    torch optimizer held them (its ``state`` is keyed by the position in that order, counted
    across groups); ``shapes``: name -> shape. Returns ``(moments, steps)``: name ->
    ``(exp_avg, exp_avg_sq)`` and name -> step count, for every parameter with a state (torch
    keeps none for one that never had a gradient). CheckpointError (one line) when
    the state does not map: another layout, group sizes or shapes.
    """
    try:
        state, groups = optimizer_state["state"], optimizer_state["param_groups"]
        if len(groups) != len(group_names):
            raise CheckpointError(f"{len(groups)} parameter groups, expected {len(group_names)}")
        moments, steps = {}, {}
        for number, (group, names) in enumerate(zip(groups, group_names)):
            indices = list(group["params"])
            if len(indices) != len(names):
                raise CheckpointError(f"group {number} holds {len(indices)} parameters, expected "
                                      f"{len(names)}")
            for index, name in zip(indices, names):
                if index not in state:
                    continue
                entry = state[index]
                pair = (np.asarray(entry["exp_avg"], np.float32),
                        np.asarray(entry["exp_avg_sq"], np.float32))
                if any(p.shape != tuple(shapes[name]) for p in pair):
                    raise CheckpointError(f"the moments of {name} have shape {pair[0].shape}, "
                                          f"expected {tuple(shapes[name])}")
                moments[name] = pair
                steps[name] = int(np.asarray(entry["step"]))
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"not a torch Adam state ({type(error).__name__}: {error})") from None
    return moments, steps


def torch_generator_state_dict(state_dict, blur_channels):
    """A generator state dict as the PyTorch original's ``StyledGenerator.state_dict()``: ours
    plus its Blur buffers (``NAME.weight``, ``NAME.weight_flip``: the kernel per channel, shape
    (C, 1, 3, 3)); ``blur_channels``: Blur module name -> C."""
    out = collections.OrderedDict((k, np.asarray(v, np.float32)) for k, v in state_dict.items())
    for name, channels in blur_channels.items():
        kernel = blur_kernel(channels).numpy()         # the model's own (C, 1, 3, 3) kernel
        out[f"{name}.weight"] = kernel
        out[f"{name}.weight_flip"] = kernel[:, :, ::-1, ::-1].copy()
    return out


class _TorchGlobal:
    """A torch global (``torch.FloatStorage``, ``torch._utils._rebuild_tensor_v2``) written into
    a pickle by name, so that writing a torch file needs no PyTorch."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants reduce functions callable; never called here
        raise TypeError("a stand-in for a torch global")


class _TorchStorageOut:
    def __init__(self, array):
        self.array = array


class _TorchTensorOut:
    """A numpy array pickled as torch pickles a contiguous tensor."""

    REBUILD = _TorchGlobal("torch._utils", "_rebuild_tensor_v2")

    def __init__(self, array):
        self.array = np.ascontiguousarray(array)

    def __reduce__(self):
        shape = self.array.shape
        stride = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
        return (self.REBUILD, (_TorchStorageOut(self.array), 0, shape, stride, False,
                               collections.OrderedDict()))


class _TorchPickler(pickle._Pickler):  # the Python pickler: its save() can be extended
    STORAGE_NAMES = {np.dtype(v).newbyteorder("<"): k for k, v in TORCH_STORAGE_DTYPES.items()
                     if k != "BFloat16Storage"}

    def __init__(self, file):
        super().__init__(file, protocol=2)
        self.storages = []

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _TorchGlobal):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        if isinstance(obj, np.ndarray):
            obj = _TorchTensorOut(obj)
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if not isinstance(obj, _TorchStorageOut):
            return None
        array = obj.array.astype(obj.array.dtype.newbyteorder("<"))
        storage = _TorchGlobal("torch", self.STORAGE_NAMES[array.dtype])
        self.storages.append(array)
        return ("storage", storage, str(len(self.storages) - 1), "cpu", array.size)


def write_torch_file(obj, path):
    """Write ``obj`` (dicts, lists, numbers, strings, numpy arrays) as ``torch.save`` does in its
    zip format, arrays as tensors, atomically (``atomic.atomic_write``); PyTorch is not needed. Reads back
    with ``torch.load(path)``, ``weights_only=True`` included (it uses only safe globals)."""
    data = io.BytesIO()
    pickler = _TorchPickler(data)
    pickler.dump(obj)

    with atomic_write(path) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("archive/data.pkl", data.getvalue())
            archive.writestr("archive/byteorder", "little")
            for key, array in enumerate(pickler.storages):
                archive.writestr(f"archive/data/{key}", array.tobytes())
            archive.writestr("archive/version", "3\n")

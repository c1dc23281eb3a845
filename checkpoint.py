"""Checkpoint reading and writing: the one place that knows the file formats.

Every checkpoint is a ``jt.save`` file: a pickle (protocol 4) of a dict, followed by its SHA-1
(20 bytes) and the trailer ``HCAJSLHD``; ``jt.load`` also reads plain pickles without the
trailer. Arrays are stored as numpy arrays (``atomic_save`` converts ``jt.Var`` values), so a
file does not depend on the Jittor version. Pickles can run code when loaded: load only files you
trust. Three kinds of dict are read:

* **Generator state dict** (the reference's ``FFHQ_80000.model``, this project's
  ``checkpoint/NNNNNN.model``): ``StyledGenerator.state_dict()``, parameter name -> array, keys
  ``generator.*`` (synthesis network) and ``style.*`` (mapping network). A file written by the
  Jittor reference also holds derived ``*.weight`` entries beside ``*.weight_orig``, and a
  PyTorch-original state dict holds Blur buffers (``*.weight``, ``*.weight_flip``);
  ``StyledGenerator.load_state_dict`` drops both. The architecture is read from the shapes
  (see ``generator_config``), so narrow models (``width`` < 512) load too.
* **Training checkpoint** (written by ``train.py``): a dict with the keys
  ``TRAINING_CHECKPOINT_KEYS``: ``generator``, ``discriminator``, ``g_running`` (state dicts; the
  last is the exponential moving average of the generator, the one to sample from),
  ``g_optimizer``, ``d_optimizer`` (optimizer state dicts), ``step`` (progression step reached,
  image side 4 * 2**step), ``alpha`` (fade-in weight), ``used_sample`` (images seen in the
  current phase), ``iteration`` (iterations done) and ``args`` (dict of the training arguments,
  among them ``code_dim``, ``n_mlp``, ``width``); optionally ``rng`` (random-generator state).
* **Reference training snapshot** (the reference's ``train_step-K.model``): a dict with
  ``generator``, ``discriminator``, ``g_running`` only. Generation reads its ``g_running``.

Anything else raises ``CheckpointError`` with a one-line message saying what the file is and what
was expected.
"""
import os
import tempfile
import uuid

import jittor_env  # noqa: F401  (prepares Jittor's environment before it is imported)
import jittor as jt

from model import MAX_STEP, StyledGenerator

TRAINING_CHECKPOINT_KEYS = ("generator", "discriminator", "g_running", "g_optimizer",
                            "d_optimizer", "step", "alpha", "used_sample", "iteration", "args")
OPTIONAL_TRAINING_KEYS = ("rng",)
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
    (b"PK\x03\x04", "a zip archive (a PyTorch torch.save file?)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
)
TORCH_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c   # first pickle of a pre-1.6 torch.save file
JITTOR_TRAILER = b"HCAJSLHD"
TORCH_FILE_ENDINGS = (".pt", ".pth", ".bin")   # names jt.save / jt.load treat as PyTorch files
EXPECTED = "expected a Jittor checkpoint (jt.save of a generator state dict or a training checkpoint)"


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
    """``jt.save`` ``obj`` (arrays as numpy) to ``path`` without ever leaving a partial file there.

    Writes a temporary file in the same folder, flushes it to disk, then renames it over ``path``
    (``os.replace`` is atomic), so a crash mid-write keeps the previous file intact. Creates the
    parent folder. The temporary name has no ``.pt``/``.pth`` ending, so the Jittor format is
    written whatever ``path`` is called.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # a unique hidden name; jt.save creates it, so it gets the usual permissions (not 0600)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        jt.save(to_numpy_tree(obj), temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    try:  # make the rename itself durable
        directory = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


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


def load_checkpoint(path):
    """``jt.load`` the dict in ``path``; CheckpointError if it is missing or not a checkpoint."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file; {EXPECTED}")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: is a directory, not a file; {EXPECTED}")
    try:
        obj = _jittor_load(path)
    except Exception:  # noqa: BLE001  (pickle raises many types; all mean "not a checkpoint")
        raise CheckpointError(f"{path}: not a checkpoint: {describe_file(path)}; {EXPECTED}") from None
    if isinstance(obj, int) and obj == TORCH_LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a checkpoint: a legacy PyTorch torch.save file; {EXPECTED}")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a checkpoint: {describe_object(obj)}; {EXPECTED}")
    return obj


def _jittor_load(path):
    """``jt.load``, also for names ending .pt/.pth/.bin, which it would read as PyTorch files."""
    if not path.endswith(TORCH_FILE_ENDINGS):
        return jt.load(path)
    with tempfile.TemporaryDirectory() as folder:
        neutral = os.path.join(folder, "checkpoint.model")
        os.symlink(os.path.abspath(path), neutral)
        return jt.load(neutral)


def is_training_checkpoint(obj):
    """True for a dict holding every key of this project's training checkpoints."""
    return isinstance(obj, dict) and all(key in obj for key in TRAINING_CHECKPOINT_KEYS)


def is_generator_state_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and k.startswith(GENERATOR_PREFIXES) for k in obj))


def is_discriminator_state_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and k.startswith(DISCRIMINATOR_PREFIXES) for k in obj))


def generator_state_dict(obj):
    """The bare generator state dict in ``obj``: ``obj`` itself, or its ``g_running``."""
    expected = ("expected a generator state dict (keys generator.*, style.*) or a training "
                "checkpoint with g_running")
    if isinstance(obj, dict) and "g_running" in obj:
        inner = obj["g_running"]
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


def load_generator(path):
    """Build the generator stored in ``path`` and load its weights.

    Returns ``(generator, info)``: the StyledGenerator in eval mode, and a dict with its
    ``code_dim``, ``n_mlp``, ``width``, the ``kind`` of file, and ``max_step``: the step a training
    checkpoint reached (its ``step``), or MAX_STEP for a bare state dict, which always holds every
    resolution's weights but does not say how far its training went.
    """
    obj = load_checkpoint(path)
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


def _config_text(config):
    return ", ".join(f"{k}={v}" for k, v in config.items())


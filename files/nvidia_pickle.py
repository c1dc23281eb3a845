"""NVIDIA's official StyleGAN v1 pickles (``karras2019stylegan-*.pkl``), read without TensorFlow
and without running anything from the file.

Such a file is ``pickle.dump((G, D, Gs), f)`` of ``dnnlib.tflib.network.Network`` objects
(NVlabs/stylegan). Each network pickles as its ``__getstate__`` dict: ``version`` (2 or 3),
``name``, ``static_kwargs``, ``components`` (sub-networks: Gs has ``mapping`` and
``synthesis``), ``build_module_src`` (the network's whole source, which the official loader
``exec()``s: here it is never run, only kept as text), ``build_func_name`` and ``variables``, a
list of (local name, numpy array). Generation uses ``Gs``, the moving average.

The unpickler builds only that Network class (as ``NetworkState``, a plain record), dicts
(``dnnlib.EasyDict`` too), lists, tuples, numbers, strings and numpy arrays, scalars and dtypes;
any other global refuses the file in one line naming it, before anything is built.
"""
import codecs
import io
import os
import pickletools
from dataclasses import dataclass, field

import numpy as np

from files.checkpoint import (CheckpointError, SafeUnpickler, UnsafeCheckpointError,
                              describe_file)

NETWORK_GLOBAL = ("dnnlib.tflib.network", "Network")
NETWORK_VERSIONS = (2, 3)
# build functions of StyleGAN v1's networks (training/networks_stylegan.py)
GENERATOR_FUNCTION = "G_style"
MAPPING_FUNCTION = "G_mapping"
SYNTHESIS_FUNCTION = "G_synthesis"
DISCRIMINATOR_FUNCTION = "D_basic"
# what StyleGAN2's and ProGAN's pickles name theirs, to say what a foreign file is
FOREIGN_FUNCTIONS = {"G_main": "a StyleGAN2 generator", "D_stylegan2": "a StyleGAN2 discriminator",
                     "G_paper": "a Progressive GAN generator", "D_paper": "a Progressive GAN "
                     "discriminator", "G_synthesis_stylegan2": "a StyleGAN2 synthesis network"}
EXPECTED = ("expected NVIDIA's StyleGAN v1 pickle (G, D, Gs), as NVlabs/stylegan's "
            "training writes it (e.g. karras2019stylegan-ffhq-1024x1024.pkl)")
HEAD_BYTES = 1 << 16     # the first global of an official file comes within its first bytes


class NvidiaPickleError(CheckpointError):
    """A file is not a StyleGAN v1 pickle of NVIDIA's, or is damaged (one line)."""


class NetworkState:
    """What a pickled ``dnnlib.tflib.network.Network`` holds, as data: ``state`` is the dict the
    official ``__getstate__`` wrote. Nothing of it is executed."""

    def __setstate__(self, state):
        self.state = state


@dataclass
class Network:
    """One network of the file: its build function's name, its static arguments, its own
    variables (local name -> float32 array) and its sub-networks."""
    name: str
    function: str
    static_kwargs: dict
    variables: dict
    components: dict = field(default_factory=dict)


@dataclass
class NvidiaModel:
    """The three networks of an official file: ``G`` (trained), ``D``, ``Gs`` (the moving
    average, for generation)."""
    G: Network
    D: Network
    Gs: Network


class _NvidiaUnpickler(SafeUnpickler):
    # protocol 2 pickles bytes as _codecs.encode(text, "latin1") (torch weights_only allows it)
    extra_globals = {NETWORK_GLOBAL: NetworkState, ("dnnlib.util", "EasyDict"): dict,
                     ("_codecs", "encode"): codecs.encode}
    holder = "StyleGAN pickle"


def first_global(head):
    """The (module, name) of the first global a pickle's bytes ``head`` asks for, or None: read
    from its opcodes (``pickletools``), nothing built."""
    strings = []
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(head)):
            if opcode.name == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                return module, name
            if opcode.name == "STACK_GLOBAL":
                return tuple(strings[-2:]) if len(strings) >= 2 else None
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                strings.append(arg)
            if opcode.name == "STOP":
                return None
    except Exception:  # noqa: BLE001  (the head ends mid-opcode, or is no pickle at all)
        return None
    return None


def is_nvidia_pickle(path):
    """True when ``path`` is a pickle whose first global is dnnlib's Network class: what an
    official file (and any dnnlib pickle: StyleGAN2's, ProGAN's) starts with."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return False
    return head[:1] == b"\x80" and first_global(head) == NETWORK_GLOBAL


def _network(obj, path, role, functions):
    """The checked ``Network`` of the NetworkState ``obj`` (``role``: G, D, Gs, mapping ...)."""
    if not isinstance(obj, NetworkState) or not isinstance(getattr(obj, "state", None), dict):
        raise NvidiaPickleError(f"{path}: its {role} is not a dnnlib network; {EXPECTED}")
    state = obj.state
    function = state.get("build_func_name")
    if state.get("version") not in NETWORK_VERSIONS:
        raise NvidiaPickleError(f"{path}: its {role} has network version "
                                f"{state.get('version')!r}, not 2 or 3; {EXPECTED}")
    if function not in functions:
        what = FOREIGN_FUNCTIONS.get(function, f"a network built by {function!r}")
        raise NvidiaPickleError(f"{path}: its {role} is {what}, not StyleGAN v1's "
                                f"{' or '.join(functions)}; {EXPECTED}")
    kwargs = state.get("static_kwargs", {})
    variables = state.get("variables")
    components = state.get("components", {})
    if not isinstance(kwargs, dict) or not isinstance(variables, (list, tuple)) \
            or not isinstance(components, dict):
        raise NvidiaPickleError(f"{path}: its {role} has malformed static_kwargs, variables or "
                                f"components; {EXPECTED}")
    arrays = {}
    for item in variables:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise NvidiaPickleError(f"{path}: its {role} has a malformed variable; {EXPECTED}")
        name, value = item
        value = np.asarray(value) if isinstance(value, (np.ndarray, np.generic, float)) else None
        if value is None or value.dtype.kind != "f" or not np.isfinite(value).all():
            raise NvidiaPickleError(f"{path}: its {role} variable {name} is not an array of "
                                    f"finite floats; the file is damaged")
        arrays[name] = value.astype(np.float32)
    return Network(str(state.get("name")), function, dict(kwargs), arrays, dict(components))


def read_nvidia_pickle(path):
    """The ``NvidiaModel`` in ``path``; NvidiaPickleError (UnsafeCheckpointError for a file
    that asks for anything but the Network class and numpy) in one line otherwise."""
    if not os.path.isfile(path):
        raise NvidiaPickleError(f"{path}: no such file; {EXPECTED}")
    try:
        with open(path, "rb") as f:
            obj = _NvidiaUnpickler(f).load()
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"{path}: {error}; load only files you trust") from None
    except Exception:  # noqa: BLE001  (pickle raises many types; all mean a damaged file)
        raise NvidiaPickleError(f"{path}: not a complete pickle: {describe_file(path)}; "
                                f"download or copy it again") from None
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise NvidiaPickleError(f"{path}: holds a {type(obj).__name__}, not the tuple (G, D, Gs); "
                                f"{EXPECTED}")
    G, D, Gs = (_network(net, path, role, functions) for net, role, functions in
                zip(obj, ("G", "D", "Gs"), ((GENERATOR_FUNCTION,), (DISCRIMINATOR_FUNCTION,),
                                            (GENERATOR_FUNCTION,))))
    for generator, role in ((G, "G"), (Gs, "Gs")):
        for part, function in (("mapping", MAPPING_FUNCTION), ("synthesis", SYNTHESIS_FUNCTION)):
            if part not in generator.components:
                raise NvidiaPickleError(f"{path}: its {role} has no {part} network; {EXPECTED}")
            generator.components[part] = _network(generator.components[part], path,
                                                  f"{role} {part}", (function,))
    return NvidiaModel(G, D, Gs)

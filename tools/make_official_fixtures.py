"""Makes the fixtures in test/fixtures/official/ with NVIDIA's own StyleGAN (v1) code. Run by hand,
never in CI, in a throwaway environment with TensorFlow's CPU package::

    python3 -m venv /tmp/tf/venv && /tmp/tf/venv/bin/pip install tensorflow-cpu
    # a checkout of NVlabs/stylegan in /tmp/nv
    cd /work/main && /tmp/tf/venv/bin/python -m tools.make_official_fixtures \\
        --stylegan /tmp/nv --out test/fixtures/official

(made with TF 2.21 and NumPy 2.4). It writes:

* ``official32.pkl``, ``official128.pkl``: ``(G, D, Gs)`` pickled as NVlabs' training writes them
  (``pickle.dump(..., protocol=4)`` through the official ``Network.__getstate__``), built by
  ``dnnlib.tflib.Network`` from ``training.networks_stylegan.G_style`` / ``D_basic`` at
  32 px (no fused layers) and 128 px (``fused_scale='auto'`` fuses the 128x128 blocks: the
  synthesis's ``Conv0_up`` is a ``conv2d_transpose``, the discriminator's ``Conv1_down`` a
  stride-2 ``conv2d``), with few channels. Every variable of G, D and Gs is set to seeded
  normal values, Gs's other than G's: weights, ``const`` and the ``noiseK`` maps std 1, biases
  0.2, ``Noise/weight`` 0.3, ``dlatent_avg`` 0.5; the mapping network's weights and biases 100
  times that (they run times ``mapping_lrmul`` 0.01). Only the ``lod`` variables stay 0.
* ``NAME_expected.npz``: what the official networks compute (see ``expected``): ``z``,
  ``images_psi1``, ``images_psi07`` (psi 0.7, cutoff 8), ``uint8_psi1``, ``uint8_psi07`` (through
  ``tflib.convert_images_to_uint8(..., nchw_to_nhwc=True)``), ``dlatents``, the style mixing
  (``mixing_cutoff``, ``mixed_from``, ``images_mixed``; official32 only, official128 has one
  latent to stay small), ``lods`` and ``images_lod`` (psi 1 with Gs's ``lod`` set to each
  value, as a file saved mid-growth renders; official32 only) and the discriminator's scores ``d_scores_B`` for B in 1, 2, 4, 8 of
  ``np.random.RandomState(d_seed + B).uniform(-1, 1, (B, 3, R, R)).astype(np.float32)``
  (the images themselves are not stored).
* ``stylegan2_like.pkl``: ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` whose states name
  StyleGAN2's build functions and variables, for the reader to refuse.
* ``malicious.pkl``: a network-shaped pickle whose variables hold an object that a plain
  ``pickle.load`` turns into ``os.system('touch /tmp/PWNED_official')``. Never load it with pickle.

Shims, none of which changes the maths:

* ``tensorflow.compat.v1`` is put in ``sys.modules['tensorflow']`` (after
  ``disable_v2_behavior()``), so NVlabs' ``import tensorflow as tf`` gets the TF1 graph API that
  the code was written for; the ops are the same kernels.
* oneDNN is turned off (``TF_ENABLE_ONEDNN_OPTS=0``) so TF's plain Eigen CPU kernels compute the
  fixtures. Those kernels take only NHWC for ``conv2d``, ``depthwise_conv2d``,
  ``conv2d_transpose`` and ``avg_pool``, so an NCHW call of these is wrapped: transpose to NHWC,
  the same op with the strides, window and output shape permuted alike, transpose back. A
  transpose only moves values, so the result is the NCHW op's.
* ``tf.get_variable`` turns a bool in a shape into an int: G_synthesis makes its noise maps
  ``[1, use_noise, H, W]`` with ``use_noise=True``, which TF1 read as 1 and today's protobuf
  refuses.
* Where the ``tensorboard`` package is missing (``tensorflow-cpu`` does not pull it in), empty
  ``tensorboard.summary`` and ``tensorboard.plugins.custom_scalar.layout_pb2`` modules are
  registered: ``dnnlib.tflib.autosummary`` imports them at module level and uses them only for
  training's TensorBoard layout. (``tf.contrib`` needs no stub: ``optimizer.py`` finds
  ``tensorflow.python.ops.nccl_ops`` first.)
* ``init_tf`` gets ``allow_soft_placement=True``: ``Network.run`` pins its graph to
  ``/gpu:0``, which a CPU-only TF must be allowed to place on the CPU.
* ``official32.pkl`` and the two refusal pickles name NumPy's array and scalar constructors
  ``numpy.core.multiarray._reconstruct`` / ``scalar``, as NumPy 1 wrote them in every released
  NVIDIA pickle; ``official128.pkl`` keeps NumPy 2's ``numpy._core.multiarray``, as a pickle
  re-saved today has. Only the module name written differs (``numpy1_names``).

The outputs are byte-identical from run to run (seeded values; the npz entries get a fixed
timestamp).
"""
import argparse
import contextlib
import copyreg
import io
import os
import pickle
import sys
import types
import warnings
import zipfile

import numpy as np

# name, resolution, number of latents, G's and D's architecture: few channels, as each pickle
# already holds the 33 kB module source six times, and the 128 px G and Gs 12 noise maps each,
# up to 128x128. The channels still differ between blocks (nf() halves them at the top ones).
# The last field: whether the pickle names NumPy's modules as NumPy 1 did (see numpy1_names).
MODELS = (
    ("official32", 32, 4,
     dict(latent_size=32, dlatent_size=32, mapping_fmaps=32, fmap_base=128, fmap_max=16),
     dict(fmap_base=128, fmap_max=16), True),
    ("official128", 128, 1,
     dict(latent_size=16, dlatent_size=16, mapping_fmaps=16, fmap_base=128, fmap_max=8),
     dict(fmap_base=128, fmap_max=8), False),
)
MIXING_CUTOFF = 4
D_BATCHES = (1, 2, 4, 8)
D_SEED = 1000
MALICIOUS_COMMAND = "touch /tmp/PWNED_official"


def load_tensorflow(stylegan):
    """Imports TF1 through TF2's compat.v1 with the shims of the docstring, then NVlabs' dnnlib."""
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    sys.modules["tensorflow"] = tf

    def nhwc(v):
        return [v[0], v[2], v[3], v[1]]

    def to_nhwc(x):
        return tf.transpose(x, [0, 2, 3, 1])

    def to_nchw(x):
        return tf.transpose(x, [0, 3, 1, 2])

    conv2d, depthwise_conv2d = tf.nn.conv2d, tf.nn.depthwise_conv2d
    conv2d_transpose, avg_pool = tf.nn.conv2d_transpose, tf.nn.avg_pool

    def conv2d_nchw(x, w, strides, padding, data_format="NHWC", **kwargs):
        if data_format != "NCHW":
            return conv2d(x, w, strides=strides, padding=padding, data_format=data_format, **kwargs)
        return to_nchw(conv2d(to_nhwc(x), w, strides=nhwc(strides), padding=padding, **kwargs))

    def depthwise_conv2d_nchw(x, w, strides, padding, data_format="NHWC", **kwargs):
        if data_format != "NCHW":
            return depthwise_conv2d(x, w, strides=strides, padding=padding, data_format=data_format, **kwargs)
        return to_nchw(depthwise_conv2d(to_nhwc(x), w, strides=nhwc(strides), padding=padding, **kwargs))

    def conv2d_transpose_nchw(x, w, output_shape, strides, padding="SAME", data_format="NHWC", **kwargs):
        if data_format != "NCHW":
            return conv2d_transpose(x, w, output_shape, strides=strides, padding=padding,
                                    data_format=data_format, **kwargs)
        return to_nchw(conv2d_transpose(to_nhwc(x), w, nhwc(output_shape), strides=nhwc(strides),
                                        padding=padding, **kwargs))

    def avg_pool_nchw(x, ksize, strides, padding, data_format="NHWC", **kwargs):
        if data_format != "NCHW":
            return avg_pool(x, ksize=ksize, strides=strides, padding=padding, data_format=data_format, **kwargs)
        return to_nchw(avg_pool(to_nhwc(x), ksize=nhwc(ksize), strides=nhwc(strides), padding=padding, **kwargs))

    tf.nn.conv2d, tf.nn.depthwise_conv2d = conv2d_nchw, depthwise_conv2d_nchw
    tf.nn.conv2d_transpose, tf.nn.avg_pool = conv2d_transpose_nchw, avg_pool_nchw

    get_variable = tf.get_variable

    def get_variable_int_shape(name, shape=None, *args, **kwargs):
        # G_synthesis's noise maps have shape [1, use_noise, H, W] with use_noise=True; today's
        # protobuf refuses a bool where TF1's took it as 1.
        if shape is not None:
            shape = [int(d) if isinstance(d, bool) else d for d in shape]
        return get_variable(name, shape, *args, **kwargs)

    tf.get_variable = get_variable_int_shape

    try:
        import tensorboard  # noqa: F401
    except ImportError:
        # autosummary imports these at module level for its TensorBoard layout (training only).
        for name in ("tensorboard", "tensorboard.summary", "tensorboard.plugins",
                     "tensorboard.plugins.custom_scalar", "tensorboard.plugins.custom_scalar.layout_pb2"):
            module = sys.modules[name] = types.ModuleType(name)
            if "." in name:
                package, leaf = name.rsplit(".", 1)
                setattr(sys.modules[package], leaf, module)

    sys.path.insert(0, os.path.abspath(stylegan))  # 'training.networks_stylegan' is imported by name
    import dnnlib.tflib as tflib
    tflib.init_tf({"rnd.np_random_seed": 1, "rnd.tf_random_seed": 1, "allow_soft_placement": True})
    return tf, tflib


def random_value(name, shape, rnd):
    """A value far from the variable's initial one, by the variable's kind."""
    leaf = name.split("/")[-1]
    # The mapping layers run their weights and biases times mapping_lrmul (0.01), so their
    # values are drawn 1/lrmul wider (use_wscale's init of them) to matter as much as the rest.
    scale = 100.0 if name.startswith("G_mapping/") else 1.0
    if leaf == "lod":
        return np.zeros(shape, np.float32)  # lod 0: the full-resolution network
    if name.endswith("Noise/weight"):
        std = 0.3
    elif leaf == "weight" or leaf == "const" or leaf.startswith("noise"):
        std = 1.0  # use_wscale's init of the weights; the noise maps' and const's scale
    elif leaf == "bias":
        std = 0.2
    elif leaf == "dlatent_avg":
        std = 0.5
    else:
        raise ValueError("no rule for variable " + name)
    return rnd.normal(0, std * scale, shape).astype(np.float32)


def randomize(tflib, net, seed):
    rnd = np.random.RandomState(seed)
    tflib.set_vars({var: random_value(name, var.shape.as_list(), rnd) for name, var in net.vars.items()})


def build(tflib, resolution, arch_g, arch_d):
    G = tflib.Network("G", func_name="training.networks_stylegan.G_style", num_channels=3,
                      resolution=resolution, label_size=0, **arch_g)
    D = tflib.Network("D", func_name="training.networks_stylegan.D_basic", num_channels=3,
                      resolution=resolution, label_size=0, **arch_d)
    Gs = G.clone("Gs")
    for seed, net in enumerate((G, D, Gs)):
        randomize(tflib, net, 100 * resolution + seed)
    return G, D, Gs


LODS = (1.5, 2.0)    # Gs's lod for images_lod: 16 px blended with 8 px, and 8 px, upscaled


def expected(tf, tflib, G, D, Gs, resolution, num):
    latent_size = Gs.input_shape[1]
    out = dict(resolution=np.int64(resolution), latent_size=np.int64(latent_size), d_seed=np.int64(D_SEED))
    z = np.random.RandomState(resolution).randn(num, latent_size).astype(np.float32)
    out["z"] = z
    out["images_psi1"] = Gs.run(z, None, truncation_psi=1.0, randomize_noise=False)
    out["images_psi07"] = Gs.run(z, None, truncation_psi=0.7, truncation_cutoff=8, randomize_noise=False)
    images = tf.placeholder(tf.float32, [None, 3, resolution, resolution])
    to_uint8 = tflib.convert_images_to_uint8(images, nchw_to_nhwc=True)
    for key in ("psi1", "psi07"):
        out["uint8_" + key] = tflib.run(to_uint8, {images: out["images_" + key]})
    out["dlatents"] = Gs.components.mapping.run(z, None)
    if num > 1:
        mixed_from = np.roll(np.arange(num), 1)
        w = out["dlatents"].copy()
        w[:, MIXING_CUTOFF:] = Gs.components.mapping.run(z[mixed_from], None)[:, MIXING_CUTOFF:]
        out["mixing_cutoff"] = np.int64(MIXING_CUTOFF)
        out["mixed_from"] = mixed_from.astype(np.int64)
        out["images_mixed"] = Gs.components.synthesis.run(w, randomize_noise=False)
    if num > 1:  # a file saved mid-growth: Gs's lod (G_style assigns it to the synthesis's)
        lods = np.array(LODS, np.float32)
        rendered = []
        for lod in lods:
            tflib.set_vars({Gs.vars["lod"]: lod})
            rendered.append(Gs.run(z, None, truncation_psi=1.0, randomize_noise=False))
        tflib.set_vars({Gs.vars["lod"]: np.float32(0)})
        out["lods"], out["images_lod"] = lods, np.stack(rendered)
    for b in D_BATCHES:
        d_images = np.random.RandomState(D_SEED + b).uniform(-1, 1, (b, 3, resolution, resolution)).astype(np.float32)
        out["d_scores_%d" % b] = D.run(d_images, None)
    return out


@contextlib.contextmanager
def numpy1_names(active=True):
    """Pickles arrays and scalars as from ``numpy.core.multiarray``, as NumPy 1 did for every
    released NVIDIA pickle, rather than NumPy 2's ``numpy._core.multiarray``. Pickle names a
    function by its ``__module__`` and checks that the name finds the same function again, which
    NumPy 2's ``numpy.core`` alias does; only the name written changes."""
    import numpy._core.multiarray as multiarray
    functions = (multiarray._reconstruct, multiarray.scalar) if active else ()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core's alias warns on use
        try:
            for function in functions:
                function.__module__ = "numpy.core.multiarray"
            yield
        finally:
            for function in functions:
                function.__module__ = "numpy._core.multiarray"


def write_npz(path, arrays):
    """np.savez_compressed, but with a fixed timestamp so that a rerun writes the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def fake_network(state):
    """A Network that StatePickler pickles with the given state, as pickle does a real one."""
    from dnnlib.tflib.network import Network
    net = object.__new__(Network)
    net.fixture_state = state
    return net


class Command:
    """Unpickles, under a plain pickle.load, as a call of os.system."""

    def __reduce__(self):
        return (os.system, (MALICIOUS_COMMAND,))


def dump_fake(path, nets):
    class StatePickler(pickle.Pickler):
        def reducer_override(self, obj):
            if "fixture_state" in getattr(obj, "__dict__", {}):
                # What pickle makes of a real Network: NEWOBJ of the class, BUILD with the state.
                return (copyreg.__newobj__, (type(obj),), obj.fixture_state)
            return NotImplemented

    with open(path, "wb") as f:
        StatePickler(f, protocol=4).dump(tuple(nets))


def stylegan2_like(G, D, Gs):
    """The official states with StyleGAN2's build functions and a few of its variable names."""
    renames = {"G_style": "G_main", "G_synthesis": "G_synthesis_stylegan2", "D_basic": "D_stylegan2"}

    def convert(net):
        state = net.__getstate__()
        state["build_func_name"] = renames.get(state["build_func_name"], state["build_func_name"])
        state["build_module_src"] = "# networks_stylegan2.py would be here\n"
        state["variables"] = [(name.replace("StyleMod/weight", "mod_weight").replace("StyleMod/bias", "mod_bias"), value)
                              for name, value in state["variables"]]
        state["components"] = {key: convert(sub) for key, sub in state["components"].items()}
        return fake_network(state)

    return [convert(net) for net in (G, D, Gs)]


def malicious(G, D, Gs):
    nets = []
    for net in (G, D, Gs):
        state = net.__getstate__()
        state["components"] = {}
        state["variables"] = state["variables"] + [("lod_hook", Command())]
        nets.append(fake_network(state))
    return nets


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stylegan", required=True, help="checkout of github.com/NVlabs/stylegan")
    parser.add_argument("--out", required=True, help="folder to write the fixtures in")
    args = parser.parse_args()
    tf, tflib = load_tensorflow(args.stylegan)
    os.makedirs(args.out, exist_ok=True)

    for name, resolution, num, arch_g, arch_d, numpy1 in MODELS:
        G, D, Gs = build(tflib, resolution, arch_g, arch_d)
        with open(os.path.join(args.out, name + ".pkl"), "wb") as f, numpy1_names(numpy1):
            pickle.dump((G, D, Gs), f, protocol=4)
        arrays = expected(tf, tflib, G, D, Gs, resolution, num)
        write_npz(os.path.join(args.out, name + "_expected.npz"), arrays)
        for key, value in arrays.items():
            print("%s %-14s %-8s %-22s [%g, %g]" % (name, key, value.dtype, value.shape, value.min(), value.max()))
        if resolution == 32:
            with numpy1_names():
                dump_fake(os.path.join(args.out, "stylegan2_like.pkl"), stylegan2_like(G, D, Gs))
                dump_fake(os.path.join(args.out, "malicious.pkl"), malicious(G, D, Gs))

    sizes = {file: os.path.getsize(os.path.join(args.out, file)) for file in sorted(os.listdir(args.out))}
    for file, size in sizes.items():
        print("%-28s %8d bytes" % (file, size))
    assert max(sizes.values()) < 700_000, "a fixture is too big"


if __name__ == "__main__":
    main()

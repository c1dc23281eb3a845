"""From an official pickle's variables to ``nvidia.networks``: the architecture read from the
variables' shapes and the few static arguments that change the maths, and each TF variable's
place among the modules' parameters.

TF variable names (local to their network, as ``Network.own_vars`` names them):
mapping ``Dense{i}/weight|bias``; synthesis ``4x4/Const/const``, ``{r}x{r}/{Layer}/weight``,
``.../Noise/weight``, ``.../bias``, ``.../StyleMod/weight|bias`` with Layer ``Const``, ``Conv``
(4x4) or ``Conv0_up``, ``Conv1``, ``ToRGB_lod{k}/weight|bias``, ``noise{i}``, ``lod``;
Gs itself ``dlatent_avg`` and ``lod``; D ``FromRGB_lod{k}/...``, ``{r}x{r}/Conv0|Conv1_down/...``,
``4x4/Conv/...``, ``4x4/Dense0|Dense1/...`` and ``lod``.
"""
import numpy as np

from files.nvidia_pickle import NvidiaPickleError
from nvidia.networks import NvidiaDiscriminator, NvidiaStyledGenerator

SUPPORTED_BLUR = ([1, 2, 1], None)
NVIDIA_KEY = "nvidia"            # a checkpoint's entry holding NVIDIA networks' extras
DEFAULT_TRUNCATION = (0.7, 8)    # G_style's truncation_psi, truncation_cutoff


def _kwarg(network, name, default, also=None):
    """A static argument of ``network`` (or of ``also``, its parent), else the default."""
    for source in (network, also):
        if source is not None and name in source.static_kwargs:
            return source.static_kwargs[name]
    return default


def _fused(flag, size):
    """networks_stylegan's ``fused_scale`` for the block of side ``size``."""
    if flag == "auto":
        return size >= 128
    return bool(flag)


def _check_kwargs(network, parent, path):
    """Refuse (one line) the static arguments whose maths this port does not have."""
    checks = (("label_size", 0, lambda v: v == 0, "a conditional model (labels)"),
              ("num_channels", 3, lambda v: v == 3, "not an RGB model"),
              ("dtype", "float32", lambda v: v == "float32", "not float32"),
              ("use_styles", True, bool, "a model without styles"),
              ("const_input_layer", True, bool, "a model without the constant input"),
              ("blur_filter", [1, 2, 1], lambda v: (list(v) if v else None) in SUPPORTED_BLUR,
               "a blur filter other than [1, 2, 1]"),
              ("nonlinearity", "lrelu", lambda v: v in ("lrelu", "relu"), "an unknown activation"),
              ("mapping_nonlinearity", "lrelu", lambda v: v in ("lrelu", "relu"),
               "an unknown activation"))
    for name, default, fine, what in checks:
        value = _kwarg(network, name, default, parent)
        try:
            ok = fine(value)
        except TypeError:
            ok = False
        if not ok:
            raise NvidiaPickleError(f"{path}: {what} ({name}={value!r}), which this port does "
                                    f"not implement")


def _get(variables, name, path, role, ndim=None):
    if name not in variables:
        raise NvidiaPickleError(f"{path}: its {role} has no variable {name}; not a complete "
                                f"StyleGAN v1 network")
    value = variables[name]
    if ndim is not None and value.ndim != ndim:
        raise NvidiaPickleError(f"{path}: its {role} variable {name} has shape "
                                f"{value.shape}, expected {ndim} dimensions")
    return value


def generator_architecture(gs, path):
    """The ``NvidiaStyledGenerator`` arch of the official generator ``gs`` (a files.nvidia_pickle
    Network with mapping and synthesis components)."""
    mapping, synthesis = gs.components["mapping"], gs.components["synthesis"]
    for part in (mapping, synthesis):
        _check_kwargs(part, gs, path)
    mv, sv = mapping.variables, synthesis.variables
    n_mapping = 0
    while f"Dense{n_mapping}/weight" in mv:
        n_mapping += 1
    if n_mapping == 0:
        raise NvidiaPickleError(f"{path}: its mapping network has no Dense0/weight")
    sizes = [_get(mv, f"Dense{i}/weight", path, "mapping", 2).shape for i in range(n_mapping)]
    n_rgb = sum(1 for name in sv if name.startswith("ToRGB_lod") and name.endswith("/weight"))
    resolution_log2 = n_rgb + 1
    if n_rgb < 1:
        raise NvidiaPickleError(f"{path}: its synthesis network has no ToRGB layer")
    const = _get(sv, "4x4/Const/const", path, "synthesis", 4)
    channels = [int(const.shape[1])]
    for res in range(3, resolution_log2 + 1):
        weight = _get(sv, f"{2 ** res}x{2 ** res}/Conv0_up/weight", path, "synthesis", 4)
        channels.append(int(weight.shape[3]))
    fused_flag = _kwarg(synthesis, "fused_scale", "auto", gs)
    blur_filter = _kwarg(synthesis, "blur_filter", [1, 2, 1], gs)
    return dict(
        latent_size=int(sizes[0][0]), mapping_sizes=[int(s[1]) for s in sizes],
        dlatent_size=int(sizes[-1][1]),
        mapping_lrmul=float(_kwarg(mapping, "mapping_lrmul", 0.01, gs)),
        mapping_nonlinearity=_kwarg(mapping, "mapping_nonlinearity", "lrelu", gs),
        mapping_use_wscale=bool(_kwarg(mapping, "use_wscale", True, gs)),
        normalize_latents=bool(_kwarg(mapping, "normalize_latents", True, gs)),
        channels=channels,
        fused=[_fused(fused_flag, 4 * 2 ** s) for s in range(len(channels))],
        use_noise=bool(_kwarg(synthesis, "use_noise", True, gs)),
        use_pixel_norm=bool(_kwarg(synthesis, "use_pixel_norm", False, gs)),
        use_instance_norm=bool(_kwarg(synthesis, "use_instance_norm", True, gs)),
        nonlinearity=_kwarg(synthesis, "nonlinearity", "lrelu", gs),
        use_wscale=bool(_kwarg(synthesis, "use_wscale", True, gs)),
        blur=bool(blur_filter),
        truncation=[_kwarg(gs, "truncation_psi", DEFAULT_TRUNCATION[0]),
                    _kwarg(gs, "truncation_cutoff", DEFAULT_TRUNCATION[1])])


def discriminator_architecture(d, path):
    """The ``NvidiaDiscriminator`` arch of the official discriminator ``d``."""
    _check_kwargs(d, None, path)
    v = d.variables
    n_rgb = sum(1 for name in v if name.startswith("FromRGB_lod") and name.endswith("/weight"))
    if n_rgb < 1:
        raise NvidiaPickleError(f"{path}: its discriminator has no FromRGB layer")
    resolution_log2 = n_rgb + 1
    channels = [int(_get(v, f"FromRGB_lod{resolution_log2 - 2 - s}/weight", path, "D", 4).shape[3])
                for s in range(n_rgb)]
    conv = _get(v, "4x4/Conv/weight", path, "D", 4)
    fused_flag = _kwarg(d, "fused_scale", "auto")
    blur_filter = _kwarg(d, "blur_filter", [1, 2, 1])
    group = int(_kwarg(d, "mbstd_group_size", 4))
    return dict(
        channels=channels, fused=[_fused(fused_flag, 4 * 2 ** s) for s in range(n_rgb)],
        mbstd_group=group, mbstd_features=int(conv.shape[2]) - channels[0] if group > 1 else 0,
        dense_channels=int(_get(v, "4x4/Dense0/weight", path, "D", 2).shape[1]),
        nonlinearity=_kwarg(d, "nonlinearity", "lrelu"),
        use_wscale=bool(_kwarg(d, "use_wscale", True)), blur=bool(blur_filter))


def _layer_names(s):
    """TF scopes of the two synthesis layers of step ``s``."""
    if s == 0:
        return "4x4/Const", "4x4/Conv"
    r = 4 * 2 ** s
    return f"{r}x{r}/Conv0_up", f"{r}x{r}/Conv1"


def generator_variable_names(generator):
    """{our parameter key: (component, TF name)} of an NvidiaStyledGenerator."""
    names = {}
    for i in range(len(generator.style.layers)):
        names[f"style.layers.{i}.weight"] = ("mapping", f"Dense{i}/weight")
        names[f"style.layers.{i}.bias"] = ("mapping", f"Dense{i}/bias")
    top = generator.max_step
    for s in range(top + 1):
        for j, scope in enumerate(_layer_names(s)):
            key = f"generator.layers.{2 * s + j}"
            if s == 0 and j == 0:
                names[f"{key}.const"] = ("synthesis", "4x4/Const/const")
            else:
                names[f"{key}.weight"] = ("synthesis", f"{scope}/weight")
            if generator.arch["use_noise"]:
                names[f"{key}.noise_strength"] = ("synthesis", f"{scope}/Noise/weight")
            names[f"{key}.bias"] = ("synthesis", f"{scope}/bias")
            names[f"{key}.style.weight"] = ("synthesis", f"{scope}/StyleMod/weight")
            names[f"{key}.style.bias"] = ("synthesis", f"{scope}/StyleMod/bias")
        names[f"generator.to_rgb.{s}.weight"] = ("synthesis", f"ToRGB_lod{top - s}/weight")
        names[f"generator.to_rgb.{s}.bias"] = ("synthesis", f"ToRGB_lod{top - s}/bias")
    return names


def discriminator_variable_names(discriminator):
    """{our parameter key: TF name} of an NvidiaDiscriminator."""
    top = discriminator.max_step
    names = {}
    for s in range(top + 1):
        for what in ("weight", "bias"):
            names[f"from_rgb.{s}.{what}"] = f"FromRGB_lod{top - s}/{what}"
            if s == 0:
                names[f"blocks.0.0.{what}"] = f"4x4/Conv/{what}"
            else:
                r = 4 * 2 ** s
                names[f"blocks.{s}.0.{what}"] = f"{r}x{r}/Conv0/{what}"
                names[f"blocks.{s}.1.{what}"] = f"{r}x{r}/Conv1_down/{what}"
    for what in ("weight", "bias"):
        names[f"dense0.{what}"] = f"4x4/Dense0/{what}"
        names[f"dense1.{what}"] = f"4x4/Dense1/{what}"
    return names


def _fill(module, values, path, role):
    """Load {key: array} into ``module`` (its ``load_state_dict`` checks every key and shape),
    a misfit raised as one line."""
    try:
        module.load_state_dict(values)
    except ValueError as error:
        raise NvidiaPickleError(f"{path}: its {role}: {error}; the networks do not fit "
                                f"together") from None


def build_generator(network, path, role="Gs"):
    """An NvidiaStyledGenerator holding the official generator ``network``'s variables."""
    generator = NvidiaStyledGenerator(generator_architecture(network, path))
    values = {}
    for key, (part, name) in generator_variable_names(generator).items():
        values[key] = _get(network.components[part].variables, name, path, f"{role} {part}")
    _fill(generator, values, path, role)
    synthesis = network.components["synthesis"].variables
    if generator.arch["use_noise"]:
        for i, shape in enumerate(m.shape for m in list(generator.stored_noise)):
            noise = _get(synthesis, f"noise{i}", path, f"{role} synthesis", 4)
            if noise.shape != shape:
                raise NvidiaPickleError(f"{path}: its {role} noise{i} has shape {noise.shape}, "
                                        f"expected {shape}")
            generator.stored_noise[i] = noise
    avg = _get(network.variables, "dlatent_avg", path, role, 1)
    if avg.shape != (generator.arch["dlatent_size"],):
        raise NvidiaPickleError(f"{path}: its {role} dlatent_avg has shape {avg.shape}, expected "
                                f"({generator.arch['dlatent_size']},)")
    generator.dlatent_avg = avg.reshape(1, -1)
    generator.lod = float(np.asarray(network.variables.get("lod", 0.0)))
    generator.eval()
    return generator


def build_discriminator(network, path):
    """An NvidiaDiscriminator holding the official discriminator ``network``'s variables."""
    discriminator = NvidiaDiscriminator(discriminator_architecture(network, path))
    values = {key: _get(network.variables, name, path, "D")
              for key, name in discriminator_variable_names(discriminator).items()}
    _fill(discriminator, values, path, "D")
    return discriminator


def generator_extras(generator):
    """What a checkpoint keeps of an NvidiaStyledGenerator beside its state dict."""
    return {"arch": dict(generator.arch), "dlatent_avg": generator.dlatent_avg,
            "stored_noise": list(generator.stored_noise), "lod": float(generator.lod)}


def generator_file(generator):
    """This project's generator file of an NvidiaStyledGenerator (train.py's ``NNNNNN.model``,
    tools.convert_nvidia's output): its state dict as ``g_running``, its extras beside it."""
    return {"g_running": generator.state_dict(),
            NVIDIA_KEY: {"g_running": generator_extras(generator)}}


def set_generator_extras(generator, extras):
    """Give ``generator`` the dlatent_avg and stored noise of ``generator_extras``' dict
    (ValueError when they do not fit it)."""
    avg = np.asarray(extras["dlatent_avg"], np.float32).reshape(1, -1)
    noise = [np.asarray(m, np.float32) for m in extras["stored_noise"]]
    if avg.shape != generator.dlatent_avg.shape or \
            [m.shape for m in noise] != [m.shape for m in generator.stored_noise]:
        raise ValueError("dlatent_avg or stored noise of other shapes than the network's")
    generator.dlatent_avg, generator.stored_noise = avg, noise
    generator.lod = float(extras.get("lod", 0.0))


def generator_from_extras(extras, state_dict):
    """The NvidiaStyledGenerator of a checkpoint's ``generator_extras`` and state dict."""
    generator = NvidiaStyledGenerator(extras["arch"])
    generator.load_state_dict(state_dict)
    set_generator_extras(generator, extras)
    generator.eval()
    return generator


def training_start(model, path):
    """What ``train.py --ckpt FILE.pkl`` starts from: {"generator", "discriminator",
    "g_running": built networks} of G, D and Gs, and the config values of the run: the
    architecture (``nvidia``), the sizes the config checks, and the resolution."""
    networks = {"generator": build_generator(model.G, path, "G"),
                "discriminator": build_discriminator(model.D, path),
                "g_running": build_generator(model.Gs, path, "Gs")}
    for name in ("generator", "g_running"):   # trained fully grown, whatever the file's lod
        networks[name].lod = 0.0
    arch_g = networks["g_running"].arch
    if networks["generator"].arch != arch_g:
        raise NvidiaPickleError(f"{path}: its G and Gs have different architectures")
    if len(networks["discriminator"].arch["channels"]) != len(arch_g["channels"]):
        raise NvidiaPickleError(f"{path}: its D and Gs are of different resolutions")
    values = dict(nvidia={"generator": arch_g,
                          "discriminator": networks["discriminator"].arch},
                  code_dim=arch_g["latent_size"], n_mlp=len(arch_g["mapping_sizes"]),
                  width=arch_g["channels"][0])
    return networks, values

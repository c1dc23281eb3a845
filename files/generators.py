"""The one entry the scripts load a generator through, whatever the file: this project's and the
references' checkpoints (``files.checkpoint``), NVIDIA's official StyleGAN v1 pickles
(``files.nvidia_pickle``), and this project's checkpoints of an official model (written by
``train.py --ckpt FILE.pkl`` or ``convert_nvidia``: they carry an ``nvidia`` entry)."""
from files import checkpoint
from files.checkpoint import CheckpointError, generator_state_dict, load_checkpoint
from files.nvidia_pickle import is_nvidia_pickle, read_nvidia_pickle
from nvidia.official_files import (DEFAULT_TRUNCATION, NVIDIA_KEY, build_generator,
                                   generator_from_extras)


def _info(generator, path, kind, max_step):
    arch = generator.arch
    return dict(code_dim=arch["latent_size"], n_mlp=len(arch["mapping_sizes"]),
                width=arch["channels"][0], kind=kind, max_step=max_step, path=path,
                flavour=generator.flavour, truncation=tuple(arch.get("truncation", DEFAULT_TRUNCATION)))


def load_generator(path):
    """``(generator, info)`` as ``files.checkpoint.load_generator``; for an official model the
    generator is an ``nvidia.networks.NvidiaStyledGenerator`` and ``info`` adds ``flavour``
    ('nvidia') and ``truncation`` (the file's default psi and cutoff)."""
    if is_nvidia_pickle(path):
        generator = build_generator(read_nvidia_pickle(path).Gs, path)
        return generator, _info(generator, path, "NVIDIA StyleGAN pickle", generator.max_step)
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and isinstance(obj.get(NVIDIA_KEY), dict):
        try:
            extras = obj[NVIDIA_KEY]["g_running"]
            generator = generator_from_extras(extras, generator_state_dict(obj))
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: a damaged checkpoint of an NVIDIA model: "
                                  f"{error}") from None
        max_step = int(obj["step"]) if "step" in obj else generator.max_step
        return generator, _info(generator, path, "checkpoint of an NVIDIA model", max_step)
    generator, info = checkpoint.load_generator(path, obj)
    return generator, dict(info, flavour="original")

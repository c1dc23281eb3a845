"""Starting a run from a training snapshot that train.py did not write: the Jittor reference's or
the PyTorch original's ``train_step-K.model``, or the original's published "Model & Optimizer"
files. Training then starts at --init_size with its fade-in, as the original's --ckpt does.
NVIDIA's official pickles arrive as the networks built from them (``OFFICIAL_NETWORKS``)."""
import sys

import jittor as jt

from files.checkpoint import strip_data_parallel
from training.optimizers import torch_adam_reports
from nvidia.official_files import generator_extras, set_generator_extras
from training.trainer import NETWORK_NAMES, load_networks

OFFICIAL_NETWORKS = "official_networks"   # train.py's start from an NVIDIA pickle: its networks


def load_snapshot(trainer, ckpt, path):
    """Load the snapshot ``ckpt`` (read from ``path``) into ``trainer``: its generator,
    discriminator and g_running, and where it holds them (the original's files) both Adam
    states, each reported in one line."""
    if OFFICIAL_NETWORKS in ckpt:
        for name, source in ckpt[OFFICIAL_NETWORKS].items():
            target = getattr(trainer, name)
            target.load_parameters(source.state_dict())
            if name != "discriminator":
                set_generator_extras(target, generator_extras(source))
        return
    state_dicts = {name: strip_data_parallel(ckpt[name]) for name in NETWORK_NAMES}
    config = trainer.config
    load_networks(trainer, state_dicts, path, f"--width {config.width} --code_dim "
                                              f"{config.code_dim} --n_mlp {config.n_mlp}")
    for message in torch_adam_reports(ckpt, path, trainer.generator, trainer.discriminator,
                                      trainer.g_optimizer, trainer.d_optimizer):
        if jt.rank == 0:
            print(f"train.py: {message}", file=sys.stderr)

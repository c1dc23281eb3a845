"""Write NVIDIA's official StyleGAN v1 pickle as this project's own generator file:

    python -m tools.convert_nvidia karras2019stylegan-ffhq-1024x1024.pkl ffhq.model

``ffhq.model`` is a ``jt.save`` file as train.py's ``checkpoint/NNNNNN.model`` of a run that
fine-tunes an official model: ``{"g_running": state dict of Gs, "nvidia": {"g_running": its
architecture, dlatent_avg and stored noise}}``. Every script reads it as it reads the pickle,
without the pickle's TensorFlow-specific parts (its module source is not carried over). The
scripts read the ``.pkl`` directly too; the conversion only makes a file that never goes through
the pickle reader again. Fine-tuning (``train.py --ckpt``) takes the ``.pkl``, which also holds
G and D.
"""
import argparse
import sys

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor

from runtime import cli  # noqa: E402
from files.checkpoint import CheckpointError, atomic_save  # noqa: E402
from files.nvidia_pickle import read_nvidia_pickle  # noqa: E402
from nvidia.official_files import build_generator, generator_file  # noqa: E402


def main(args):
    generator = build_generator(read_nvidia_pickle(args.pkl).Gs, args.pkl)
    atomic_save(generator_file(generator), args.out)
    print(f"convert_nvidia: wrote {args.out} (Gs of {args.pkl}, "
          f"{4 * 2 ** generator.max_step} px)", file=sys.stderr)
    return generator


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m tools.convert_nvidia",
        description="Write NVIDIA's official StyleGAN v1 pickle's Gs as this project's "
                    "generator file (read without running anything in the pickle).")
    parser.add_argument("pkl", help="NVIDIA's pickle, e.g. karras2019stylegan-ffhq-1024x1024.pkl")
    parser.add_argument("out", help="file to write, e.g. ffhq.model (written atomically)")
    return parser


if __name__ == "__main__":
    _parser = build_parser()
    cli.run(_parser, lambda: main(_parser.parse_args()), failures=(CheckpointError,))

"""Edit directions in W without labels: SeFa (Shen & Zhou, CVPR 2021, "Closed-Form Factorization
of Latent Semantics in GANs"), computed from a generator checkpoint's weights alone.

    python3 directions.py CKPT --layers 0-1 --out coarse.npz
    python3 generate.py CKPT --direction coarse.npz:0 --strength -3:3:7

The directions are the eigenvectors of A^T A, where A stacks the style affine weights of the
chosen synthesis layers (layer i works at 4 * 2**i px): the unit moves of w that change those
layers' AdaIN scales and biases most. The file (``files/latents.py``) holds the vectors, largest
eigenvalue first, the layer range and the eigenvalues; generate.py applies a direction to the
same layers only. By default A is first projected off the one change per AdaIN that the next
instance norm cancels (a rescale of its output at the mean style; latents/sefa.py); --plain
keeps the authors' A.
"""
import argparse

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor

from runtime import cli
from runtime.cli import UsageError
from files.checkpoint import CheckpointError
from files.generators import load_generator
from files.latents import save_directions
from latents.sefa import seeded_mean_style, sefa_directions
from model import size_for_step
from networks.style_layers import DEFAULT_LAYER_GROUP, LAYER_RANGE_SYNTAX, parse_layer_range

DEFAULT_OUT = "directions.npz"
SHOWN_VALUES = 5


def main(args):
    """Write the directions of ``args.layers`` to ``args.out``; returns (vectors, values)."""
    try:
        layers = parse_layer_range(args.layers)
    except ValueError as error:
        raise UsageError(f"--layers: {error}") from None
    if args.top is not None and args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    with cli.input_errors(CheckpointError):
        generator, info = load_generator(args.path)
    if layers[1] > info["max_step"]:
        raise UsageError(f"--layers {args.layers} reaches layer {layers[1]} "
                         f"({size_for_step(layers[1])} px), but {args.path} was trained only to "
                         f"layer {info['max_step']} ({size_for_step(info['max_step'])} px); "
                         f"the layers above are untrained")
    mean_style = None if args.plain else seeded_mean_style(generator)
    vectors, values = sefa_directions(generator, layers, mean_style)
    if args.top is not None:
        vectors, values = vectors[:args.top], values[:args.top]
    save_directions(args.out, vectors, layers, values)
    shown = ", ".join(f"{v:.3g}" for v in values[:SHOWN_VALUES])
    method = ("the authors' SeFa" if args.plain
              else "SeFa without the rescales instance norm cancels")
    print(f"wrote {len(vectors)} directions ({method}) of layers {layers[0]}-{layers[1]} "
          f"({size_for_step(layers[0])}-{size_for_step(layers[1])} px) to {args.out}; "
          f"largest eigenvalues {shown}")
    return vectors, values


def build_parser():
    parser = argparse.ArgumentParser(
        description="Compute SeFa edit directions (eigenvectors of A^T A over the chosen layers' "
                    "style affine weights) from a generator checkpoint, for generate.py "
                    "--direction.", formatter_class=cli.HelpFormatter)
    parser.add_argument("path", type=str,
                        help="checkpoint: a generator state dict or a training checkpoint (its "
                             "g_running), as generate.py reads")
    parser.add_argument("--layers", type=str, default=DEFAULT_LAYER_GROUP,
                        help="synthesis layers the directions act on (coarse: shape, pose; "
                             f"fine: colour, texture): {LAYER_RANGE_SYNTAX} "
                             f"(default {DEFAULT_LAYER_GROUP})")
    parser.add_argument("--top", type=int, default=None, metavar="K",
                        help="keep only the K directions with the largest eigenvalues "
                             "(default: all, code_dim of them)")
    parser.add_argument("--plain", action="store_true",
                        help="the authors' SeFa exactly: also count the change of each AdaIN's "
                             "styles that rescales its output, which the next instance norm "
                             "cancels (default: that change is projected out at the mean style, "
                             "so the top directions move the images; docs/latents.md)")
    parser.add_argument("--out", type=str, default=DEFAULT_OUT,
                        help=f"the .npz file written (default {DEFAULT_OUT})")
    return parser


if __name__ == "__main__":
    _parser = build_parser()
    cli.run(_parser, lambda: main(_parser.parse_args()), failures=(CheckpointError,))

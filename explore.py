"""Explore a StyleGAN generator in the browser: seeds, truncation, style mixing by layer range,
SeFa directions, projected latents and grids of seeds, live, from a page this script serves.

    python3 explore.py checkpoint/003000.model --size 32      # then open http://127.0.0.1:8000/

The page and its pictures come from the standard library's HTTP server on 127.0.0.1 (another
address only with --host); the pictures are generate.py's, and the page prints the generate.py
command for each. Requests are untrusted: each is checked (``explorer/state.py``) and a bad one
gets a 400 with its reason. docs/explorer.md has the page, the limits and the timings.
"""
import argparse
import signal
import sys

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor

from runtime import cli
from runtime.cli import UsageError
from explorer.catalogue import Catalogue
from explorer.renderer import Renderer
from explorer.server import is_loopback, make_server
from files.checkpoint import CheckpointError, size_beyond_training
from files.generators import load_generator
from model import MAX_STEP, size_for_step, step_for_size

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_OUT = "explore_out"


class ServeError(Exception):
    """The server cannot start (its address is taken or not this machine's)."""


def trained_size(generator, info):
    """The largest size the checkpoint was trained to: a training checkpoint says it; a bare
    state dict does not, but the noise weights of layers never trained are still their initial
    zeros, so the highest layer with a non-zero one tells (all zero: every size is offered)."""
    if info["kind"] == "training checkpoint" or info.get("flavour") == "nvidia":
        return size_for_step(info["max_step"])
    for step in range(MAX_STEP, -1, -1):
        block = generator.generator.progression[step]
        if any(float(abs(noise.weight_orig).max()) > 0 for noise in (block.noise1, block.noise2)):
            return size_for_step(step)
    return size_for_step(MAX_STEP)


def check_args(args):
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {args.port}")
    if args.size is not None:
        try:
            step_for_size(args.size)
        except ValueError as error:
            raise UsageError(f"--size: {error}") from None
    catalogues = (Catalogue("latents", args.latents), Catalogue("directions", args.directions))
    for catalogue in catalogues:
        problem = catalogue.check()
        if problem:
            raise UsageError(problem)
    return catalogues


def main(args):
    latents, directions = check_args(args)
    generator, info = load_generator(args.path)
    if args.size is not None:
        reason = size_beyond_training(args.size, info)
        if reason:
            raise UsageError(reason)
        max_size = args.size
    else:
        max_size = trained_size(generator, info)

    renderer = Renderer(generator, info, max_size, latents, directions)
    print(f"loaded {info['kind']} {args.path} (code_dim={info['code_dim']}, n_mlp={info['n_mlp']}, "
          f"width={info['width']}); pictures up to {max_size} px; warming up", flush=True)
    renderer.warm_up()
    try:
        server = make_server(renderer, args.host, args.port, args.path, args.out,
                             args.latents, args.directions)
    except OSError as error:
        raise ServeError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") \
            from None
    try:
        if not is_loopback(args.host):
            print(f"explore.py: warning: listening on {args.host}, not loopback: other machines "
                  f"that reach this address can use the page", file=sys.stderr, flush=True)
        # Jittor's own SIGINT handler ends the process at once with exit 1; Python's raises
        # KeyboardInterrupt, which cli.run turns into the clean exit 130
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.siginterrupt(signal.SIGINT, False)
        print(f"serving {server.url()} (Ctrl-C stops)", flush=True)
        server.serve()
    finally:
        server.server_close()


def build_parser():
    parser = argparse.ArgumentParser(
        description="Serve a page for exploring a StyleGAN generator: seeds, truncation, style "
                    "mixing, SeFa directions, projected latents, grids; each picture with the "
                    "generate.py command that makes it.",
        formatter_class=cli.HelpFormatter)
    parser.add_argument("path", type=str,
                        help="generator checkpoint, as generate.py takes (a generator state dict "
                             "or a training checkpoint, jt.save or torch.save)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="TCP port to listen on; 0 picks a free one (the URL is printed)")
    parser.add_argument("--host", type=str, default=DEFAULT_HOST,
                        help="address to listen on; anything but loopback lets other machines "
                             "use the page (it says so), so it must be asked for; through ssh, "
                             "keep the default and forward the port (ssh -L 8000:127.0.0.1:8000)")
    parser.add_argument("--size", type=int, default=None,
                        help="largest picture side offered, a power of two from 4 to 1024 "
                             "(default: the size a training checkpoint reached; for a bare "
                             "state dict, the highest layer with trained noise weights, or 1024)")
    parser.add_argument("--latents", action="append", default=[], metavar="PATH",
                        help="projected latents (.npz from projector.py) the page may show: a "
                             "file, or a folder whose .npz files are listed; repeatable "
                             "(default: none)")
    parser.add_argument("--directions", action="append", default=[], metavar="PATH",
                        help="SeFa directions (.npz from directions.py) the page offers as "
                             "sliders: a file, or a folder of them; repeatable (default: none)")
    parser.add_argument("--out", type=str, default=DEFAULT_OUT,
                        help="folder the page's 'save on the server' writes PNGs to, created at "
                             "the first save; nothing is written anywhere else")
    return parser


if __name__ == "__main__":
    _parser = build_parser()
    cli.run(_parser, lambda: main(_parser.parse_args()), failures=(CheckpointError, ServeError))

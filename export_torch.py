"""Write a generator for the PyTorch original: ``python export_torch.py CHECKPOINT OUT.model``.

Reads any checkpoint this project reads (a generator state dict, a training checkpoint or
snapshot: its ``g_running``) and writes ``OUT.model`` as ``torch.save({"g_running": state_dict})``
does, in PyTorch's zip format, with the original's key names and its Blur kernel buffers, so that
the original's ``generate.py`` loads it with ``torch.load(OUT)["g_running"]``. PyTorch is not
needed to write it (``checkpoint.write_torch_file``). The original's ``generate.py`` builds
``StyledGenerator(512)``: only full-width models (code_dim 512, n_mlp 8, width 512) load there
as they are; a narrow one is written all the same, with a note.
"""
import argparse
import sys

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor

from runtime import cli
from files.checkpoint import CheckpointError, torch_generator_state_dict, write_torch_file
from files.generators import load_generator
from model import Blur

ORIGINAL_ARCHITECTURE = dict(code_dim=512, n_mlp=8, width=512)  # what its generate.py builds


def blocks_output_channels(generator, blur_name):
    """The channels the Blur named ``blur_name`` filters: those of the styled block it sits in
    (``generator.progression.I.conv1.K``), whose kernel the original stores once per channel."""
    index = int(blur_name.split("progression.")[1].split(".")[0])
    return generator.generator.progression[index].noise1.weight_orig.shape[1]


def main(args):
    """Write args.out; returns the info of the generator written."""
    generator, info = load_generator(args.checkpoint)
    if info["flavour"] == "nvidia":
        raise CheckpointError(
            f"{args.checkpoint}: an NVIDIA model, whose maths the PyTorch original's "
            f"StyledGenerator does not have (two noise maps and styles per size, the bias after "
            f"the blur, the style's +1, the mapping's lrmul); its .pkl is read as it is by "
            f"generate.py and the other scripts")
    state = {key: value.numpy() for key, value in generator.state_dict().items()}
    blur_channels = {name: blocks_output_channels(generator, name)
                     for name, module in generator.named_modules() if isinstance(module, Blur)}
    write_torch_file({"g_running": torch_generator_state_dict(state, blur_channels)}, args.out)
    architecture = {key: info[key] for key in ORIGINAL_ARCHITECTURE}
    print(f"export_torch.py: wrote {args.out} (g_running of {info['kind']} {args.checkpoint}, "
          f"{', '.join(f'{k}={v}' for k, v in architecture.items())})", file=sys.stderr)
    if architecture != ORIGINAL_ARCHITECTURE:
        print("export_torch.py: note: the PyTorch original's generate.py builds "
              "StyledGenerator(512) (code_dim 512, n_mlp 8, width 512); this narrower model "
              "loads only into a StyledGenerator built with its own sizes", file=sys.stderr)
    return info


def build_parser():
    parser = argparse.ArgumentParser(
        description="Write a generator checkpoint as the PyTorch original's torch.save file "
                    "(torch.load(OUT)['g_running']), without PyTorch.")
    parser.add_argument("checkpoint", help="any checkpoint generate.py reads (its g_running is "
                                           "written)")
    parser.add_argument("out", help="file to write, e.g. for_pytorch.model (written atomically)")
    return parser


if __name__ == "__main__":
    # bad flags: exit 2; an unreadable checkpoint or unwritable OUT (atomic.WriteError): 1
    _parser = build_parser()
    cli.run(_parser, lambda: main(_parser.parse_args()), failures=(CheckpointError,))

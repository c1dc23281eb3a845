"""Train StyleGAN with progressive growing, as the reference's ``train.py`` does.

    python train.py data --init_size 8          # data/8, data/16, ... data/128 (resize.py)

Faithful to xUhEngwAng/StyleGAN-jittor (defaults, command line, maths) and to the PyTorch
original rosinality/style-based-gan-pytorch it ports (``--sched``, ``--loss wgan-gp``,
``--max_size``, ...): the networks grow from ``--init_size`` to ``--max_size``, each resolution
fading in over ``--phase`` images and then training ``--phase`` more; the discriminator is
trained with the non-saturating loss and the R1 penalty on real images (StyleGAN paper,
appendix C; Mescheder et al. 2018), the generator with the non-saturating loss and style-mixing
inputs (paper section 3.1); Adam with betas (0, 0.99), the mapping network at 1/100 of the
learning rate, and ``g_running``, an exponential moving average of the generator, is what the
samples and the ``NNNNNN.model`` files come from.

This script is the configuration, the resume policy (which checkpoint a run continues, and never
writing one run over another) and the command line. The run itself is the ``training`` package:
``training.config`` (the options' defaults and checks), ``training.trainer`` (the state of a run
and its iteration), ``training.loop`` (the loop, its outputs and clean stops), and the schedule,
losses, optimisers, data stream, run folder and stopping beside them.

``mpirun -np N python train.py data ...`` trains one model on N processes with Jittor's own
MPI data parallelism: the batch is global, each process trains on its share of it (as Jittor's
Dataset shards it), Jittor's optimisers average the gradients, and only rank 0 writes.
"""
import argparse
import os
import signal
import sys
from dataclasses import fields, replace

# mpirun forwards SIGUSR1 (a clean stop, see StopRequest) to each process's whole process group.
# Until StopRequest handles it, a rank ignores it rather than dying of it; Jittor's compiler
# workers are restarted with it ignored by jittor_setup.compiler_pool_ignores (in main).
if __name__ == "__main__" and "OMPI_COMM_WORLD_SIZE" in os.environ and hasattr(signal, "SIGUSR1"):
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)

from runtime import jittor_setup  # noqa: E402
jittor_setup.setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt  # noqa: E402

from runtime import cli  # noqa: E402
from runtime.cli import UsageError  # noqa: E402
from dataset import DatasetError, check_resolutions  # noqa: E402
from files.resizing import make_zip_sizes  # noqa: E402
from files.checkpoint import (CheckpointError, describe_object, from_rgb_activated,  # noqa: E402
                              generator_config, generator_state_dict, is_generator_state_dict,
                              is_training_checkpoint, load_checkpoint, strip_data_parallel)
from training.config import (DEFAULTS, REFERENCE_BATCH, DEFAULT_BATCH, TrainConfig,  # noqa: E402
                             ConfigError, training_sizes, validate, with_seed)
from training.loop import train  # noqa: E402
from files.nvidia_pickle import is_nvidia_pickle, read_nvidia_pickle  # noqa: E402
from networks.shapes import size_for_step  # noqa: E402
from nvidia.official_files import training_start  # noqa: E402
from training.snapshots import OFFICIAL_NETWORKS  # noqa: E402
from training.losses import LOSSES  # noqa: E402
from training.run_folder import (CHECKPOINT_DIR, IDENTITY_KEYS, NEWEST_FILE,  # noqa: E402
                                 RUN_KEYS, TRAIN_STATE_FILE, newest_training_checkpoint,
                                 run_differences, run_files)
from training.stopping import POOL_IGNORES, OutputFailed, TrainingDiverged  # noqa: E402


# ------------------------------------------------------------------------------------------------
# Checkpoints given with --ckpt or found by --resume
# ------------------------------------------------------------------------------------------------

def classify_checkpoint(obj, path):
    """'training' or 'snapshot'; CheckpointError for any other kind of file."""
    if is_training_checkpoint(obj):
        if not isinstance(obj.get("args"), dict):
            raise CheckpointError(f"{path}: a training checkpoint without its args dict")
        return "training"
    if all(k in obj for k in ("generator", "discriminator", "g_running")):
        return "snapshot"
    hint = ("--ckpt needs a training checkpoint written by train.py (checkpoint/"
            f"{TRAIN_STATE_FILE}, checkpoint/train_step-K.model) or the reference's "
            "train_step-K.model")
    if is_generator_state_dict(obj):
        raise CheckpointError(f"{path}: a generator state dict (what generate.py samples), not "
                              f"a training checkpoint; {hint}")
    raise CheckpointError(f"{path}: {describe_object(obj)}, not a training checkpoint; {hint}")


def config_from_args(args):
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
              if hasattr(args, f.name)}
    values["mixing"] = not args.no_mixing
    values["from_rgb_activate"] = not args.no_from_rgb_activate
    return TrainConfig(**values)


def resumed_config(config, ckpt):
    """``config`` with the run-defining values (RUN_KEYS) of the checkpoint's args.

    Options left at their defaults are taken from the checkpoint silently; one given on the
    command line with another value is overridden, with a note."""
    saved = ckpt["args"]
    for key in ("code_dim", "n_mlp", "width"):
        if key not in saved:
            raise CheckpointError(f"{config.ckpt}: its args lack {key}")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    changes = {key: saved[key] for key in RUN_KEYS
               if key in saved and saved[key] != getattr(config, key)}
    for key, value in changes.items():
        if getattr(config, key) != defaults[key] and jt.rank == 0:
            print(f"train.py: note: {config.ckpt} continues its run with {key} = {value}, not "
                  f"{getattr(config, key)}", file=sys.stderr)
    return replace(config, **changes)


def snapshot_config(config, ckpt):
    """``config`` for continuing a training snapshot: its architecture (code_dim, n_mlp, width
    read from its g_running; from_rgb_activate from its discriminator's keys), with a note for
    each flag given otherwise, and the fade-in at --init_size that the original's --ckpt does."""
    try:
        architecture = generator_config(generator_state_dict(ckpt))
    except CheckpointError as error:
        raise CheckpointError(f"{config.ckpt}: {error}") from None
    discriminator = strip_data_parallel(ckpt["discriminator"])
    if isinstance(discriminator, dict) and any(str(k).startswith("from_rgb.") for k in discriminator):
        architecture["from_rgb_activate"] = from_rgb_activated(discriminator)
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for key, value in architecture.items():
        if getattr(config, key) not in (value, defaults[key]) and jt.rank == 0:
            print(f"train.py: note: {config.ckpt} holds a model with {key} = {value}, not "
                  f"{getattr(config, key)}; continuing with {value}", file=sys.stderr)
    return replace(config, fade_in_initial=True, **architecture)


# ------------------------------------------------------------------------------------------------
# Run folders: --resume, and never writing one run over another
# ------------------------------------------------------------------------------------------------

OFFICIAL_RUN_KEYS = ("init_size", "max_size", "code_dim", "n_mlp", "width", "fade_in_initial",
                     "nvidia")     # what official_start sets from the pickle


def official_start(config):
    """``--ckpt FILE.pkl`` (NVIDIA's official model): ``(config, start)``, the run continuing
    its G, D and Gs with NVIDIA's networks at the model's resolution (no fade-in: an official
    file is fully grown), with a note for each flag given otherwise."""
    networks, values = training_start(read_nvidia_pickle(config.ckpt), config.ckpt)
    size = size_for_step(networks["g_running"].max_step)
    values.update(init_size=size, max_size=size, fade_in_initial=False)
    for key, value in values.items():
        if key != "nvidia" and getattr(config, key) not in (value, DEFAULTS[key]) \
                and jt.rank == 0:
            print(f"train.py: note: {config.ckpt} holds a {size} px model with {key} = {value}, "
                  f"not {getattr(config, key)}; continuing with {value}", file=sys.stderr)
    return replace(config, **values), {OFFICIAL_NETWORKS: networks}


def resume_from_out(config):
    """--resume: ``(config, checkpoint, finished)`` continuing ``config.out``'s newest training
    checkpoint (``config.ckpt`` then names it), or ``config`` unchanged and None for a fresh
    run when there is none. Says which in one line. UsageError when the checkpoint is of another
    run (other options or data): a requeued command must continue its own run."""
    found = newest_training_checkpoint(config.out)
    config = replace(config, resume=False)
    if found is None:
        if jt.rank == 0:
            print(f"train.py: --resume: no training checkpoint in "
                  f"{os.path.join(config.out, CHECKPOINT_DIR)}: starting a fresh run",
                  file=sys.stderr)
        return config, None, False
    path, checkpoint = found
    if checkpoint["args"].get("nvidia") is not None:
        # a run fine-tuning an NVIDIA pickle: these came from the pickle, not from flags
        config = replace(config, **{key: checkpoint["args"][key] for key in OFFICIAL_RUN_KEYS
                                    if key in checkpoint["args"]})
    differences = run_differences(config, checkpoint["args"])
    if differences:
        raise UsageError(f"--resume: {path} is from another run ({'; '.join(differences)}): "
                         f"give the options of that run to continue it, or a fresh --out for a "
                         f"new one")
    done = int(checkpoint["iteration"])
    finished = done >= config.iter
    if jt.rank == 0:
        what = ("the run is complete, nothing to do" if finished
                else f"continuing to iteration {config.iter}")
        print(f"train.py: --resume: {path} (iteration {done}): {what}", file=sys.stderr)
    return replace(config, ckpt=path), checkpoint, finished


def check_out_is_free(config, checkpoint):
    """Refuse (UsageError) to write a run into an ``--out`` that holds another run's files,
    unless ``--ckpt`` continues that run (one of its checkpoints, or a copy of one)."""
    existing = run_files(config.out)
    if not existing:
        return
    shown = ", ".join(os.path.relpath(p, config.out) for p in existing[:3])
    shown += ", ..." if len(existing) > 3 else ""
    if config.ckpt is not None:
        own = os.path.realpath(os.path.join(config.out, CHECKPOINT_DIR))
        if os.path.dirname(os.path.realpath(config.ckpt)) == own:
            return
        found = newest_training_checkpoint(config.out) if is_training_checkpoint(checkpoint) \
            else None
        if found is not None and all(found[1]["args"].get(k) == checkpoint["args"].get(k)
                                     for k in IDENTITY_KEYS):
            return
        raise UsageError(f"--out {config.out} holds another run ({shown}) than --ckpt "
                         f"{config.ckpt}: give a fresh --out, or continue that run with --resume")
    raise UsageError(f"--out {config.out} already holds a training run ({shown}): continue it "
                     f"with --resume (the same command each time), or give a fresh --out")


def checked(config):
    """``validate(config)``, a bad value being a usage error (exit 2)."""
    with cli.input_errors(ConfigError):
        return validate(config)


def main(args):
    """Validate, load --ckpt (or with --resume the --out folder's newest checkpoint), check the
    data, train. Errors raise before any training. Returns the Trainer, or None when --resume
    finds the run complete."""
    config = checked(config_from_args(args))
    # Ctrl-C and SIGUSR1 reach the training loop, not Jittor's compiler processes (which would
    # end the run uncleanly)
    jittor_setup.compiler_pool_ignores(POOL_IGNORES)
    checkpoint, resuming = None, config.resume
    if resuming:
        config, checkpoint, finished = resume_from_out(config)
        if finished:
            return None
    if config.ckpt is not None and checkpoint is None and is_nvidia_pickle(config.ckpt):
        config, checkpoint = official_start(config)
        config = checked(config)
    elif config.ckpt is not None:
        checkpoint = checkpoint if checkpoint is not None else load_checkpoint(config.ckpt)
        kind = classify_checkpoint(checkpoint, config.ckpt)
        if kind == "training":
            config = checked(resumed_config(config, checkpoint))
            done = int(checkpoint["iteration"])
            if done >= config.iter:
                raise UsageError(f"--iter {config.iter}: the checkpoint has already done {done} "
                                 f"iterations; give a larger --iter to train on")
        else:
            config = checked(snapshot_config(config, checkpoint))
    if not resuming:
        check_out_is_free(config, checkpoint)
    config = with_seed(config)
    if not os.path.exists(config.path):
        raise UsageError(f"{config.path}: no such data folder, LMDB or zip (make one with "
                         f"build_emoji.py or resize.py)")
    # a dataset_tool.py zip holds one size: the smaller ones are written beside it once
    sizes = training_sizes(config)
    make_zip_sizes(config.path, sizes, progress=jt.rank == 0, wait=jt.rank != 0)
    check_resolutions(config.path, sizes)
    if jt.rank == 0:
        print(f"train.py: seed {config.seed}; sizes {config.init_size}..{config.max_size}; "
              f"outputs in {os.path.abspath(config.out)}", file=sys.stderr)
    return train(config, checkpoint)




# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train StyleGAN v1 progressively (the reference's train.py). Writes "
                    "OUT/sample/NNNNNN.png, OUT/checkpoint/NNNNNN.model (g_running), "
                    f"OUT/checkpoint/train_step-K.model, OUT/checkpoint/{TRAIN_STATE_FILE} "
                    f"(resume with --ckpt), OUT/checkpoint/{NEWEST_FILE} (which of those two "
                    "was written last: what --resume continues) and OUT/log.csv.",
        formatter_class=cli.HelpFormatter)
    parser.add_argument("path", help="the data: a folder holding one image folder per size "
                                     "(PATH/8, PATH/16, ...; see resize.py), an LMDB made by the "
                                     "PyTorch original's prepare_data.py, or a dataset_tool.py "
                                     "zip (docs/data.md)")
    parser.add_argument("--ckpt", default=DEFAULTS["ckpt"],
                        help="resume from this checkpoint: a train.py training checkpoint "
                             "continues exactly (its run-defining options win over the command "
                             "line); a reference train_step-K.model gives the weights and "
                             "training starts at --init_size with a fade-in, as the reference; "
                             "NVIDIA's official StyleGAN pickle (G, D, Gs) is fine-tuned with "
                             "NVIDIA's networks at its own resolution")
    parser.add_argument("--init_size", type=int, default=DEFAULTS["init_size"],
                        help="initial image size")
    parser.add_argument("--max_size", type=int, default=DEFAULTS["max_size"],
                        help="final image size")
    parser.add_argument("--phase", type=int, default=DEFAULTS["phase"],
                        help="images per half phase: the new size fades in over PHASE images, "
                             "then trains PHASE more before the next size")
    parser.add_argument("--iter", type=int, default=DEFAULTS["iter"],
                        help="total iterations (a resumed run counts the checkpoint's)")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                        help="Adam learning rate (the mapping network gets lr x 0.01)")
    parser.add_argument("--sched", action="store_true",
                        help="the PyTorch original's per-size tables: lr 0.0015/0.002/0.003 "
                             "from 128/256/512 px, batch 512..32 (32 from 64 px)")
    parser.add_argument("--loss", choices=sorted(LOSSES), default=DEFAULTS["loss"],
                        help="r1: non-saturating + R1 penalty (the reference); wgan-gp: the "
                             "PyTorch original's WGAN-GP with its drift term")
    parser.add_argument("--no_mixing", action="store_true",
                        help="no style-mixing inputs (the reference mixes with probability 0.9)")
    parser.add_argument("--batch", type=int, default=DEFAULTS["batch"],
                        help="global batch size at every size: under mpirun -np N each "
                             "process trains on batch / N images of it, so it must be a "
                             "multiple of N (default: the reference's table "
                             f"{' '.join(f'{k}:{v}' for k, v in REFERENCE_BATCH.items())}, "
                             f"else {DEFAULT_BATCH}; global too)")
    parser.add_argument("--no_from_rgb_activate", action="store_true",
                        help="no LeakyReLU after the discriminator's from-RGB convolutions")
    parser.add_argument("--width", type=int, default=DEFAULTS["width"],
                        help="channels of the 4-32 px blocks (512: the reference; smaller "
                             "narrows every layer alike, for CPU runs and tests)")
    parser.add_argument("--code_dim", type=int, default=DEFAULTS["code_dim"],
                        help="size of the latent z and style w (512 for reference checkpoints)")
    parser.add_argument("--n_mlp", type=int, default=DEFAULTS["n_mlp"],
                        help="layers of the mapping network")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                        help="seed of every random choice (default: a random one, printed and "
                             "stored in the checkpoints)")
    parser.add_argument("--out", default=DEFAULTS["out"],
                        help="folder for checkpoint/, sample/ and log.csv")
    parser.add_argument("--sample_every", type=int, default=DEFAULTS["sample_every"],
                        help="write a sample grid every N iterations")
    parser.add_argument("--save_every", type=int, default=DEFAULTS["save_every"],
                        help="write NNNNNN.model and the resumable checkpoint every N iterations")
    parser.add_argument("--save_minutes", "--save-minutes", type=float,
                        default=DEFAULTS["save_minutes"],
                        help=f"also write the resumable checkpoint {TRAIN_STATE_FILE} every N "
                             f"minutes, so a SIGKILL or power cut loses at most that (0: only "
                             f"every --save_every iterations)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its newest training checkpoint, or "
                             "start it when there is none: a requeued job gives the same command "
                             "every time. Without it, an --out holding another run is refused")
    parser.add_argument("--ema_decay", type=float, default=DEFAULTS["ema_decay"],
                        help=f"g_running <- decay x g_running + (1 - decay) x generator after "
                             f"every iteration (default {DEFAULTS['ema_decay']}, the reference's: a half-life "
                             f"of ~700 iterations, right for long runs; short CPU runs such as "
                             f"the demo sample better with 0.99)")
    parser.add_argument("--workers", type=int, default=DEFAULTS["workers"],
                        help="data-loading worker processes (0: load in the main process, as "
                             "the reference)")
    return parser


def stop_line(end):
    """The line that says where a run stopped by a signal can be continued."""
    name = signal.Signals(end.interrupted).name
    if end.last_checkpoint is not None:
        return (f"stopped at iteration {end.trainer.iteration} ({name}); resume with --ckpt "
                f"{end.last_checkpoint[0]}, or --resume (the same command)")
    return f"stopped at iteration {end.trainer.iteration} ({name}); no checkpoint was written"


def run_command(args):
    """``main(args)``, with a stop by a signal as ``cli.Stopped``: 143 for SIGTERM, else 130."""
    try:
        end = main(args)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, without saving
        raise cli.Stopped("stopped without saving") from None
    if end is not None and end.interrupted:
        raise cli.Stopped(stop_line(end),
                          terminated=end.interrupted == getattr(signal, "SIGTERM", None))


def leave_process(status):
    """Exit with ``status``; after a SIGTERM (143) at once, skipping the interpreter's shutdown
    (everything is saved and flushed by then): a SIGTERM sent to the whole process group (SLURM,
    ``timeout``) also ends the children Jittor and multiprocessing keep, and at shutdown Jittor's
    SIGCHLD handler turns their ends into "Caught SIGCHLD ... quick exit" and exit status 1.
    Not under MPI, where the processes must leave through MPI's own finalisation."""
    if status != cli.EXIT_TERMINATED or jt.in_mpi:
        sys.exit(status)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def command_line(argv=None, leave=leave_process):
    """The command line: parse ``argv``, train, and leave with cli.py's exit status (2 bad
    options or inputs, 1 a failure at run time, 130 stopped by Ctrl-C or SIGUSR1, 143 by
    SIGTERM, 0 done; ``leave(status)``'s value is returned when it returns). Errors are one
    line on stderr, from rank 0 only."""
    parser = build_parser()
    return cli.run(parser, lambda: run_command(parser.parse_args(argv)),
                   failures=(DatasetError, CheckpointError, TrainingDiverged, OutputFailed),
                   speaks=jt.rank == 0, leave=leave)


if __name__ == "__main__":
    command_line()

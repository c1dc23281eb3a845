"""Benchmark: is data loading fast enough not to slow training down?

    python bench_data.py data            # needs data/8, data/32, data/128 (see README)

For each size it measures (1) the loader alone: batches per second of MultiResolutionDataset
(shuffle, flip, drop_last, converted to jt.Var), and (2) train.py's own training iteration
(``Trainer.train_iteration``: its data stream, the D step with R1, the G step with style mixing,
the EMA) with a narrow model at the reference's batch size. It prints the ratio of loader speed
to training speed, which should be at least MIN_RATIO, and the share of an iteration the loader
takes. Not a test: it takes a few minutes and its numbers depend on the machine.
"""
import argparse
import statistics
import tempfile
import time

import jittor_env  # noqa: F401  (prepares Jittor's environment before jittor is imported)
import jittor as jt

import cli
from dataset import DatasetError, MultiResolutionDataset, check_resolutions

# the reference's batch size per resolution (train.py: {4: 512, 8: 256, 16: 128, 32: 64, ...})
REFERENCE_BATCH = {8: 256, 16: 128, 32: 64, 64: 32, 128: 16}
DEFAULT_SIZES = (8, 32, 128)
MIN_RATIO = 5.0  # the loader must be at least this many times faster than a training step
N_MLP = 8        # the reference's mapping network


def batch_size_for(size, cap):
    return min(REFERENCE_BATCH[size], cap) if cap else REFERENCE_BATCH[size]


def time_loader(root, size, batch_size, num_workers, batches):
    """Batches per second of the loader, after one warm-up batch (which starts the workers)."""
    dataset = MultiResolutionDataset(root, resolution=size, flip=True, batch_size=batch_size,
                                     shuffle=True, drop_last=True, num_workers=num_workers)
    if len(dataset) == 0:
        raise SystemExit(f"bench_data.py: error: fewer than {batch_size} images in "
                         f"{root}/{size}")

    def endless():
        while True:
            yield from dataset

    stream = endless()
    next(stream).sync()
    start = time.perf_counter()
    for _ in range(batches):
        next(stream).sync()
    elapsed = time.perf_counter() - start
    dataset.terminate()
    return batches / elapsed


def time_training(root, size, batch_size, args):
    """Seconds per ``Trainer.train_iteration`` at ``size`` (median of ``args.steps`` after
    ``args.warmup`` untimed ones, in which Jittor compiles), fed by train.py's own data stream."""
    from train import TrainConfig, Trainer  # after jittor_env
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(path=root, init_size=size, max_size=size, batch=batch_size,
                             width=args.width, code_dim=args.code_dim, n_mlp=N_MLP,
                             workers=args.workers, seed=0, out=out)
        trainer = Trainer(config)
        try:
            for _ in range(args.warmup):
                trainer.train_iteration()
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                trainer.train_iteration()
                jt.sync_all(True)
                times.append(time.perf_counter() - start)
        finally:
            if trainer.stream is not None:
                trainer.stream.close()
    return statistics.median(times)


def main(args):
    """Run the benchmark for each size; returns a list of result dicts and prints a table."""
    check_resolutions(args.root, args.sizes)
    print(f"# loader: num_workers={args.workers}; model: width={args.width}, "
          f"code_dim={args.code_dim}, n_mlp={N_MLP}; device: "
          f"{'GPU' if jt.flags.use_cuda else 'CPU'}")
    print("| size | batch | loader batches/s | train iteration s | ratio | loader share |")
    print("|---:|---:|---:|---:|---:|---:|")
    results = []
    for size in args.sizes:
        batch_size = batch_size_for(size, args.batch_cap)
        loader_rate = time_loader(args.root, size, batch_size, args.workers, args.batches)
        step_time = time_training(args.root, size, batch_size, args)
        ratio = loader_rate * step_time
        results.append(dict(size=size, batch=batch_size, loader_rate=loader_rate,
                            step_time=step_time, ratio=ratio))
        print(f"| {size} | {batch_size} | {loader_rate:.1f} | {step_time:.3f} | {ratio:.0f}x "
              f"| {100 / ratio:.1f} % |", flush=True)
    slow = [r["size"] for r in results if r["ratio"] < MIN_RATIO]
    print(f"# loader at least {MIN_RATIO:g}x faster than a training step at every size: "
          f"{'yes' if not slow else 'NO (sizes ' + ', '.join(map(str, slow)) + ')'}")
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Measure loader batches/s against training steps/s at several sizes.")
    parser.add_argument("root", help="data set folder holding ROOT/<size> for every size")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        choices=sorted(REFERENCE_BATCH), help="sizes to measure (default: "
                        f"{' '.join(map(str, DEFAULT_SIZES))})")
    parser.add_argument("--batch_cap", type=int, default=None,
                        help="largest batch size (default: none, the reference's batch sizes "
                             f"{REFERENCE_BATCH})")
    parser.add_argument("--workers", type=int, default=0,
                        help="loader worker processes (default: 0, loading in the main process)")
    parser.add_argument("--batches", type=int, default=30, help="loader batches timed (default 30)")
    parser.add_argument("--width", type=int, default=64,
                        help="model width, channels of the low-resolution blocks (default 64)")
    parser.add_argument("--code_dim", type=int, default=128,
                        help="latent and style size of the model (default 128)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed training steps first; Jittor compiles in them (default 2)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (default 3)")
    args = parser.parse_args(argv)
    for flag, minimum in (("batches", 1), ("steps", 1), ("width", 1), ("code_dim", 1),
                          ("warmup", 0), ("workers", 0)):
        if getattr(args, flag) < minimum:
            parser.error(f"--{flag} must be at least {minimum}, got {getattr(args, flag)}")
    if args.batch_cap is not None and args.batch_cap < 1:
        parser.error(f"--batch_cap must be at least 1, got {args.batch_cap}")
    return args


if __name__ == "__main__":
    # bad flags: exit 2 (argparse); a missing or unreadable data folder: 1; Ctrl-C 130, SIGTERM 143
    _parser = argparse.ArgumentParser(prog="bench_data.py")
    cli.run(_parser, lambda: main(parse_args()), failures=(DatasetError,))

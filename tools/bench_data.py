"""Benchmark: is data loading fast enough not to slow training down?

    python -m tools.bench_data data            # needs data/8, data/32, data/128 (see README)

For each size it measures (1) the loader alone: images per second of MultiResolutionDataset
(shuffle, flip, drop_last, converted to jt.Var) from each data source side by side: the
folders, an LMDB of the PyTorch original's layout and a dataset_tool.py zip, both made from
the same images in a temporary folder first (or given with --lmdb and --zip), and (2)
train.py's own training iteration (``Trainer.train_iteration``: its data stream, the D step
with R1, the G step with style mixing, the EMA) with a narrow model at the reference's batch
size. It prints the ratio of the slowest source's speed to training speed, which should be at
least MIN_RATIO. Not a test: it takes a few minutes and its numbers depend on the machine.
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time
import zipfile

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt

from runtime import cli
from dataset import DatasetError, MultiResolutionDataset, check_resolutions
from files.datasets import largest_image_folder, resolution_folder
from files.images import encode_image, list_images, prepare_image
from files.lmdb_data import LmdbWriter, image_key
from files.zip_data import output_name

SOURCES = ("folders", "lmdb", "zip")

# the reference's batch size per resolution (train.py: {4: 512, 8: 256, 16: 128, 32: 64, ...})
REFERENCE_BATCH = {8: 256, 16: 128, 32: 64, 64: 32, 128: 16}
DEFAULT_SIZES = (8, 32, 128)
MIN_RATIO = 5.0  # the loader must be at least this many times faster than a training step
N_MLP = 8        # the reference's mapping network


def batch_size_for(size, cap):
    return min(REFERENCE_BATCH[size], cap) if cap else REFERENCE_BATCH[size]


def make_lmdb(root, sizes, out):
    """The images of ``root/<size>`` for every size in ``sizes`` as an LMDB of the original's
    layout at ``out`` (JPEG at quality 100, as resize.py --format lmdb writes)."""
    from PIL import Image
    names = list_images(resolution_folder(root, max(sizes)))
    writer = LmdbWriter(out, create=True)
    for size in sizes:
        for index, name in enumerate(names):
            with Image.open(os.path.join(resolution_folder(root, size), name)) as img:
                writer.put(image_key(size, index),
                           encode_image(prepare_image(img, size), "JPEG"))
    writer.finish(length=len(names))
    return out


def make_zip(root, sizes, out):
    """The images of ``root/<largest size>`` as a dataset_tool.py zip at ``out`` (stored
    members ``00000/img00000000.png``, ...), with the smaller sizes copied into the folders that
    ``resize.py out --min_size N`` writes beside it."""
    top = max(sizes)
    names = list_images(resolution_folder(root, top))
    members = [f"{i // 1000:05d}/img{i:08d}{os.path.splitext(n)[1].lower()}"
               for i, n in enumerate(names)]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, member in zip(names, members):
            archive.write(os.path.join(resolution_folder(root, top), name), member)
    for size in sizes:
        if size == top:
            continue
        folder = os.path.join(os.path.splitext(out)[0], str(size))
        os.makedirs(folder)
        for name, member in zip(names, members):
            shutil.copyfile(os.path.join(resolution_folder(root, size), name),
                            os.path.join(folder, output_name(member)))
    return out


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
    from training.config import TrainConfig
    from training.trainer import Trainer
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


def source_paths(args, folder):
    """{source: path} of each data source measured; an LMDB and a zip not given are made in
    ``folder`` from the images of ``args.root`` (the sizes measured and the largest one)."""
    sizes = sorted(set(args.sizes) | {largest_image_folder(args.root)})
    check_resolutions(args.root, sizes)
    paths = {"folders": args.root}
    if "lmdb" in args.sources:
        paths["lmdb"] = args.lmdb or make_lmdb(args.root, sizes, os.path.join(folder, "data.lmdb"))
    if "zip" in args.sources:
        paths["zip"] = args.zip or make_zip(args.root, sizes, os.path.join(folder, "data.zip"))
    for path in paths.values():
        check_resolutions(path, args.sizes)
    return {source: paths[source] for source in args.sources}


def main(args):
    """Run the benchmark for each size; returns a list of result dicts and prints a table."""
    check_resolutions(args.root, args.sizes)
    with tempfile.TemporaryDirectory() as folder:
        return measure(args, source_paths(args, folder))


def measure(args, paths):
    print(f"# loader: num_workers={args.workers}; model: width={args.width}, "
          f"code_dim={args.code_dim}, n_mlp={N_MLP}; device: "
          f"{'GPU' if jt.flags.use_cuda else 'CPU'}; sources: "
          + ", ".join(f"{source} {path}" for source, path in paths.items()))
    names = {"folders": "folders", "lmdb": "LMDB", "zip": "zip"}
    print("| size | batch | " + " | ".join(f"{names[s]} images/s" for s in paths)
          + " | train iteration s | training images/s | slowest loader / training |")
    print("|---:|---:|" + "---:|" * len(paths) + "---:|---:|---:|")
    results = []
    for size in args.sizes:
        batch_size = batch_size_for(size, args.batch_cap)
        rates = {source: batch_size * time_loader(path, size, batch_size, args.workers,
                                                  args.batches)
                 for source, path in paths.items()}
        step_time = time_training(args.root, size, batch_size, args)
        ratio = min(rates.values()) * step_time / batch_size
        results.append(dict(size=size, batch=batch_size, images_per_second=rates,
                            loader_rate=rates[next(iter(paths))] / batch_size,
                            step_time=step_time, ratio=ratio))
        print(f"| {size} | {batch_size} | "
              + " | ".join(f"{rates[s]:.0f}" for s in paths)
              + f" | {step_time:.3f} | {batch_size / step_time:.1f} | {ratio:.0f}x |", flush=True)
    slow = [r["size"] for r in results if r["ratio"] < MIN_RATIO]
    print(f"# loader at least {MIN_RATIO:g}x faster than a training step at every size: "
          f"{'yes' if not slow else 'NO (sizes ' + ', '.join(map(str, slow)) + ')'}")
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Measure loader images/s from folders, an LMDB and a zip against "
                    "training at several sizes.")
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
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES),
                        help="data sources to time the loader on (default: all three; the "
                             "LMDB and the zip are made from ROOT's images first)")
    parser.add_argument("--lmdb", default=None,
                        help="an LMDB to time instead of one made from ROOT")
    parser.add_argument("--zip", default=None,
                        help="a dataset_tool.py zip (with its size folders beside it) to time "
                             "instead of one made from ROOT")
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

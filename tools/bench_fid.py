"""Cost of FID features: this project's Jittor Inception against pytorch-fid's on the CPU, side by
side, and the Fréchet distance against pytorch-fid's (time and agreement). Run from the
repository root::

    python3 -m tools.bench_fid --torch_python /tmp/fidenv/bin/python

``--torch_python`` is a Python with PyTorch, torchvision and pytorch-fid (a throwaway
environment, see tools/make_fid_fixtures.py); without it only the Jittor side runs. Each
measurement runs in a process of its own (so each peak memory is its own): ``--images`` random
images of each size in ``--sizes`` go through the network ``--batch`` at a time, after one
batch of warm-up (Jittor compiles its operators then). Both sides use the same seeded weights
(tools/make_fid_fixtures.py; speed does not depend on the values) and the same input pipeline
(/ 255, bilinear to 299 px, x 2 - 1). Prints a markdown table: seconds and peak resident memory
per 1000 images (time scaled from ``--images``; memory as measured).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def images(count, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 3, size, size), dtype=np.uint8)


def seeded_state():
    from tools.make_fid_fixtures import KEYS_FILE, seeded_weights
    with open(KEYS_FILE) as f:
        return seeded_weights([(k, tuple(s)) for k, s in json.load(f)])


def run_jittor(size, count, batch):
    import tempfile
    from runtime.jittor_setup import setup
    setup()   # Jittor's environment, before anything imports Jittor
    from files.checkpoint import write_torch_file
    from metrics import inception
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.pth")
        write_torch_file(seeded_state(), path)
        model = inception.load_weights(path)
    inception.features(model, images(batch, size, 1), batch)     # warm-up: compiles
    pixels = images(count, size)
    start = time.perf_counter()
    inception.features(model, pixels, batch)
    return time.perf_counter() - start


def run_torch(size, count, batch):
    import torch
    import pytorch_fid.inception as pfi
    state = {k: torch.from_numpy(v) for k, v in seeded_state().items()}
    pfi.load_state_dict_from_url = lambda *a, **k: state
    model = pfi.InceptionV3([3]).eval()

    def features(pixels):
        with torch.no_grad():
            for begin in range(0, len(pixels), batch):
                x = torch.from_numpy(pixels[begin:begin + batch].astype(np.float32) / 255)
                model(x)[0].squeeze(3).squeeze(2).numpy()

    features(images(batch, size, 1))
    pixels = images(count, size)
    start = time.perf_counter()
    features(pixels)
    return time.perf_counter() - start


def run_frechet(count):
    """Fréchet distance of two (count, 2048) feature sets: ours and pytorch-fid's."""
    import io
    import contextlib
    import warnings
    from pytorch_fid.fid_score import calculate_frechet_distance
    from metrics import fid
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((2048, 2048)) / np.sqrt(2048)
    a = np.maximum(rng.standard_normal((count, 2048)) @ mix + 0.3, 0).astype(np.float32)
    b = np.maximum(rng.standard_normal((count, 2048)) @ mix + 0.35, 0).astype(np.float32)
    stats = fid.statistics(a) + fid.statistics(b)
    start = time.perf_counter()
    ours = fid.frechet_distance(*stats)
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        theirs = calculate_frechet_distance(*stats)
    return dict(ours=ours.distance, theirs=float(theirs), ours_s=ours_time,
                theirs_s=time.perf_counter() - start)


def worker(args):
    if args.worker == "frechet":
        result = run_frechet(args.images)
    else:
        seconds = (run_jittor if args.worker == "jittor" else run_torch)(args.size, args.images,
                                                                         args.batch)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = dict(seconds=seconds, peak_mb=peak_kb / 1024)
    print("RESULT " + json.dumps(result))


def measure(python, kind, size, count, batch):
    command = [python, "-m", "tools.bench_fid", "--worker", kind, "--size", str(size),
               "--images", str(count), "--batch", str(batch)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{kind} at {size} px failed: {done.stderr.strip()[-500:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 1024])
    parser.add_argument("--images", type=int, default=100,
                        help="images timed per size (the table scales to 1000)")
    parser.add_argument("--batch", type=int, default=50, help="images per forward pass")
    parser.add_argument("--tries", type=int, default=2,
                        help="runs per size and side, alternating the two sides; the fastest "
                             "counts (other processes on a shared machine slow some runs)")
    parser.add_argument("--torch_python", help="a Python with torch, torchvision, pytorch-fid")
    parser.add_argument("--frechet", type=int, nargs="*", default=[1000, 3000],
                        help="feature-set sizes for the Fréchet distance comparison")
    parser.add_argument("--worker", choices=["jittor", "torch", "frechet"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    print(f"{args.images} images per size, batch {args.batch}, "
          f"{os.cpu_count()} CPUs; seconds and peak memory per 1000 images")
    head = "| size | Jittor s / 1000 | Jittor peak MB |"
    if args.torch_python:
        head += " pytorch-fid s / 1000 | pytorch-fid peak MB | Jittor speed-up |"
    print(head)
    print("|" + "---:|" * (head.count("|") - 1))
    for size in args.sizes:
        ours_runs, theirs_runs = [], []
        for _ in range(args.tries):
            ours_runs.append(measure(sys.executable, "jittor", size, args.images, args.batch))
            if args.torch_python:
                theirs_runs.append(measure(args.torch_python, "torch", size, args.images,
                                           args.batch))
        ours = min(ours_runs, key=lambda r: r["seconds"])
        line = (f"| {size} px | {ours['seconds'] * 1000 / args.images:.1f} | "
                f"{ours['peak_mb']:.0f} |")
        if args.torch_python:
            theirs = min(theirs_runs, key=lambda r: r["seconds"])
            line += (f" {theirs['seconds'] * 1000 / args.images:.1f} | {theirs['peak_mb']:.0f} |"
                     f" {theirs['seconds'] / ours['seconds']:.2f}x |")
        print(line, flush=True)
    if args.torch_python and args.frechet:
        print("\n| features | ours | pytorch-fid | relative difference | ours s | pytorch-fid s |")
        print("|---:|---:|---:|---:|---:|---:|")
        for count in args.frechet:
            r = measure(args.torch_python, "frechet", 0, count, 0)
            print(f"| {count} x 2048 | {r['ours']:.6f} | {r['theirs']:.6f} | "
                  f"{abs(r['ours'] - r['theirs']) / abs(r['theirs']):.1e} | {r['ours_s']:.1f} | "
                  f"{r['theirs_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()

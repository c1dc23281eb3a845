"""Benchmark: how fast the generator and a full training iteration run on this machine.

    python -m tools.bench                  # reference width 512: a markdown table (~2.5 min on 2 cores)
    python -m tools.bench --quick          # fewer rows, one timed iteration each
    python -m tools.bench --width 64       # a narrow model (--code_dim follows unless given)
    python -m tools.bench --profile 16     # where one training iteration at 16 px spends its time
    python -m tools.bench --compare_mkl    # oneDNN convolutions (use_mkl=1) against Jittor's (use_mkl=0)
    python -m tools.bench --json before.json       # also keep the results (on the old code) ...
    python -m tools.bench --compare before.json    # ... and, on the new code, a before/after table

Rows (all through the project's own code):
* generator inference: ``StyledGenerator`` forward under ``jt.no_grad()`` at 32 and 128 px,
  batch 16, alpha 1, one latent per image; images/s.
* training: seconds per ``Trainer.train_iteration`` at 8, 16 and 32 px (alpha 1): D step
  (real and fake scores, non-saturating loss, R1 penalty with its double backward, Adam), G step
  (style-mixing latents as drawn, Adam) and the EMA of the generator. The reference's batches
  (256, 128, 64) are capped for a CPU to TRAIN_BATCH; the data loader is replaced by random
  images (``bench_data.py`` measures loading).

Each row's first call compiles the Jittor operators its graph needs that are not yet cached:
"compiled ops" and "compile s" are what Jittor's own compile log reports for that call, "first
call s" its whole time. The row's time is the median of ``--iters`` calls after it. Jittor keeps
compiled operators in ``~/.cache/jittor``, so a second run of this script compiles little.

FLOPs are counted analytically from the layer shapes, convolution and linear layers only
(Cin * Cout * k * k * Hout * Wout multiply-adds, 2 FLOPs each, per image; elementwise work such as
blur, normalisation, activations, Adam and the EMA is left out: < 1 % at width 512). A training
iteration counts 4 generator forwards and 11 discriminator forwards
(``networks.shapes.training_flops``).
Peak FLOP/s is measured: the best of several 4096 x 4096 float32 matrix products (Jittor's
matmul, and on a CPU numpy's BLAS too, whichever is faster); the nominal peak from the CPU's flags and clock is
printed beside it.

``--json PATH`` writes the run (date, machine, measured peak, options, one record per row) as
JSON; ``--compare REF`` prints, after the run, each row beside the same row (label, px, batch) of
REF with the speed-up before/after. REF is checked before anything is timed. Exit codes follow
``cli.py``: 2 for a bad flag (REF missing or a folder, REF of another --width or --code_dim,
--json onto a folder), 1 for a REF that cannot be read or is not a ``--json`` result, or a
--json file that cannot be written.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from runtime.jittor_setup import setup
setup()   # Jittor's environment, before anything imports Jittor
import jittor as jt

from runtime import cli
import model
from runtime.cli import UsageError
from files.atomic import atomic_write, make_folder
from ops import onednn_conv
from training import losses
from training.config import TrainConfig
from training.trainer import Trainer
from networks.shapes import (N_MLP, REFERENCE_WIDTH, conv_flops, generator_flops, step_for_size,
                              training_flops)
from model import StyledGenerator

INFERENCE_SIZES = (32, 128)
INFERENCE_BATCH = 16
TRAIN_SIZES = (8, 16, 32)
TRAIN_BATCH = {8: 32, 16: 16, 32: 8}      # the reference's 256, 128, 64 capped for a CPU
HIGH_RES_BATCH = {256: 4, 512: 1, 1024: 1}  # --high_res: what users of pretrained models draw
QUICK_INFERENCE_SIZES = (32,)
QUICK_TRAIN_SIZES = (8, 16)
PEAK_MATRIX = 4096
PEAK_REPEATS = 5
MKL_PROBE = dict(batch=4, channels=512, size=16, repeats=2)   # one 3x3 conv, forward + backward


# ------------------------------------------------------------------------------------------------
# The machine
# ------------------------------------------------------------------------------------------------

def cpu_description():
    name = platform.processor() or platform.machine()
    flags, mhz = set(), None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    name = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                elif key == "cpu MHz" and mhz is None:
                    mhz = float(value)
    except OSError:
        pass
    return name, flags, mhz


def nominal_cpu_peak():
    """(GFLOP/s, how): cores x float32 FLOP per cycle x clock, assuming two FMA pipes per core
    (2 x 8 lanes x 2 FLOP with AVX2 + FMA, x 2 with AVX-512), at the clock /proc/cpuinfo
    reports (often the base clock: boost clocks can exceed it). None when unknown."""
    _, flags, mhz = cpu_description()
    if mhz is None or "fma" not in flags:
        return None, "unknown (no FMA flag or clock in /proc/cpuinfo)"
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 16
    cores = os.cpu_count()
    gflops = cores * per_cycle * mhz / 1e3
    isa = "AVX-512" if per_cycle == 64 else "AVX2" if per_cycle == 32 else "AVX"
    return gflops, (f"{cores} cores x {per_cycle} FLOP/cycle ({isa} FMA, 2 pipes) x "
                    f"{mhz / 1e3:.2f} GHz")


def best_seconds(function, repeats):
    """The shortest of ``repeats`` timed calls of ``function``, after one untimed call."""
    return min(timed(function, repeats)[2])


def measured_peak(n=PEAK_MATRIX, repeats=PEAK_REPEATS):
    """(GFLOP/s, how): the best of ``repeats`` n x n float32 matrix products: Jittor's matmul
    (oneDNN's sgemm on a CPU, cuBLAS on a GPU) and, on a CPU, numpy's BLAS too, whichever is
    faster. numpy's alone can be far below the machine: the OpenBLAS of numpy's wheels ran
    at 65 GFLOP/s on an AVX-512 machine where oneDNN's sgemm reached 324 (docs/benchmark.md)."""
    a, b = jt.randn(n, n), jt.randn(n, n)
    if jt.flags.use_cuda:
        def jittor_product():
            jt.sync_all(True)
            jt.matmul(a, b).sync()
    else:
        def jittor_product():
            jt.matmul(a, b).sync()
    where = ("the GPU" if jt.flags.use_cuda else
             "oneDNN sgemm" if onednn_conv.jittor_has_onednn() else "CPU")
    candidates = [(best_seconds(jittor_product, repeats), f"Jittor matmul ({where})")]
    if not jt.flags.use_cuda:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, n), dtype=np.float32)
        y = rng.standard_normal((n, n), dtype=np.float32)
        candidates.append((best_seconds(lambda: x @ y, repeats), "numpy matmul (BLAS)"))
    best, source = min(candidates)
    others = "; ".join(f"{name} {2 * n ** 3 / t / 1e9:.0f}" for t, name in candidates
                       if name != source)
    how = f"{source}, float32 {n}x{n}, best of {repeats}" + (f"; {others}" if others else "")
    return 2 * n ** 3 / best / 1e9, how


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


# ------------------------------------------------------------------------------------------------
# Timed work
# ------------------------------------------------------------------------------------------------

COMPILE_LINE = re.compile(r"Compiling Operators\((\d+)/(\d+)\) used: ([0-9.]+)s")


@contextlib.contextmanager
def jittor_compile_log():
    """Collects Jittor's "Compiling Operators(n/n) used: Xs" progress lines, which its C++ core
    writes to file descriptor 2, while passing every other line through. Yields a dict that
    holds, on exit, ``ops`` (operators compiled) and ``seconds`` (compile time Jittor reports)."""
    result = dict(ops=0, seconds=0.0)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield result
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            for done, total, seconds in COMPILE_LINE.findall(text):
                if done == total:
                    result["ops"] += int(total)
                    result["seconds"] += float(seconds)
            rest = COMPILE_LINE.sub("", text).replace("eta:", "").strip(" \r\n\t0123456789.s")
            if rest:
                print(text, file=sys.stderr)


def timed(function, iters):
    """(first call s, {"ops", "seconds"} Jittor compiled in it, [s of each of ``iters`` later
    calls]); ``function`` must synchronise."""
    jt.sync_all(True)
    with jittor_compile_log() as compiled:
        start = time.perf_counter()
        function()
        first = time.perf_counter() - start
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return first, compiled, times


def time_inference(size, batch, width, code_dim, iters):
    step = step_for_size(size)
    generator = StyledGenerator(code_dim, n_mlp=N_MLP, width=width)
    generator.eval()
    latents = jt.randn(batch, code_dim)

    def generate():
        with jt.no_grad():
            generator(latents, step=step, alpha=1).sync()

    return timed(generate, iters)


class RandomImages:
    """Stands in for ``data_stream.ImageStream``: batches of uniform random images in [-1, 1]."""

    def __init__(self, size, batch_size, seed=0):
        self.size, self.batch_size = size, batch_size
        self.epoch, self.position = 0, 0
        self.rng = np.random.default_rng(seed)

    def next(self):
        shape = (self.batch_size, 3, self.size, self.size)
        return self.rng.uniform(-1, 1, shape).astype(np.float32), self.batch_size

    def state(self):
        return dict(epoch=self.epoch, position=self.position)

    def close(self):
        pass


def make_trainer(size, batch, width, code_dim, out):
    """A ``Trainer`` at ``size`` (alpha 1: the initial size of a fresh run, a phase too
    long to ever grow) fed by ``RandomImages``."""
    config = TrainConfig(path=out, init_size=size, max_size=size, phase=10 ** 12, batch=batch,
                         width=width, code_dim=code_dim, n_mlp=N_MLP, seed=0, out=out)
    trainer = Trainer(config)
    trainer.stream = RandomImages(size, batch)
    return trainer


def time_training(size, batch, width, code_dim, iters, out):
    trainer = make_trainer(size, batch, width, code_dim, out)
    return timed(trainer.train_iteration, iters)


def row(what, size, batch, timing, flops, peak):
    first, compiled, times = timing
    median = statistics.median(times)
    rate = flops / median / 1e9
    return dict(what=what, size=size, batch=batch, first=first, median=median,
                compile=compiled["seconds"], compiled_ops=compiled["ops"],
                images=batch / median, gflop=flops / 1e9, gflops=rate, peak=100 * rate / peak)


def print_table(rows):
    print("| measurement | px | batch | s per call (median) | images/s | GFLOP per call "
          "| GFLOP/s | % of peak | first call s | compiled ops | compile s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['what']} | {r['size']} | {r['batch']} | {r['median']:.3f} "
              f"| {r['images']:.2f} | {r['gflop']:.1f} | {r['gflops']:.1f} | {r['peak']:.0f} % "
              f"| {r['first']:.1f} | {r['compiled_ops']} | {r['compile']:.1f} |", flush=True)


def run_benchmark(args):
    width, code_dim = args.width, args.code_dim
    inference_sizes = QUICK_INFERENCE_SIZES if args.quick else INFERENCE_SIZES
    train_sizes = QUICK_TRAIN_SIZES if args.quick else TRAIN_SIZES
    iters = args.iters if args.iters is not None else (1 if args.quick else 3)
    name, _, _ = cpu_description()
    device = "GPU (CUDA)" if jt.flags.use_cuda else f"CPU, {os.cpu_count()} cores"
    print(f"# {device}: {name}; Jittor {jt.__version__}; oneDNN convolutions: "
          f"{'yes' if onednn_conv.jittor_has_onednn() else 'no'}; width {width}, code_dim {code_dim}, "
          f"n_mlp {N_MLP}; median of {iters} calls after the first; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')}", flush=True)
    load_before = load_average()
    peak, peak_how = measured_peak()
    nominal, nominal_how = nominal_cpu_peak()
    print(f"# peak: {peak:.0f} GFLOP/s measured ({peak_how})", flush=True)
    if not jt.flags.use_cuda:
        print("# nominal CPU peak: " + (f"{nominal:.0f} GFLOP/s ({nominal_how})"
                                         if nominal else nominal_how), flush=True)
    rows = []
    inference = [(size, INFERENCE_BATCH) for size in inference_sizes]
    if args.high_res:
        inference += sorted(HIGH_RES_BATCH.items())
    for size, batch in inference:
        timing = time_inference(size, batch, width, code_dim, iters)
        flops = batch * generator_flops(step_for_size(size), width, code_dim)
        rows.append(row("generator inference", size, batch, timing, flops, peak))
        print(f"# done: inference {size} px (load {load_average():.1f})", file=sys.stderr,
              flush=True)
    for size in train_sizes:
        batch = TRAIN_BATCH[size]
        timing = time_training(size, batch, width, code_dim, iters, args.out)
        flops = training_flops(step_for_size(size), batch, width, code_dim)
        rows.append(row("training iteration", size, batch, timing, flops, peak))
        print(f"# done: training {size} px (load {load_average():.1f})", file=sys.stderr,
              flush=True)
    print()
    print_table(rows)
    load_after = load_average()
    print(f"\n# 1-minute load average: {load_before:.1f} before, {load_after:.1f} after "
          f"({os.cpu_count()} cores)")
    options = dict(width=width, code_dim=code_dim, iters=iters, quick=bool(args.quick))
    return benchmark_results(rows, machine_description(), peak, peak_how, options,
                             (load_before, load_after))


# ------------------------------------------------------------------------------------------------
# Results as JSON (--json) and a before/after table (--compare)
# ------------------------------------------------------------------------------------------------

RESULTS_FORMAT = "bench.py results"
RESULTS_VERSION = 1
RECORD_NUMBERS = ("s_per_call", "images_per_s", "gflop_per_call", "gflops", "peak_percent")
MACHINE_KEYS = ("cpu", "cores", "device", "jittor", "onednn", "omp_num_threads")


class ResultsError(ValueError):
    """A --compare file that cannot be read or is not a --json result (exit 1)."""


def machine_description():
    """What the numbers depend on besides the code: CPU model, cores, device, Jittor version,
    oneDNN, and OMP_NUM_THREADS (None when unset)."""
    name, _, _ = cpu_description()
    return dict(cpu=name, cores=os.cpu_count(), device="GPU (CUDA)" if jt.flags.use_cuda else "CPU",
                jittor=jt.__version__, onednn=onednn_conv.jittor_has_onednn(),
                omp_num_threads=os.environ.get("OMP_NUM_THREADS"))


def result_record(r):
    """The JSON record of one table row (a ``row`` dict)."""
    return dict(label=r["what"], px=r["size"], batch=r["batch"], s_per_call=r["median"],
                images_per_s=r["images"], gflop_per_call=r["gflop"], gflops=r["gflops"],
                peak_percent=r["peak"], first_call_s=r["first"], compiled_ops=r["compiled_ops"],
                compile_s=r["compile"])


def benchmark_results(rows, machine, peak, peak_how, options, load, date=None):
    """The dict --json writes: date, machine, measured peak, options, one record per row."""
    date = date or datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    before, after = (None if math.isnan(value) else value for value in load)
    return dict(format=RESULTS_FORMAT, version=RESULTS_VERSION, date=date, machine=machine,
                peak_gflops=peak, peak_how=peak_how, options=options,
                load_average=dict(before=before, after=after),
                rows=[result_record(r) for r in rows])


def row_key(record):
    return record["label"], record["px"], record["batch"]


def write_results(path, results):
    """Write ``results`` to ``path`` as JSON, atomically (WriteError when it cannot)."""
    with atomic_write(path) as temporary:
        with open(temporary, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def results_problem(results):
    """Why ``results`` (parsed JSON) is not something --json wrote, or None."""
    if not isinstance(results, dict):
        return f"a JSON {type(results).__name__}, not an object"
    if results.get("format") != RESULTS_FORMAT or results.get("version") != RESULTS_VERSION:
        return (f"no \"format\": \"{RESULTS_FORMAT}\", \"version\": {RESULTS_VERSION}; this "
                f"bench.py reads only what its own --json writes")
    options = results.get("options")
    if not isinstance(options, dict) or not all(
            isinstance(options.get(key), int) for key in ("width", "code_dim")):
        return "no options with an integer width and code_dim"
    if not is_number(results.get("peak_gflops")):
        return "no number peak_gflops"
    if not isinstance(results.get("machine"), dict):
        return "no machine"
    rows = results.get("rows")
    if not isinstance(rows, list):
        return "no list of rows"
    seen = set()
    for index, record in enumerate(rows):
        if not (isinstance(record, dict) and isinstance(record.get("label"), str)
                and all(isinstance(record.get(key), int) for key in ("px", "batch"))
                and all(is_number(record.get(key)) for key in RECORD_NUMBERS)
                and record["s_per_call"] > 0):
            return (f"row {index} lacks a label, integer px and batch, or the numbers "
                    f"{', '.join(RECORD_NUMBERS)} (s_per_call > 0)")
        if row_key(record) in seen:
            return f"row {index} ({record['label']}, {record['px']} px) appears twice"
        seen.add(row_key(record))
    return None


def read_results(path):
    """The results --json wrote to ``path``; UsageError for a missing file or a folder,
    ResultsError for an unreadable file, one that is not JSON, or not a result."""
    again = f"write it again with: python -m tools.bench --json {path}"
    if not os.path.exists(path):
        raise UsageError(f"--compare {path}: no such file (write one first with: "
                                f"python -m tools.bench --json {path}, on the code to compare against)")
    if os.path.isdir(path):
        raise UsageError(f"--compare {path}: a folder, not a file (give the file that "
                                f"python -m tools.bench --json wrote)")
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except OSError as error:
        raise ResultsError(f"--compare {path}: not readable ({error.strerror or error}); check "
                           f"its permissions, or {again}") from None
    except UnicodeDecodeError:
        raise ResultsError(f"--compare {path}: not JSON (not UTF-8 text); {again}") from None
    except json.JSONDecodeError as error:
        raise ResultsError(f"--compare {path}: not JSON ({error.msg} at line {error.lineno}, "
                           f"column {error.colno}); {again}") from None
    problem = results_problem(results)
    if problem:
        raise ResultsError(f"--compare {path}: not a bench.py --json result ({problem}); {again}")
    return results


def check_reference(reference, path, width, code_dim):
    """UsageError unless ``reference`` was measured at ``width`` and ``code_dim``."""
    ref = reference["options"]
    if (ref["width"], ref["code_dim"]) != (width, code_dim):
        raise UsageError(
            f"--compare {path}: measured at --width {ref['width']} --code_dim {ref['code_dim']}, "
            f"this run is --width {width} --code_dim {code_dim}; run with --width {ref['width']} "
            f"--code_dim {ref['code_dim']}, or compare against a file of this width")


def check_json_path(path):
    """Fail now, not after the benchmark, when --json cannot be written: a folder in the way
    (UsageError) or a parent that cannot be made (WriteError)."""
    if not path:
        raise UsageError("--json needs a file name, e.g. --json before.json")
    if os.path.isdir(path):
        raise UsageError(f"--json {path}: a folder is in the way; give a file name, e.g. "
                                f"{os.path.join(path, 'bench.json')}")
    make_folder(os.path.dirname(os.path.abspath(path)))


def compare_results(before, after):
    """One entry per row of either result, matched by (label, px, batch): before's order, then
    rows only in ``after``. Each has the key, the ``before`` and ``after`` records (None where
    the row is missing) and ``speedup`` = before s / after s (>1: faster now; None if missing)."""
    after_rows = {row_key(r): r for r in after["rows"]}
    before_keys = {row_key(r) for r in before["rows"]}
    pairs = [(r, after_rows.get(row_key(r))) for r in before["rows"]]
    pairs += [(None, r) for r in after["rows"] if row_key(r) not in before_keys]
    comparison = []
    for old, new in pairs:
        label, px, batch = row_key(old or new)
        speedup = old["s_per_call"] / new["s_per_call"] if old and new else None
        comparison.append(dict(label=label, px=px, batch=batch, before=old, after=new,
                               speedup=speedup))
    return comparison


def seconds_text(seconds):
    return f"{seconds:.4g}"


def comparison_table(comparison):
    """The markdown lines of the before/after table; a row missing on one side says so."""
    lines = ["| measurement | px | batch | before s/call | after s/call "
             "| speed-up before/after (>1: faster now) | before GFLOP/s | after GFLOP/s "
             "| before % of peak | after % of peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in comparison:
        cells = [c["label"], str(c["px"]), str(c["batch"])]
        old, new = c["before"], c["after"]
        cells.append(seconds_text(old["s_per_call"]) if old else "missing in REF")
        cells.append(seconds_text(new["s_per_call"]) if new else "missing in this run")
        cells.append(f"{c['speedup']:.2f}" if c["speedup"] is not None else "-")
        cells += [f"{r['gflops']:.1f}" if r else "-" for r in (old, new)]
        cells += [f"{r['peak_percent']:.0f} %" if r else "-" for r in (old, new)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def setting_differences(before, after):
    """The machine and option settings in which two results differ, as "key A -> B" texts."""
    differences = []
    for group, keys in (("machine", MACHINE_KEYS), ("options", ("iters", "quick"))):
        for key in keys:
            old, new = before[group].get(key), after[group].get(key)
            if old != new:
                differences.append(f"{key} {old} -> {new}")
    return differences


def print_comparison(reference, path, results):
    """The before (``reference``, read from ``path``) / after (``results``) table."""
    print(f"\n# before: {path} ({reference.get('date', 'no date')}, peak "
          f"{reference['peak_gflops']:.0f} GFLOP/s); after: this run ({results['date']}, peak "
          f"{results['peak_gflops']:.0f} GFLOP/s)")
    differences = setting_differences(reference, results)
    if differences:
        print(f"# note: the runs differ in {'; '.join(differences)}: the speed-ups mix the code "
              f"with these")
    print()
    for line in comparison_table(compare_results(reference, results)):
        print(line)


# ------------------------------------------------------------------------------------------------
# Where the time goes
# ------------------------------------------------------------------------------------------------

CONV_OPS = ("onednn_conv", "mkl_conv_backward_w", "mkl_conv_backward_x", "mkl_conv",
            "cudnn_conv_backward_w",
            "cudnn_conv_backward_x", "cudnn_conv")
MATMUL_OPS = ("mkl_matmul", "cublas_matmul", "cublas_batched_matmul")


OTHER_GROUP = "elementwise, reductions, reindex (fused)"


def op_group(key):
    """Group of a profiler record: the convolution or matmul kind, else the fused rest."""
    for name in CONV_OPS + MATMUL_OPS:
        if key.startswith(name + "\u00ab") or key == name:
            return name
    return OTHER_GROUP


def profile_groups(function):
    """Seconds per op group of one call of ``function`` under Jittor's profiler."""
    with jt.profile_scope() as report:
        function()
    header = report[0]
    name, total = header.index("Name"), header.index("TotalTime")
    groups = {}
    for record in report[1:]:
        group = op_group(record[name])
        groups[group] = groups.get(group, 0.0) + float(record[total]) / 1e9
    return groups


def identity(input):
    return input


def no_r1(output, inputs):
    return jt.zeros(output.shape[0])


ABLATIONS = (
    ("blur (forward, backward, R1 double backward)", model, "blur", identity),
    ("instance norm (in AdaIN)", model, "instance_norm", identity),
    ("R1 penalty (input gradient + double backward)", losses, "squared_grad_norm", no_r1),
)


def run_profile(args):
    """Jittor's profiler on one training iteration, then the time each part costs, measured by
    replacing it (blur, instance norm: identity; R1: a zero penalty) and timing again."""
    size = args.profile
    batch = TRAIN_BATCH.get(size, min(TRAIN_BATCH.values()))
    iters = args.iters if args.iters is not None else 2
    trainer = make_trainer(size, batch, args.width, args.code_dim, args.out)
    first, _, times = timed(trainer.train_iteration, iters)
    base = statistics.median(times)
    groups = profile_groups(trainer.train_iteration)
    profiled = sum(groups.values())
    print(f"# training iteration at {size} px, batch {batch}, width {args.width}: "
          f"{base:.3f} s (median of {iters}; first call {first:.1f} s); profiled iteration "
          f"{profiled:.3f} s of op time; load {load_average():.1f}")
    print("\n| op group (Jittor profiler) | s | share |\n|---|---:|---:|")
    conv = sum(v for k, v in groups.items() if k in CONV_OPS)
    for key, value in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {key} | {value:.3f} | {100 * value / profiled:.1f} % |")
    print(f"| all convolutions (the blur's depthwise ones included) | {conv:.3f} "
          f"| {100 * conv / profiled:.1f} % |")
    if args.no_ablation:
        return groups
    print("\n| part (with it - without it, alternating iterations) | s per iteration | share |"
          "\n|---|---:|---:|")
    for label, module, attribute, replacement in ABLATIONS:
        original = getattr(module, attribute)
        try:
            setattr(module, attribute, replacement)
            trainer.train_iteration()                   # compiles the graph without the part
            with_part, without = [], []
            for _ in range(iters):
                for use, times in ((original, with_part), (replacement, without)):
                    setattr(module, attribute, use)
                    start = time.perf_counter()
                    trainer.train_iteration()
                    times.append(time.perf_counter() - start)
        finally:
            setattr(module, attribute, original)
        cost = statistics.median(with_part) - statistics.median(without)
        share = 100 * cost / statistics.median(with_part)
        print(f"| {label} | {cost:.3f} | {share:.1f} % |", flush=True)
    return groups


# ------------------------------------------------------------------------------------------------
# oneDNN against Jittor's own CPU convolution
# ------------------------------------------------------------------------------------------------

def mkl_probe():
    """Seconds of one 3x3 conv (forward + input and weight gradients), printed for the parent."""
    n, c, s = MKL_PROBE["batch"], MKL_PROBE["channels"], MKL_PROBE["size"]
    x, w = jt.randn(n, c, s, s), jt.randn(c, c, 3, 3)

    def step():
        y = jt.nn.conv2d(x, w, padding=1)
        jt.sync(jt.grad((y * y).sum(), [x, w]))

    first, _, times = timed(step, MKL_PROBE["repeats"])
    print(f"PROBE {first} {min(times)} {int(onednn_conv.jittor_has_onednn())}")


def compare_mkl():
    n, c, s = MKL_PROBE["batch"], MKL_PROBE["channels"], MKL_PROBE["size"]
    flops = 3 * n * conv_flops(c, c, 3, s)
    print(f"# one 3x3 conv {c}->{c} at {s}x{s}, batch {n}, forward + backward "
          f"({flops / 1e9:.1f} GFLOP); best of {MKL_PROBE['repeats']} after the first call")
    print("| use_mkl | convolution | first call s | s | GFLOP/s |\n|---|---|---:|---:|---:|")
    for use_mkl in ("1", "0"):
        env = dict(os.environ, use_mkl=use_mkl)
        result = subprocess.run([sys.executable, os.path.abspath(__file__), "--mkl_probe"],
                                env=env, capture_output=True, text=True, check=True)
        line = [l for l in result.stdout.splitlines() if l.startswith("PROBE ")][-1]
        first, best, used = line.split()[1:]
        kind = "oneDNN (mkl_conv)" if used == "1" else "Jittor reindex + reduce"
        print(f"| {use_mkl} | {kind} | {float(first):.1f} | {float(best):.3f} "
              f"| {flops / float(best) / 1e9:.1f} |", flush=True)


CONV_LAYERS = (  # (batch, in, out, map, kernel, padding): the reference network's convolutions
    (32, 512, 512, 4, 3, 1),   # 4 px blocks
    (32, 512, 512, 8, 3, 1),   # 8 px blocks
    (32, 512, 512, 4, 4, 0),   # the discriminator's last 4x4 kernel on 4x4 features
    (16, 512, 512, 16, 3, 1),  # 16 px blocks
    (16, 512, 512, 32, 3, 1),  # 32 px blocks
)


def time_conv_layers(repeats=5):
    """Each CONV_LAYERS convolution with Jittor's nn.conv2d and with onednn_conv.conv2d: the
    forward alone, and the forward with both gradients; best of ``repeats`` after one call."""
    rng = np.random.default_rng(0)
    print(f"# best of {repeats} after the first call; onednn_conv available: "
          f"{onednn_conv.available()}")
    print("| batch | in -> out | map | kernel | Jittor forward ms | Jittor fwd+bwd ms | own forward "
          "ms | own fwd+bwd ms | own fwd+bwd GFLOP/s |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, c_in, c_out, size, kernel, padding in CONV_LAYERS:
        x = jt.array(rng.standard_normal((n, c_in, size, size), dtype=np.float32))
        w = jt.array(rng.standard_normal((c_out, c_in, kernel, kernel), dtype=np.float32))
        out_size = size + 2 * padding - kernel + 1
        seconds = []
        for conv in (jt.nn.conv2d, onednn_conv.conv2d):
            def forward():
                conv(x, w, padding=padding).sync()

            def forward_backward():
                y = conv(x, w, padding=padding)
                jt.sync(jt.grad((y * y).sum(), [x, w]))
            seconds += [best_seconds(forward, repeats), best_seconds(forward_backward, repeats)]
        flops = 3 * n * conv_flops(c_in, c_out, kernel, out_size)
        print(f"| {n} | {c_in} -> {c_out} | {size} | {kernel} | "
              + " | ".join(f"{1e3 * t:.2f}" for t in seconds)
              + f" | {flops / seconds[3] / 1e9:.0f} |", flush=True)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Generator images/s and training-iteration seconds on this machine, with "
                    "FLOPs and the share of peak FLOP/s; or a profile of one iteration.")
    parser.add_argument("--width", type=int, default=REFERENCE_WIDTH,
                        help="channels of the 4-32 px blocks (512: the reference network)")
    parser.add_argument("--code_dim", type=int, default=None,
                        help="latent and style size (default: 512, or the width when narrower)")
    parser.add_argument("--iters", type=int, default=None,
                        help="timed calls per row after the first (default 3; 1 with --quick)")
    parser.add_argument("--high_res", "--high-res", action="store_true",
                        help="also generator inference at " + ", ".join(
                            f"{size} px (batch {batch})" for size, batch in
                            sorted(HIGH_RES_BATCH.items())) + " (about a minute more)")
    parser.add_argument("--quick", action="store_true",
                        help=f"only inference at {QUICK_INFERENCE_SIZES} px and training at "
                             f"{QUICK_TRAIN_SIZES} px, one timed call each")
    parser.add_argument("--profile", type=int, metavar="SIZE", choices=TRAIN_SIZES,
                        help="profile one training iteration at SIZE px instead")
    parser.add_argument("--no_ablation", "--no-ablation", action="store_true",
                        help="with --profile: only Jittor's profiler, no timing without parts")
    parser.add_argument("--compare_mkl", "--compare-mkl", action="store_true",
                        help="time one convolution with use_mkl=1 and use_mkl=0 instead")
    parser.add_argument("--conv_layers", "--conv-layers", action="store_true",
                        help="time the reference network's convolution shapes with Jittor's "
                             "nn.conv2d and with the project's oneDNN operator instead")
    parser.add_argument("--mkl_probe", "--mkl-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write this run's results to PATH as JSON (date, machine, "
                             "measured peak, options, one record per row), for a later "
                             "--compare PATH")
    parser.add_argument("--compare", metavar="REF", default=None,
                        help="after the run, a second table: each row beside the same row "
                             "(measurement, px, batch) of REF, a file --json wrote (e.g. on the "
                             "old code): s per call before and after, the speed-up before/after "
                             "(>1: faster now), GFLOP/s and %% of peak of both; rows in only one "
                             "of them are marked missing. REF is checked before anything is "
                             "timed and must have this run's --width and --code_dim")
    parser.add_argument("--out", default=None,
                        help="scratch folder for the trainer (default: a temporary folder; "
                             "nothing is written there)")
    args = parser.parse_args(argv)
    if args.width < 1 or (args.iters is not None and args.iters < 1):
        parser.error("--width and --iters must be positive")
    if (args.json, args.compare) != (None, None) and (args.profile or args.compare_mkl
                                                       or args.conv_layers):
        parser.error("--json and --compare go with the table, not with --profile, "
                     "--compare_mkl or --conv_layers")
    if args.code_dim is None:
        args.code_dim = min(512, args.width)
    return args


def main(args):
    if args.mkl_probe:
        return mkl_probe()
    if args.compare_mkl:
        return compare_mkl()
    if args.conv_layers:
        return time_conv_layers()
    reference = None
    if args.compare is not None:        # a bad REF or --json path fails before anything is timed
        reference = read_results(args.compare)
        check_reference(reference, args.compare, args.width, args.code_dim)
    if args.json is not None:
        check_json_path(args.json)
    with tempfile.TemporaryDirectory() as out:
        args.out = args.out or out
        if args.profile:
            return run_profile(args)
        results = run_benchmark(args)
    if args.json is not None:
        write_results(args.json, results)
        print(f"\n# results written to {args.json}", flush=True)
    if reference is not None:
        print_comparison(reference, args.compare, results)
    return results


def command_line(argv=None):
    """``main(parse_args(argv))`` with cli.py's exit codes: 2 for a bad flag (a missing REF
    included), 1 for an unreadable REF or an unwritable --json file, 130 / 143 when stopped."""
    cli.run(argparse.ArgumentParser(prog="bench.py"), lambda: main(parse_args(argv)),
            failures=(ResultsError,))


if __name__ == "__main__":
    command_line()

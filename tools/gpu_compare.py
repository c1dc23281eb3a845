"""This port beside the PyTorch original on one GPU: parity (the same weights, generator and
discriminator outputs and R1 gradients at 8 and 128 px) and speed (a training iteration at
128 px, batch 32, and generation at 256 and 1024 px, batch 16; width 512). Run by
``tools/gpu_check.sh``; each framework runs in its own process and they meet through files in
FOLDER:

    python -m tools.gpu_compare parity-torch FOLDER    # needs tools/torch_model.py and PyTorch
    python -m tools.gpu_compare parity-jittor FOLDER   # FOLDER/parity.md; exit 1 above 1e-4
    python -m tools.gpu_compare speed-torch FOLDER     # FOLDER/speed_torch.json
    python -m tools.gpu_compare speed-jittor FOLDER    # FOLDER/speed_jittor.json
    python -m tools.gpu_compare speed-table FOLDER     # FOLDER/speed.md from the two

Parity runs in float32 without TF32 on both sides: PyTorch with
``torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False``; Jittor with
``use_tensorcore=0`` (cuBLAS in CUBLAS_COMPUTE_32F, no tensor-op math type on its cuDNN
convolutions) and ``NVIDIA_TF32_OVERRIDE=0``, since cuDNN's default math type allows TF32 on
Ampere and later. Each output must be within 1e-4 of its largest value. The R1 gradient with
respect to the image is the one exception allowed, and only where the difference is sparse: it
is piecewise linear in the LeakyReLU slopes, and at 128 px, width 512, a few of the millions of
LeakyReLU inputs lie within float32 rounding of 0, so that two float32 computations (PyTorch's
own float32 against its float64, on the CPU too) take different slopes there and differ by up to
3e-2 of the largest value around those units, while agreeing within 1e-6 elsewhere. So an R1
gradient above 1e-4 still passes when at least 90 % of its elements are within 1e-5 of the
largest value (a wrong operator moves nearly all of them); parity.md gives PyTorch's float32
against float64 beside it. Speed runs each framework as it comes (recorded in the JSON files).

``tools/torch_model.py`` is the original's model.py (rosinality/style-based-gan-pytorch at
d4c04384720aab6c6dc1e7225f0b0d68db8084cc), which this project does not ship
(``tools/gpu_wheels.sh`` copies it there).
"""
import argparse
import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from networks.shapes import N_MLP, step_for_size  # noqa: E402  (Jittor-free)

LIMIT = 1e-4
BULK_LIMIT, BULK_SHARE = 1e-5, 0.9   # the R1 gradient's sparse-difference allowance (above)
WIDTH = 512
CODE_DIM = 512
PARITY_BATCH = 2
# (step, alpha): 8 px without fade-in; 128 px, where both networks use the fused up- and
# down-sampling, fading in (both branches of the generator's output and the discriminator's input)
PARITY_CASES = ((1, -1), (5, 0.5))
# (what, size, batch): the original's batch at 128 px (train.py's schedule), and generation
SPEED_ROWS = (("train", 128, 32), ("generate", 256, 16), ("generate", 1024, 16))
WARMUP = 2     # untimed calls first: the first compiles (Jittor) or picks kernels (both)
ITERS = 5


def gpu_memory_used_mib():
    """GPU memory in use (nvidia-smi), MiB; None when it cannot be read."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20).stdout
        return int(out.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def inputs(step, seed):
    rng = np.random.default_rng(seed)
    size = 4 * 2 ** step
    return dict(z=rng.standard_normal((PARITY_BATCH, CODE_DIM)).astype(np.float32),
                noise=[rng.standard_normal((PARITY_BATCH, 1, 4 * 2 ** i, 4 * 2 ** i))
                       .astype(np.float32) for i in range(step + 1)],
                real=rng.uniform(-1, 1, (PARITY_BATCH, 3, size, size)).astype(np.float32))


def synchronized_times(function, synchronize, warmup=WARMUP, iters=ITERS):
    """(seconds of the first call, [seconds of each of ``iters`` calls after ``warmup``])."""
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        function()
    synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return first, times


def write_json(folder, name, data):
    temporary = os.path.join(folder, name + ".tmp")
    with open(temporary, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(temporary, os.path.join(folder, name))


def measure_rows(folder, name, header, make_function, synchronize, memory=None):
    """Times each of SPEED_ROWS (``make_function(what, size, batch)`` gives the call), writing
    FOLDER/NAME after each, so that a step stopped at its limit still leaves the rows it timed;
    a row that fails is recorded with its error and the next one runs."""
    rows = []
    for what, size, batch in SPEED_ROWS:
        row = dict(what=what, size=size, batch=batch)
        try:
            function = make_function(what, size, batch)
            first, times = synchronized_times(function, synchronize)
            row.update(first=first, median=float(np.median(times)), times=times,
                       used_mib=gpu_memory_used_mib())
            if memory:
                row.update(memory())
            print(f"gpu_compare: {name} {what} {size} px batch {batch}: median "
                  f"{row['median']:.4f} s, first call {first:.1f} s", flush=True)
        except Exception as error:   # noqa: BLE001  (recorded; the next row still runs)
            traceback.print_exc()
            row["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        function = None
        rows.append(row)
        write_json(folder, name, dict(header, rows=rows))
    return rows


# ---- PyTorch, the original

def load_original():
    if not os.path.isfile(os.path.join(HERE, "torch_model.py")):
        sys.exit("gpu_compare: no tools/torch_model.py: bash tools/gpu_wheels.sh copies the "
                 "original's model.py there")
    from tools import torch_bench
    return torch_bench, torch_bench.load_original(HERE)


def parity_torch(folder):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False   # float32 throughout, as Jittor computes
    torch.backends.cudnn.allow_tf32 = False
    torch_bench, tm = load_original()
    torch.manual_seed(0)
    generator = torch_bench.build_generator(tm, WIDTH, CODE_DIM).cuda()
    discriminator = torch_bench.build_discriminator(tm, WIDTH, CODE_DIM).cuda()
    arrays = {"from_rgb_activate": np.array(torch_bench.has_from_rgb_activate(tm))}
    arrays.update({f"g/{k}": v.detach().cpu().numpy()
                   for k, v in generator.state_dict().items()})
    arrays.update({f"d/{k}": v.detach().cpu().numpy()
                   for k, v in discriminator.state_dict().items()})
    # float32 (what Jittor is compared with), then float64: PyTorch's own float32 error
    for precision, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        generator.to(dtype)
        discriminator.to(dtype)
        for index, (step, alpha) in enumerate(PARITY_CASES):
            given = inputs(step, index)
            noise = [torch.from_numpy(n).cuda().to(dtype) for n in given["noise"]]
            image = generator(torch.from_numpy(given["z"]).cuda().to(dtype), noise=noise,
                              step=step, alpha=alpha)
            real = torch.from_numpy(given["real"]).cuda().to(dtype).requires_grad_(True)
            scores = discriminator(real, step=step, alpha=alpha)
            grad, = torch.autograd.grad(scores.sum(), real)
            arrays[f"{precision}/{index}/image"] = image.detach().cpu().numpy()
            arrays[f"{precision}/{index}/scores"] = scores.detach().cpu().numpy()
            arrays[f"{precision}/{index}/r1_grad"] = grad.cpu().numpy()
    arrays["torch_version"] = np.array(f"PyTorch {torch.__version__}, "
                                       f"cuDNN {torch.backends.cudnn.version()}")
    np.savez(os.path.join(folder, "torch_parity.npz"), **arrays)
    print(f"gpu_compare: PyTorch {torch.__version__} on {torch.cuda.get_device_name()}: "
          f"{len(PARITY_CASES)} cases written, TF32 off", flush=True)


def speed_torch(folder):
    import torch
    torch_bench, tm = load_original()
    torch.set_default_device("cuda")   # the original's code makes its tensors on the GPU
    header = dict(framework=f"PyTorch {torch.__version__}", device=torch.cuda.get_device_name(),
                  settings=f"cuDNN {torch.backends.cudnn.version()}, matmul allow_tf32 "
                           f"{torch.backends.cuda.matmul.allow_tf32}, cudnn allow_tf32 "
                           f"{torch.backends.cudnn.allow_tf32}, cudnn.benchmark "
                           f"{torch.backends.cudnn.benchmark}")
    held = {}

    def make_function(what, size, batch):
        held.clear()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch_bench.seed_everything()
        if what == "train":
            return torch_bench.make_training_iteration(tm, size, batch, WIDTH, CODE_DIM)
        if "generator" not in held:
            held["generator"] = torch_bench.build_generator(tm, WIDTH, CODE_DIM).eval()
        generator, latents = held["generator"], torch.randn(batch, CODE_DIM)

        def generate():
            with torch.no_grad():
                generator(latents, step=step_for_size(size), alpha=1)
        return generate

    measure_rows(folder, "speed_torch.json", header, make_function, torch.cuda.synchronize,
                 lambda: dict(peak_mib=torch.cuda.max_memory_allocated() / 2 ** 20))


# ---- Jittor, this port

def parity_jittor(folder):
    os.environ["NVIDIA_TF32_OVERRIDE"] = "0"   # read when cuBLAS and cuDNN load, in the import
    from runtime.jittor_setup import setup
    setup()   # Jittor's environment, before anything imports Jittor
    import jittor as jt
    from model import Discriminator, StyledGenerator
    if not jt.flags.use_cuda:
        sys.exit("gpu_compare: Jittor is not on CUDA here")
    jt.flags.use_tensorcore = 0
    arrays = dict(np.load(os.path.join(folder, "torch_parity.npz")))
    generator = StyledGenerator(CODE_DIM, n_mlp=N_MLP, width=WIDTH)
    generator.load_state_dict({k[2:]: v for k, v in arrays.items() if k.startswith("g/")})
    discriminator = Discriminator(from_rgb_activate=bool(arrays["from_rgb_activate"]),
                                  width=WIDTH)
    discriminator.load_state_dict({k[2:]: v for k, v in arrays.items() if k.startswith("d/")})
    generator.eval()
    discriminator.eval()
    lines, failed = [], []
    for index, (step, alpha) in enumerate(PARITY_CASES):
        given = inputs(step, index)
        image = generator(jt.array(given["z"]), noise=[jt.array(n) for n in given["noise"]],
                          step=step, alpha=alpha)
        real = jt.array(given["real"])
        scores = discriminator(real, step=step, alpha=alpha)
        grad = jt.grad(scores.sum(), real)
        for name, ours in (("image", image), ("scores", scores), ("r1_grad", grad)):
            row = compare(ours.numpy(), arrays[f"float32/{index}/{name}"],
                          arrays[f"float64/{index}/{name}"], sparse_allowed=name == "r1_grad")
            if row["verdict"] == "ABOVE":
                failed.append(f"{4 * 2 ** step} px {name}")
            lines.append(f"| {4 * 2 ** step} px | {alpha} | {name} | {row['max']:.2e} | "
                         f"{row['within']:.1%} | {row['torch_own']:.2e} | {row['max64']:.2e} | "
                         f"{row['verdict']} |")
    settings = (f"{arrays['torch_version']} with matmul and cuDNN allow_tf32 False; Jittor "
                f"{jt.__version__} with use_tensorcore={jt.flags.use_tensorcore}, "
                f"NVIDIA_TF32_OVERRIDE=0, cuDNN "
                f"{'loaded' if jt.compile_extern.cudnn is not None else 'not loaded'}")
    table = [f"Width {WIDTH}, batch {PARITY_BATCH}, the original's weights in both; {settings}.",
             "Differences are max abs / max abs of the reference; required: within 1e-4, or for "
             "the R1 gradient 90 % of its elements within 1e-5 (tools/gpu_compare.py says why).",
             "", "| size | alpha | output | Jittor vs PyTorch float32 | elements within 1e-5 | "
             "PyTorch float32 vs float64 | Jittor vs PyTorch float64 | verdict |",
             "|---:|---:|---|---:|---:|---:|---:|---|"] + lines
    with open(os.path.join(folder, "parity.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    print("\n".join(table), flush=True)
    if failed:
        sys.exit(f"gpu_compare: parity above {LIMIT}: {', '.join(failed)}")


def compare(ours, reference, exact, sparse_allowed):
    """Jittor's output against PyTorch's float32 one (and its float64 one, for scale): the
    largest difference and the share of elements within BULK_LIMIT, each relative to the
    largest value of the reference, and the verdict (module docstring)."""
    ours, reference, exact = (np.asarray(a, np.float64) for a in (ours, reference, exact))
    scale, scale64 = np.abs(reference).max(), np.abs(exact).max()
    difference = np.abs(ours - reference) / scale
    row = dict(max=float(difference.max()), within=float(np.mean(difference <= BULK_LIMIT)),
               torch_own=float(np.abs(reference - exact).max() / scale64),
               max64=float(np.abs(ours - exact).max() / scale64))
    if row["max"] <= LIMIT:
        row["verdict"] = "ok"
    elif sparse_allowed and row["within"] >= BULK_SHARE:
        row["verdict"] = "ok (sparse: LeakyReLU slopes at float32 rounding of 0)"
    else:
        row["verdict"] = "ABOVE"
    return row


def speed_jittor(folder):
    import tempfile
    from runtime.jittor_setup import setup
    setup()   # Jittor's environment, before anything imports Jittor
    import jittor as jt
    from model import StyledGenerator
    from tools import bench
    if not jt.flags.use_cuda:
        sys.exit("gpu_compare: Jittor is not on CUDA here")
    header = dict(framework=f"Jittor {jt.__version__}", device="CUDA",
                  settings=f"cuDNN {'loaded' if jt.compile_extern.cudnn is not None else 'not loaded'}"
                           f", use_tensorcore {jt.flags.use_tensorcore}, conv_opt "
                           f"{os.environ.get('conv_opt', '-')}, NVIDIA_TF32_OVERRIDE "
                           f"{os.environ.get('NVIDIA_TF32_OVERRIDE', '-')}, "
                           f"use_parallel_op_compiler {jt.flags.use_parallel_op_compiler}")
    held = {}

    def make_function(what, size, batch):
        held.clear()
        jt.gc()
        if what == "train":
            trainer = bench.make_trainer(size, batch, WIDTH, CODE_DIM, out)
            held["trainer"] = trainer
            return trainer.train_iteration
        generator = StyledGenerator(CODE_DIM, n_mlp=N_MLP, width=WIDTH)
        generator.eval()
        latents = jt.randn(batch, CODE_DIM)
        held["generator"] = generator

        def generate():
            with jt.no_grad():
                generator(latents, step=step_for_size(size), alpha=1).sync()
        return generate

    with tempfile.TemporaryDirectory() as out:
        measure_rows(folder, "speed_jittor.json", header, make_function,
                     lambda: jt.sync_all(True))


def speed_table(folder):
    loaded, headers = {}, {}
    for framework in ("torch", "jittor"):
        path = os.path.join(folder, f"speed_{framework}.json")
        if os.path.isfile(path):
            with open(path) as f:
                data = json.load(f)
            headers[framework] = data
            loaded[framework] = {(r["what"], r["size"]): r for r in data["rows"]}
    lines = [f"- {headers[k]['framework']} on {headers[k]['device']}: {headers[k]['settings']}"
             for k in ("torch", "jittor") if k in headers]
    lines += ["", f"Width {WIDTH}; seconds per call, the median of {ITERS} after {WARMUP} "
              f"untimed calls; Jittor / PyTorch above 1: Jittor slower.", "",
              "| row | batch | PyTorch s | Jittor s | Jittor / PyTorch | first call s PyTorch; "
              "Jittor | GPU MiB PyTorch (peak alloc; in use) | GPU MiB Jittor (in use) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(row, key, digits=4):
        if row is None:
            return "-"
        if "error" in row:
            return "failed"
        value = row.get(key)
        return "-" if value is None else f"{value:.{digits}f}"

    errors = []
    for what, size, batch in SPEED_ROWS:
        t = loaded.get("torch", {}).get((what, size))
        j = loaded.get("jittor", {}).get((what, size))
        for name, row in (("PyTorch", t), ("Jittor", j)):
            if row and "error" in row:
                errors.append(f"- {name} {what} {size} px: {row['error']}")
        ratio = (f"{j['median'] / t['median']:.2f}" if t and j and "median" in t
                 and "median" in j else "-")
        lines.append(f"| {what} {size} px | {batch} | {cell(t, 'median')} | "
                     f"{cell(j, 'median')} | {ratio} | {cell(t, 'first', 1)}; "
                     f"{cell(j, 'first', 1)} | {cell(t, 'peak_mib', 0)}; "
                     f"{cell(t, 'used_mib', 0)} | {cell(j, 'used_mib', 0)} |")
    text = "\n".join(lines + ([""] + errors if errors else [])) + "\n"
    with open(os.path.join(folder, "speed.md"), "w") as f:
        f.write(text)
    print(text, flush=True)


MODES = {"parity-torch": parity_torch, "parity-jittor": parity_jittor,
         "speed-torch": speed_torch, "speed-jittor": speed_jittor, "speed-table": speed_table}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpu_compare.py", description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=sorted(MODES), help="what to run")
    parser.add_argument("folder", help="where the two frameworks' files meet")
    args = parser.parse_args(argv)
    os.makedirs(args.folder, exist_ok=True)
    MODES[args.mode](args.folder)


if __name__ == "__main__":
    main()

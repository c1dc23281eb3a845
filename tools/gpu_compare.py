"""This port beside the PyTorch original on one GPU: parity (same weights, generator and
discriminator, forward passes and R1 gradients) and speed (training iterations at 32, 128 and
256 px and generation at 1024 px, width 512). Run by ``tools/gpu_check.sh``; each framework
runs in its own process and they meet through files in FOLDER:

    python -m tools.gpu_compare parity-torch FOLDER    # needs tools/torch_model.py and PyTorch
    python -m tools.gpu_compare parity-jittor FOLDER   # exit 1 when a case is above 1e-4
    python -m tools.gpu_compare speed-torch FOLDER
    python -m tools.gpu_compare speed-jittor FOLDER
    python -m tools.gpu_compare speed-table FOLDER     # FOLDER/speed.md

``tools/torch_model.py`` is the original's model.py (rosinality/style-based-gan-pytorch at
d4c04384720aab6c6dc1e7225f0b0d68db8084cc), which this project does not ship.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ops.architecture import step_for_size  # noqa: E402  (Jittor-free)

LIMIT = 1e-4
CODE_DIM = 512
PARITY_BATCH = 2
# (step, alpha): 8 px without fade-in, 32 px fading in, 128 px, 256 px fading in
PARITY_CASES = ((1, -1), (3, 0.5), (5, -1), (6, 0.3))
# the PyTorch original's batch for each size (train.py's default schedule)
TRAIN_BATCH = {32: 64, 128: 32, 256: 32}
GENERATE_SIZE, GENERATE_BATCH = 1024, 16
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


# ---- PyTorch, the original

def load_original():
    if not os.path.isfile(os.path.join(HERE, "torch_model.py")):
        sys.exit("gpu_compare: no tools/torch_model.py: save the original's model.py "
                 "(rosinality/style-based-gan-pytorch at d4c0438) there first")
    from tools import torch_bench
    return torch_bench, torch_bench.load_original(HERE)


def parity_torch(folder):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False   # float32 throughout, as Jittor computes
    torch.backends.cudnn.allow_tf32 = False
    torch_bench, tm = load_original()
    torch.manual_seed(0)
    generator = torch_bench.build_generator(tm, 512, CODE_DIM).cuda()
    discriminator = torch_bench.build_discriminator(tm, 512, CODE_DIM).cuda()
    arrays = {"from_rgb_activate": np.array(torch_bench.has_from_rgb_activate(tm))}
    arrays.update({f"g/{k}": v.detach().cpu().numpy()
                   for k, v in generator.state_dict().items()})
    arrays.update({f"d/{k}": v.detach().cpu().numpy()
                   for k, v in discriminator.state_dict().items()})
    for index, (step, alpha) in enumerate(PARITY_CASES):
        given = inputs(step, index)
        noise = [torch.from_numpy(n).cuda() for n in given["noise"]]
        image = generator(torch.from_numpy(given["z"]).cuda(), noise=noise, step=step, alpha=alpha)
        real = torch.from_numpy(given["real"]).cuda().requires_grad_(True)
        scores = discriminator(real, step=step, alpha=alpha)
        grad, = torch.autograd.grad(scores.sum(), real)
        arrays[f"out/{index}/image"] = image.detach().cpu().numpy()
        arrays[f"out/{index}/scores"] = scores.detach().cpu().numpy()
        arrays[f"out/{index}/r1_grad"] = grad.cpu().numpy()
    np.savez(os.path.join(folder, "torch_parity.npz"), **arrays)
    print(f"gpu_compare: PyTorch {torch.__version__} on {torch.cuda.get_device_name()}: "
          f"{len(PARITY_CASES)} cases written")


def synchronized_times(function, synchronize, iters):
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    first = time.perf_counter() - start
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return first, times


def speed_torch(folder):
    import torch
    torch_bench, tm = load_original()
    torch.set_default_device("cuda")   # the original's code makes its tensors on the GPU
    rows = []

    def measure(what, size, batch, function):
        torch.cuda.reset_peak_memory_stats()
        first, times = synchronized_times(function, torch.cuda.synchronize, ITERS)
        rows.append(dict(what=what, size=size, batch=batch, first=first, median=float(
            np.median(times)), peak_mib=torch.cuda.max_memory_allocated() / 2 ** 20,
            used_mib=gpu_memory_used_mib()))
        print(f"gpu_compare: torch {what} {size} px: {rows[-1]['median']:.4f} s", flush=True)

    torch_bench.seed_everything()
    generator = torch_bench.build_generator(tm, 512, CODE_DIM).eval()
    latents = torch.randn(GENERATE_BATCH, CODE_DIM)

    def generate():
        with torch.no_grad():
            generator(latents, step=step_for_size(GENERATE_SIZE), alpha=1)

    measure("generate", GENERATE_SIZE, GENERATE_BATCH, generate)
    for size, batch in TRAIN_BATCH.items():
        iteration = torch_bench.make_training_iteration(tm, size, batch, 512, CODE_DIM)
        measure("train", size, batch, iteration)
        del iteration
        torch.cuda.empty_cache()
    write_json(folder, "speed_torch.json", dict(framework=f"PyTorch {torch.__version__}",
                                                device=torch.cuda.get_device_name(), rows=rows))


# ---- Jittor, this port

def parity_jittor(folder):
    import jittor_env  # noqa: F401  (prepares Jittor before it is imported)
    import jittor as jt
    from model import Discriminator, StyledGenerator
    if not jt.flags.use_cuda:
        sys.exit("gpu_compare: Jittor is not on CUDA here")
    arrays = dict(np.load(os.path.join(folder, "torch_parity.npz")))
    generator = StyledGenerator(CODE_DIM)
    generator.load_state_dict({k[2:]: v for k, v in arrays.items() if k.startswith("g/")})
    discriminator = Discriminator(from_rgb_activate=bool(arrays["from_rgb_activate"]))
    discriminator.load_state_dict({k[2:]: v for k, v in arrays.items() if k.startswith("d/")})
    generator.eval()
    discriminator.eval()
    lines, worst = [], 0.0
    for index, (step, alpha) in enumerate(PARITY_CASES):
        given = inputs(step, index)
        image = generator(jt.array(given["z"]), noise=[jt.array(n) for n in given["noise"]],
                          step=step, alpha=alpha)
        real = jt.array(given["real"])
        scores = discriminator(real, step=step, alpha=alpha)
        grad = jt.grad(scores.sum(), real)
        for name, ours in (("image", image), ("scores", scores), ("r1_grad", grad)):
            reference = arrays[f"out/{index}/{name}"]
            relative = float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())
            worst = max(worst, relative)
            lines.append(f"| {4 * 2 ** step} px | {alpha} | {name} | {relative:.2e} | "
                         f"{'ok' if relative <= LIMIT else 'ABOVE ' + str(LIMIT)} |")
    table = ["| size | alpha | output | max abs diff / max abs ref | within 1e-4 |",
             "|---:|---:|---|---:|---|"] + lines
    with open(os.path.join(folder, "parity.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    print("\n".join(table))
    if worst > LIMIT:
        sys.exit(f"gpu_compare: parity {worst:.2e} is above {LIMIT}")


def speed_jittor(folder):
    import tempfile
    import jittor_env  # noqa: F401  (prepares Jittor before it is imported)
    import jittor as jt
    from tools import bench
    if not jt.flags.use_cuda:
        sys.exit("gpu_compare: Jittor is not on CUDA here")
    rows = []

    def record(what, size, batch, timing):
        first, _, times = timing
        rows.append(dict(what=what, size=size, batch=batch, first=first,
                         median=float(np.median(times)), peak_mib=None,
                         used_mib=gpu_memory_used_mib()))
        print(f"gpu_compare: jittor {what} {size} px: {rows[-1]['median']:.4f} s", flush=True)

    record("generate", GENERATE_SIZE, GENERATE_BATCH,
           bench.time_inference(GENERATE_SIZE, GENERATE_BATCH, 512, CODE_DIM, ITERS))
    with tempfile.TemporaryDirectory() as out:
        for size, batch in TRAIN_BATCH.items():
            record("train", size, batch,
                   bench.time_training(size, batch, 512, CODE_DIM, ITERS, out))
            jt.gc()
    write_json(folder, "speed_jittor.json", dict(framework=f"Jittor {jt.__version__}",
                                                 device="CUDA", rows=rows))


def write_json(folder, name, data):
    with open(os.path.join(folder, name), "w") as f:
        json.dump(data, f, indent=1)


def speed_table(folder):
    loaded = {}
    for framework in ("torch", "jittor"):
        path = os.path.join(folder, f"speed_{framework}.json")
        if os.path.isfile(path):
            with open(path) as f:
                loaded[framework] = {(r["what"], r["size"]): r for r in json.load(f)["rows"]}
    keys = [("generate", GENERATE_SIZE)] + [("train", s) for s in TRAIN_BATCH]
    lines = ["| row | batch | PyTorch s | Jittor s | PyTorch / Jittor | Jittor first call s "
             "| GPU MiB PyTorch (peak alloc; in use) | GPU MiB Jittor (in use) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(row, key, digits=4):
        value = row.get(key) if row else None
        return "-" if value is None else f"{value:.{digits}f}"

    for key in keys:
        torch_row = loaded.get("torch", {}).get(key)
        jittor_row = loaded.get("jittor", {}).get(key)
        batch = (torch_row or jittor_row or {}).get("batch", "-")
        ratio = (f"{torch_row['median'] / jittor_row['median']:.2f}x"
                 if torch_row and jittor_row else "-")
        lines.append(f"| {key[0]} {key[1]} px | {batch} | {cell(torch_row, 'median')} | "
                     f"{cell(jittor_row, 'median')} | {ratio} | {cell(jittor_row, 'first', 1)} | "
                     f"{cell(torch_row, 'peak_mib', 0)}; {cell(torch_row, 'used_mib', 0)} | "
                     f"{cell(jittor_row, 'used_mib', 0)} |")
    text = ("Median of {} iterations after one untimed first call; ratio above 1: Jittor "
            "faster.\n\n".format(ITERS) + "\n".join(lines) + "\n")
    with open(os.path.join(folder, "speed.md"), "w") as f:
        f.write(text)
    print(text)


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

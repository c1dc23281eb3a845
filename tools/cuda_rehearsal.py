"""Compile Jittor's CUDA build on a machine without a GPU, as a GPU machine would at the first
``import jittor``: its core (g++ with CUDA's headers, nvcc for its .cu file), its cuBLAS, cuDNN,
cuRAND and CUB operator libraries, and a kernel with the nvcc flags Jittor gives its operators
(CUB and half precision included). Exit 0 when everything builds; 1 with one line naming the
fix when something does not (the full log's path follows); 2 for a bad command line.

    python -m tools.cuda_rehearsal system            # nvcc 13.0 of /usr/local/cuda-13.0
    python -m tools.cuda_rehearsal system --nvcc /opt/cuda-12.8/bin/nvcc
    python -m tools.cuda_rehearsal cu13              # CUDA 13.0 from NVIDIA's pip wheels
    python -m tools.cuda_rehearsal cu12              # CUDA 12.9's headers and libraries

The libraries (and, for cu13, nvcc) come from NVIDIA's wheels, pinned in requirements-cuda13.txt
and requirements-cuda12.txt, installed once into ``--wheels`` (default
``~/.cache/stylegan/cuda_wheels/<set>``; about 2 GB each). ``system`` takes cuBLAS, cuRAND and
cuDNN from the cu13 set when its toolkit has none. CUDA 12's wheels ship no nvcc, so ``cu12``
puts a stand-in nvcc in front of them: it reports CUDA 12.9 and hands the one .cu file of
Jittor's core (and the kernel check) to a CUDA 13 nvcc with that nvcc's own headers; everything
else, the host side, is compiled and linked against CUDA 12.9.

The Jittor built is the one this Python imports (``--jittor FOLDER`` puts another first, e.g.
Jittor as released, to see the build fail). Its cache goes to a folder of its own
(``cache_name=stylegan_cuda_rehearsal_<set>``), so the CPU's compiled Jittor is not touched.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SYSTEM_NVCC = "/usr/local/cuda-13.0/bin/nvcc"
REQUIREMENTS = {"cu13": os.path.join(ROOT, "requirements-cuda13.txt"),
                "cu12": os.path.join(ROOT, "requirements-cuda12.txt")}
PATCHES = os.path.join(ROOT, "patches", "jittor-1.3.11")
# the compute capability the stand-in driver reports (H100): Jittor reads none without a driver
STAND_IN_DRIVER = dict(library="stand-in (no driver)", version=(13, 0), error=None,
                       devices=[("stand-in GPU", (9, 0), 80 << 30)])
KERNEL_CHECK = """\
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cub/cub.cuh>
#include "helper_cuda.h"

__global__ void rehearsal_sum(const __half* x, float* out, int n) {
    typedef cub::BlockReduce<float, 128> Reduce;
    __shared__ typename Reduce::TempStorage storage;
    float v = threadIdx.x < n ? __half2float(x[threadIdx.x]) : 0.f;
    float total = Reduce(storage).Sum(v);
    if (threadIdx.x == 0) out[0] = total;
}

void rehearsal_launch(const __half* x, float* out, int n) {
    rehearsal_sum<<<1, 128>>>(x, out, n);
    checkCudaErrors(cudaGetLastError());
}
"""
# (what the log says, what is wrong, the patch that fixes it); the first match names the fix
DIAGNOSES = (
    (r"has no member named .(computeMode|clockRate)",
     "Jittor's CUDA core reads cudaDeviceProp fields that CUDA 13 removed", "0001"),
    (r"requires at least C\+\+ ?17",
     "CUDA 13's CUB and libcu++ refuse Jittor's -std=c++14", "0002"),
    (r"libcudnn_(ops|cnn)_(infer|train)\.so",
     "Jittor loads cuDNN 8's libraries by name, which cuDNN 9 does not have", "0003"),
    (r"cudnn(SetRNNDescriptor_v6|RNNForwardInference|GetRNNLinLayerMatrixParams)",
     "Jittor's cuDNN RNN operators call functions cuDNN 9 removed", "0003"),
    (r"CUDA found but (cufft|cusparse) is not loaded",
     "Jittor stops when cuFFT or cuSPARSE is missing", "0004"),
    (r"cudaErrorInsufficientDriver",
     "Jittor built for CUDA aborts at import where no driver loads", "0006"),
)


def patch_named(number):
    found = sorted(glob.glob(os.path.join(PATCHES, f"{number}-*.patch")))
    return os.path.relpath(found[0], ROOT) if found else f"patch {number}"


def diagnose(log):
    """One line naming what failed and the fix, from a failed build's log."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", log)   # colours and erase-line codes
    for pattern, what, number in DIAGNOSES:
        if re.search(pattern, text):
            return (f"{what}: install this project's patched Jittor (make install; "
                    f"{patch_named(number)})")
    errors = [line.strip() for line in text.splitlines()
              if re.search(r"\berror\b|Error|failed", line)]
    return f"the CUDA build failed: {(errors or ['no error line in the log'])[0][:300]}"


def install_wheels(which, folder, python=sys.executable):
    """NVIDIA's wheels of ``which`` (cu13, cu12) in ``folder``, installed once per content of
    its requirements file; returns the folder."""
    requirements = REQUIREMENTS[which]
    with open(requirements) as f:
        wanted = f.read()
    stamp = os.path.join(folder, ".requirements")
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if f.read() == wanted:
                return folder
    building = folder + ".partial"
    shutil.rmtree(building, ignore_errors=True)
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--no-deps", "--target", building, "-r", requirements],
                          capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        lines = [l for l in done.stderr.splitlines() if not l.startswith("WARNING: Location")]
        raise SystemExit(f"cuda_rehearsal: pip could not install {os.path.basename(requirements)}"
                         f" into {building}: {(lines or ['?'])[-1]}")
    with open(os.path.join(building, ".requirements"), "w") as f:
        f.write(wanted)
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(building, folder)
    return folder


def cuda12_home(wheels, device_nvcc):
    """A CUDA 12.9 home made of the cu12 wheels: ``include`` (runtime, CCCL), ``lib64``
    (libcudart.so) and ``bin/nvcc``, a stand-in that reports the runtime's version and gives
    device code to ``device_nvcc`` (CUDA 13) with that nvcc's own headers first."""
    nvidia = os.path.join(wheels, "nvidia")
    with open(os.path.join(nvidia, "cuda_runtime", "include", "cuda_runtime_api.h")) as f:
        number = int(re.search(r"#define\s+CUDART_VERSION\s+(\d+)", f.read()).group(1))
    release = f"{number // 1000}.{number % 1000 // 10}"
    home = os.path.join(wheels, f"stylegan_cuda{release}_home")
    shutil.rmtree(home, ignore_errors=True)
    for sub in ("bin", "include", "lib64"):
        os.makedirs(os.path.join(home, sub))
    for package in ("cuda_runtime", "cuda_cccl", "cuda_nvcc"):
        include = os.path.join(nvidia, package, "include")
        for entry in sorted(os.listdir(include)) if os.path.isdir(include) else []:
            link = os.path.join(home, "include", entry)
            if not entry.startswith("__") and not os.path.lexists(link):
                os.symlink(os.path.join(include, entry), link)
    runtime = sorted(glob.glob(os.path.join(nvidia, "cuda_runtime", "lib", "libcudart.so.*")))
    os.symlink(runtime[-1], os.path.join(home, "lib64", "libcudart.so"))
    device_include = os.path.join(os.path.dirname(os.path.dirname(device_nvcc)), "include")
    nvcc = os.path.join(home, "bin", "nvcc")
    with open(nvcc, "w") as f:
        f.write(f"""#!/bin/sh
# stand-in nvcc of CUDA {release} (its wheels ship none): the version, and device code to CUDA 13
if [ "$1" = --version ]; then
  echo "Cuda compilation tools, release {release}, V{release}.0 (stand-in, tools/cuda_rehearsal.py)"
  exit 0
fi
exec "{device_nvcc}" -I"{device_include}" "$@"
""")
    os.chmod(nvcc, 0o755)
    return nvcc


def child(nvcc, wheels, out):
    """Runs in the child process: prepare as runtime.jittor_setup does for a GPU machine, import Jittor
    (it compiles), then the kernel check. Writes what it found to ``out`` as JSON."""
    from runtime import jittor_setup as env
    # the plan as for a GPU machine; the version of the Jittor imported is whatever it is, so
    # that one as released fails in its compiler, where the log says why, not in the plan
    plan = env.plan_cuda(os.environ, site_dirs=[wheels], driver=STAND_IN_DRIVER,
                         jittor_version=env.patched_jittor_version())
    if plan.mode != "cuda":
        raise SystemExit(f"cuda_rehearsal: jittor_setup would not build for CUDA here: "
                         f"{plan.reason} ({plan.fix})")
    env.apply_cuda_plan(plan, os.environ)
    env.prepare_onednn(os.environ)
    config = env.python_config(os.environ)
    if config:
        os.environ["python_config_path"] = config
    env.forbid_downloads()
    started = time.time()
    import jittor as jt
    import jittor.compile_extern as extern
    seconds = time.time() - started
    found = {name: getattr(extern, name, None) is not None
             for name in ("cublas", "cudnn", "curand", "cub")}
    missing = [name for name, ok in found.items() if not ok]
    if missing:
        raise SystemExit(f"cuda_rehearsal: Jittor built its core but not its "
                         f"{', '.join(missing)} operators (log above)")
    folder = os.path.join(os.path.dirname(out), "kernel_check")
    os.makedirs(folder, exist_ok=True)
    source = os.path.join(folder, "rehearsal_kernel.cu")
    with open(source, "w") as f:
        f.write(KERNEL_CHECK)
    command = (f"\"{jt.flags.nvcc_path}\" {jt.flags.nvcc_flags} -c \"{source}\" "
               f"-o \"{source}.o\"")
    print("kernel check:", command, flush=True)
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    print(done.stdout + done.stderr, flush=True)
    if done.returncode != 0:
        raise SystemExit("cuda_rehearsal: the kernel check does not compile with Jittor's nvcc "
                         "flags (log above)")
    with open(out, "w") as f:
        json.dump(dict(nvcc=".".join(map(str, plan.nvcc_version)), cudnn=plan.cudnn_major,
                       use_cudnn=plan.use_cudnn, seconds=round(seconds, 1),
                       jittor=env.installed_jittor_version(),
                       libraries={name: found[1] for name, found in plan.libraries.items()}), f)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Compile Jittor's CUDA build without a GPU (docs/gpu.md).")
    parser.add_argument("toolkit", choices=("system", "cu13", "cu12"),
                        help="system: an installed nvcc (--nvcc); cu13: CUDA 13.0 from NVIDIA's "
                             "pip wheels; cu12: CUDA 12.9's headers and libraries from its wheels")
    parser.add_argument("--nvcc", default=None,
                        help=f"system: the nvcc to build with (default {SYSTEM_NVCC}); cu12: "
                             "the CUDA 13 nvcc that compiles device code (default: "
                             f"{SYSTEM_NVCC}, else the cu13 wheels')")
    parser.add_argument("--wheels", default=None,
                        help="folder of NVIDIA's wheels (installed there when missing; default "
                             "~/.cache/stylegan/cuda_wheels/cu13 or cu12)")
    parser.add_argument("--jittor", default=None,
                        help="a folder holding another Jittor to build (put first on sys.path)")
    parser.add_argument("--log", default=None,
                        help="where the build's log goes (default: a file in a new temporary "
                             "folder, printed)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser


def wheels_folder(which, given):
    return given or os.path.join(os.path.expanduser("~"), ".cache", "stylegan", "cuda_wheels",
                                 which)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.child:
        child(args.nvcc, args.wheels, args.child)
        return 0
    if args.nvcc and not os.access(args.nvcc, os.X_OK):
        print(f"cuda_rehearsal: --nvcc {args.nvcc} is not an executable file", file=sys.stderr)
        return 2
    started = time.time()
    if args.toolkit == "cu12":
        wheels = install_wheels("cu12", wheels_folder("cu12", args.wheels))
        device_nvcc = args.nvcc or SYSTEM_NVCC
        if not os.access(device_nvcc, os.X_OK):
            cu13 = install_wheels("cu13", wheels_folder("cu13", None))
            device_nvcc = os.path.join(cu13, "nvidia", "cu13", "bin", "nvcc")
        nvcc = cuda12_home(wheels, device_nvcc)
    elif args.toolkit == "cu13":
        wheels = install_wheels("cu13", wheels_folder("cu13", args.wheels))
        nvcc = os.path.join(wheels, "nvidia", "cu13", "bin", "nvcc")
    else:
        nvcc = args.nvcc or SYSTEM_NVCC
        if not os.access(nvcc, os.X_OK):
            print(f"cuda_rehearsal: no nvcc at {nvcc}; give one with --nvcc", file=sys.stderr)
            return 2
        wheels = install_wheels("cu13", wheels_folder("cu13", args.wheels))
    log = args.log or os.path.join(
        subprocess.run(["mktemp", "-d", "/tmp/cuda_rehearsal.XXXXXX"], capture_output=True,
                       text=True).stdout.strip(), "build.log")
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    result = os.path.join(os.path.dirname(os.path.abspath(log)), "result.json")
    if os.path.exists(result):
        os.remove(result)
    environ = dict(os.environ)
    environ["PATH"] = os.path.dirname(nvcc) + os.pathsep + environ.get("PATH", "")
    environ["cache_name"] = f"stylegan_cuda_rehearsal_{args.toolkit}"
    environ["STYLEGAN_CUDNN"] = "1"
    environ["PYTHONPATH"] = os.pathsep.join(
        [p for p in (args.jittor, ROOT, environ.get("PYTHONPATH")) if p])
    for key in ("nvcc_path", "conv_opt", "use_cuda", "log_silent"):
        environ.pop(key, None)
    environ["log_silent"] = "0"
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, "-m", "tools.cuda_rehearsal", args.toolkit,
                               "--nvcc", nvcc, "--wheels", wheels, "--child", result],
                              cwd=ROOT, env=environ, stdout=f, stderr=subprocess.STDOUT)
    with open(log, errors="replace") as f:
        text = f.read()
    if done.returncode != 0 or not os.path.isfile(result):
        exits = [line for line in text.splitlines() if line.startswith("cuda_rehearsal: ")]
        print(f"cuda_rehearsal: {args.toolkit}: "
              + (diagnose(text) if not exits or "log above" in exits[-1]
                 else exits[-1][len("cuda_rehearsal: "):]), file=sys.stderr)
        print(f"cuda_rehearsal: log: {log}", file=sys.stderr)
        return 1
    with open(result) as f:
        found = json.load(f)
    print(f"cuda_rehearsal: {args.toolkit}: Jittor {found['jittor']} built for CUDA "
          f"{found['nvcc']} with nvcc {nvcc}: core, cuBLAS, cuDNN {found['cudnn']}, cuRAND and "
          f"CUB operators and a CUB kernel compile ({round(time.time() - started)} s; Jittor's "
          f"import {found['seconds']} s); log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

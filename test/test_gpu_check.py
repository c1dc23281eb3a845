"""tools/gpu_check.sh where it must stop early (no GPU, no wheelhouse, a stale Jittor wheel), in
seconds and without importing Jittor, with a stand-in nvidia-smi; and tools/gpu_wheels.sh, which
fills the wheelhouse that check installs from (slow: it builds the patched Jittor wheel)."""
import glob
import hashlib
import os
import re
import subprocess
import sys
import time
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGINAL_REPO = os.environ.get("ORIGINAL_REPO",
                               "/work/.mirror/rosinality+style-based-gan-pytorch/repo")
GPU_LINE = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-0000-0000-0000-000000000000)"
CARRY_LIMIT = 64 * 2 ** 20


def fake_nvidia_smi(folder, lists_gpu):
    """An nvidia-smi that lists one H100, or fails as it does without a driver."""
    folder.mkdir(exist_ok=True)
    path = folder / "nvidia-smi"
    if lists_gpu:
        path.write_text(f'#!/bin/sh\ncase "$*" in *query*) echo 580.65.06 ;; '
                        f'*) echo "{GPU_LINE}" ;; esac\n')
    else:
        path.write_text("#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't "
                        "communicate with the NVIDIA driver.\"\nexit 9\n")
    path.chmod(0o755)
    return str(folder)


def run_check(tmp_path, lists_gpu, wheelhouse):
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), WHEELHOUSE=str(wheelhouse), PYTHON=sys.executable,
               PATH=fake_nvidia_smi(tmp_path / "bin", lists_gpu) + os.pathsep +
               os.environ.get("PATH", ""))
    started = time.monotonic()
    done = subprocess.run(["bash", os.path.join(ROOT, "tools", "gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started, (out / "summary.md").read_text()


def patches_label():
    """The label tools/patched_jittor.sh gives the wheel: the patches' content, in name order."""
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        version = re.search(r"^jittor==(\S+)$", f.read(), re.M).group(1)
    patches = sorted(glob.glob(os.path.join(ROOT, "patches", f"jittor-{version}", "*.patch")))
    digest = hashlib.sha256()
    for path in patches:
        with open(path, "rb") as f:
            digest.update(f.read())
    return version, (digest.hexdigest()[:8] if patches else None)


def test_without_a_gpu_it_says_so_and_exits_2_at_once(tmp_path):
    done, seconds, summary = run_check(tmp_path, lists_gpu=False, wheelhouse=tmp_path / "none")
    assert done.returncode == 2, done.stdout + done.stderr
    assert seconds < 10
    line = "no GPU here (nvidia-smi lists none): nothing checked"
    assert done.stdout == f"gpu_check: {line}\n"
    assert summary.endswith(f"- {line}\n")
    assert sorted(os.listdir(tmp_path / "out")) == ["log.txt", "summary.md"]


def test_a_gpu_and_no_wheelhouse_stops_in_one_line_before_installing(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    done, seconds, summary = run_check(tmp_path, lists_gpu=True, wheelhouse=wheelhouse)
    assert done.returncode == 1, done.stdout + done.stderr
    assert seconds < 10
    reason = (f"stopped: no patched Jittor wheel in {wheelhouse}/ (jittor-*+stylegan.*.whl): run "
              f"bash tools/gpu_wheels.sh before the check and carry {wheelhouse}")
    assert done.stdout.splitlines()[0] == f"gpu_check: {reason}"
    assert f"- {GPU_LINE}\n" in summary
    assert f"- {reason}\n" in summary and "| install |" not in summary


def fake_wheel(folder, version):
    """A wheel of a package named jittor, of VERSION, holding one empty module."""
    name = f"jittor-{version}"
    path = folder / f"{name}-py3-none-any.whl"
    files = {"jittor_stand_in.py": "",
             f"{name}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: jittor\nVersion: "
                                            f"{version}\n",
             f"{name}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                         "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{name}.dist-info/RECORD"] = "".join(f"{k},,\n" for k in files) + \
        f"{name}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return path


def test_a_jittor_wheel_of_other_patches_stops_the_pre_flight_in_one_line(tmp_path):
    version, label = patches_label()
    if label is None:
        pytest.skip("no patches/jittor-*/ here: no label to compare with")
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    stale = f"{version}.0+stylegan.00000000" if version.count(".") == 2 else \
        f"{version}+stylegan.00000000"
    fake_wheel(wheelhouse, stale)
    done, seconds, summary = run_check(tmp_path, lists_gpu=True, wheelhouse=wheelhouse)
    assert done.returncode == 1, done.stdout + done.stderr
    assert seconds < 30
    reason = (f"stopped: pre-flight: Jittor {stale} in {wheelhouse}/ is built from other patches "
              f"than patches/jittor-{version}/ (label {label}): run bash tools/gpu_wheels.sh "
              f"again and carry {wheelhouse}")
    assert f"gpu_check: {reason}\n" in done.stdout
    assert "| install | 0 |" in summary and "| preflight | 1 |" in summary
    assert summary.splitlines()[-2] == f"- {reason}"
    assert "doctor" not in summary


@pytest.mark.slow
def test_gpu_wheels_fills_a_wheelhouse_under_64_mib(tmp_path):
    gitdir = os.path.join(ORIGINAL_REPO, ".git")
    if not os.path.isdir(gitdir):
        gitdir = ORIGINAL_REPO
    if not os.path.isfile(os.path.join(gitdir, "HEAD")):
        pytest.skip(f"no copy of rosinality/style-based-gan-pytorch at {ORIGINAL_REPO}")
    wheelhouse = tmp_path / "wheelhouse"
    env = dict(os.environ, WHEELHOUSE=str(wheelhouse), ORIGINAL_REPO=ORIGINAL_REPO)
    done = subprocess.run(["bash", os.path.join(ROOT, "tools", "gpu_wheels.sh")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    names = sorted(os.listdir(wheelhouse))
    _, label = patches_label()
    assert len([n for n in names if n.startswith("jittor-")]) == 1
    assert len([n for n in names if re.fullmatch(
        rf"jittor-[0-9.]+\+stylegan\.{label or '[0-9a-f]{8}'}-py3-none-any\.whl", n)]) == 1
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        lmdb = re.search(r"^lmdb==(\S+)$", f.read(), re.M).group(1)
    assert any(n.startswith("astunparse-1.6.3-") for n in names)
    assert any(n.startswith(f"lmdb-{lmdb}-cp312-cp312-") and "manylinux" in n for n in names)
    assert any(n.startswith("six-") for n in names)
    total = sum((wheelhouse / n).stat().st_size for n in names) + \
        os.path.getsize(os.path.join(ROOT, "tools", "torch_model.py"))
    assert total < CARRY_LIMIT
    assert re.search(r"^carried \(.*\): \d+ bytes, [0-9.]+ MiB", done.stdout, re.M)
    assert re.search(r"^working tree \(.*\): \d+ bytes, [0-9.]+ MiB", done.stdout, re.M)

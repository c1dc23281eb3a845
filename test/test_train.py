"""train.py: the reference's schedule, losses, EMA, learning rates, outputs, exact resume, errors.

Every training run here uses the same tiny set-up (8 and 16 px, 16 flat-coloured images per size,
width 8, code_dim 8, 2 mapping layers, batch 4, phase 8 images), so Jittor compiles its
operators once for all tests.
"""
import csv
import dataclasses
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import training.trainer
from runtime.cli import UsageError
from dataset import DatasetError
from files.checkpoint import (TRAINING_CHECKPOINT_KEYS, CheckpointError, atomic_save,
                              is_training_checkpoint, load_checkpoint, load_generator)
from helpers import flat_image_root
from train import build_parser, main
from training import optimizers
from training.config import TrainConfig
from training.losses import LOSSES
from training.optimizers import EMA_DECAY, MAPPING_LR_MULT
from training.stopping import TrainingDiverged
from training.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_IMAGES = 16
SIZES = (8, 16)
NARROW = ["--width", "8", "--code_dim", "8", "--n_mlp", "2"]
SMALL_RUN = NARROW + ["--init_size", "8", "--max_size", "16", "--phase", "8", "--batch", "4",
                      "--seed", "1"]
# With phase 8 and batch 4: iterations 1-5 at 8 px (alpha 1: the initial size of a fresh run;
# used_sample 0, 4, ..., 16 is not yet > 2 x 8), iteration 6 grows to 16 px with alpha 0, then
# alpha = (used_sample + 1) / 8 = (4 + 1) / 8 and (8 + 1) / 8 -> 1.
EXPECTED_SIZES = [8, 8, 8, 8, 8, 16, 16, 16]
EXPECTED_ALPHAS = [1, 1, 1, 1, 1, 0, 0.625, 1]
ITERATIONS = len(EXPECTED_SIZES)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """root/8 and root/16, each with 16 flat images of random colours."""
    return flat_image_root(tmp_path_factory.mktemp("data"), SIZES, N_IMAGES)


def run(data_root, out, *extra):
    return main(build_parser().parse_args([data_root, *SMALL_RUN, "--out", str(out), *extra]))


def read_log(out):
    with open(os.path.join(out, "log.csv"), newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def full_run(data_root, tmp_path_factory):
    """8 iterations 8 -> 16 px, a sample every 2 and checkpoints every 3 iterations."""
    out = tmp_path_factory.mktemp("full")
    end = run(data_root, out, "--iter", str(ITERATIONS), "--sample_every", "2",
              "--save_every", "3")
    return str(out), end


# --- one iteration: losses, parameters, EMA, learning rates ---------------------------------------

def parameters(module):
    return {name: p.numpy().copy() for name, p in module.named_parameters()}


@pytest.mark.slow
def test_one_iteration_moves_parameters_updates_the_ema_and_the_mapping_net_at_lr_x_001(
        data_root, tmp_path):
    config = TrainConfig(path=data_root, init_size=8, max_size=16, phase=8, batch=4, code_dim=8,
                         n_mlp=2, width=8, seed=3, out=str(tmp_path))
    trainer = Trainer(config)
    g_before, d_before = parameters(trainer.generator), parameters(trainer.discriminator)
    ema_before = parameters(trainer.g_running)
    for name in g_before:  # the moving average starts as a copy of the generator
        np.testing.assert_array_equal(ema_before[name], g_before[name])

    result = trainer.train_iteration()
    assert np.isfinite([result.g_loss, result.d_loss, result.grad_penalty]).all()
    assert result.grad_penalty > 0 and result.size == 8 and result.alpha == 1

    g_after, d_after = parameters(trainer.generator), parameters(trainer.discriminator)
    changed = [n for n in d_before if not np.array_equal(d_before[n], d_after[n])]
    # every discriminator parameter used at 8 px moves (from_rgb of 8 px, blocks 8 -> 4 px, linear)
    assert {"progression.7.conv1.0.conv.weight_orig", "progression.8.conv2.0.conv.weight_orig",
            "from_rgb.7.0.conv.weight_orig", "linear.linear.weight_orig"} <= set(changed)
    assert not any(n.startswith("from_rgb.0.") for n in changed)  # 1024 px: unused

    ema_after = parameters(trainer.g_running)
    for name in g_before:  # g_running = 0.999 g_running + 0.001 generator
        expected = EMA_DECAY * ema_before[name] + (1 - EMA_DECAY) * g_after[name]
        np.testing.assert_allclose(ema_after[name], expected, rtol=1e-6, atol=1e-7)

    # Adam's first step with betas (0, 0.99): delta = lr * sqrt(0.01) g / (sqrt(0.01 g^2) + eps),
    # so |delta| = lr wherever |g| >> eps: 1e-3 for the synthesis net, 1e-5 for the mapping net.
    def update_sizes(prefix):
        return np.concatenate([np.abs(g_after[n] - g_before[n]).ravel() for n in g_before
                               if n.startswith(prefix) and n.endswith("weight_orig")
                               and not np.array_equal(g_after[n], g_before[n])])
    mapping, synthesis = update_sizes("style."), update_sizes("generator.")
    assert mapping.size > 0 and synthesis.size > 0
    assert np.median(mapping) == pytest.approx(config.lr * MAPPING_LR_MULT, rel=0.05)
    assert np.median(synthesis) == pytest.approx(config.lr, rel=0.01)
    assert mapping.max() <= config.lr * MAPPING_LR_MULT * 1.05
    assert [g["lr"] for g in trainer.g_optimizer.param_groups] == [1e-3, 1e-3 * MAPPING_LR_MULT]


@pytest.mark.parametrize("step, alpha", [(0, 1), (1, 1), (1, 0.5), (3, 0.25), (3, -1)])
def test_layers_in_use_are_those_a_forward_pass_gives_gradients(step, alpha):
    """modules_in_use, which train_only leaves trainable, against Jittor's own differentiation
    of every parameter (an unused one gets a zero gradient)."""
    import jittor as jt
    from model import Discriminator, StyledGenerator, size_for_step
    from training.optimizers import parameter_names
    generator = StyledGenerator(8, n_mlp=2, width=8)
    discriminator = Discriminator(width=8, from_rgb_activate=True)
    size = size_for_step(step)
    for network, output in (
            (generator, lambda: generator(jt.randn(2, 8), step=step, alpha=alpha)),
            (discriminator, lambda: discriminator(jt.randn(2, 3, size, size), step=step,
                                                  alpha=alpha))):
        names = [name for name, _ in network.named_parameters()]
        grads = jt.grad((output() ** 2).sum(), [p for _, p in network.named_parameters()])
        differentiated = {n for n, g in zip(names, grads) if np.abs(g.numpy()).sum() > 0}
        assert differentiated == parameter_names(network, network.modules_in_use(step, alpha))
        assert 0 < len(differentiated) < len(names)


@pytest.mark.slow
def test_training_only_the_layers_in_use_trains_as_adam_over_every_parameter(
        data_root, tmp_path, monkeypatch):
    """train_only and the EMA over the layers up to the current size change nothing but work:
    the same losses and weights as Adam and the EMA over every parameter, through a fade-in.
    Both with one step count per optimiser (Jittor's Adam.step): with counts per parameter
    (optimizers.Adam, test_optimizers.py) the left-out layers are also left uncounted."""
    import jittor as jt
    monkeypatch.setattr(optimizers.Adam, "step", jt.optim.Adam.step)
    config = TrainConfig(path=data_root, init_size=8, max_size=16, phase=8, batch=4, code_dim=8,
                         n_mlp=2, width=8, seed=5, out=str(tmp_path / "a"))
    fast = Trainer(config)
    fast_results = [fast.train_iteration() for _ in range(ITERATIONS)]
    monkeypatch.setattr(training.trainer, "train_only", lambda network, modules: None)  # all
    monkeypatch.setattr(Trainer, "_ema_names", lambda self, step: None)      # EMA over all
    full = Trainer(dataclasses.replace(config, out=str(tmp_path / "b")))
    full_results = [full.train_iteration() for _ in range(ITERATIONS)]
    assert [r.alpha for r in full_results] == EXPECTED_ALPHAS
    for a, b in zip(fast_results, full_results):
        np.testing.assert_allclose([a.g_loss, a.d_loss, a.grad_penalty],
                                   [b.g_loss, b.d_loss, b.grad_penalty], rtol=1e-5, atol=1e-6)
    for network in ("generator", "discriminator", "g_running"):
        a, b = parameters(getattr(fast, network)), parameters(getattr(full, network))
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # the unused layers were left out: after 16 px, the 32 px block is as initialised
    unused = fast.generator.generator.progression[3].parameters()
    assert unused and all(p.is_stop_grad() for p in unused)


@pytest.mark.slow
def test_ema_decay_flag_sets_the_moving_average_rate(data_root, tmp_path):
    config = TrainConfig(path=data_root, init_size=8, max_size=8, phase=8, batch=4, code_dim=8,
                         n_mlp=2, width=8, seed=3, out=str(tmp_path), ema_decay=0.9)
    trainer = Trainer(config)
    ema_before = parameters(trainer.g_running)
    trainer.train_iteration()
    g_after, ema_after = parameters(trainer.generator), parameters(trainer.g_running)
    moved = 0
    for name in g_after:
        np.testing.assert_allclose(ema_after[name], 0.9 * ema_before[name] + 0.1 * g_after[name],
                                   rtol=1e-6, atol=1e-7)
        moved += not np.array_equal(ema_after[name], ema_before[name])
    assert moved > 0
    assert trainer.config.run_args()["ema_decay"] == 0.9   # stored: a resumed run keeps it


# --- a whole run: log, samples, checkpoints ------------------------------------------------------

@pytest.mark.slow
def test_run_follows_the_schedule_and_logs_finite_losses(full_run):
    out, end = full_run
    rows = read_log(out)
    assert [int(r["iteration"]) for r in rows] == list(range(1, ITERATIONS + 1))
    assert [int(r["size"]) for r in rows] == EXPECTED_SIZES
    assert [float(r["alpha"]) for r in rows] == EXPECTED_ALPHAS
    assert [int(r["used_sample"]) for r in rows] == [4, 8, 12, 16, 20, 4, 8, 12]
    for key in ("g_loss", "d_loss", "grad_penalty", "images_per_sec"):
        assert np.isfinite([float(r[key]) for r in rows]).all()
    assert end.interrupted is None and end.trainer.iteration == ITERATIONS


@pytest.mark.slow
def test_sample_grids_have_the_reference_layout(full_run):
    out, _ = full_run
    assert sorted(os.listdir(os.path.join(out, "sample"))) == [
        "000002.png", "000004.png", "000006.png", "000008.png"]
    # 10 columns x 5 rows of tiles with 2 px padding: 10 * (8 + 2) + 2 by 5 * (8 + 2) + 2
    with Image.open(os.path.join(out, "sample", "000004.png")) as img:
        assert img.size == (102, 52) and img.mode == "RGB"
    with Image.open(os.path.join(out, "sample", "000008.png")) as img:
        assert img.size == (182, 92)


@pytest.mark.slow
def test_checkpoints_are_written_and_read_back(full_run):
    out, _ = full_run
    folder = os.path.join(out, "checkpoint")
    assert sorted(os.listdir(folder)) == [       # no temporary files left
        "000003.model", "000006.model", "newest.txt", "train_state.model", "train_step-2.model"]
    with open(os.path.join(folder, "newest.txt")) as f:
        assert f.read() == "train_state.model\n"        # written last, at the end of the run
    generator, info = load_generator(os.path.join(folder, "000006.model"))  # g_running only
    assert (info["code_dim"], info["n_mlp"], info["width"]) == (8, 2, 8)
    assert info["kind"] == "generator state dict"

    state = load_checkpoint(os.path.join(folder, "train_state.model"))
    assert is_training_checkpoint(state) and set(TRAINING_CHECKPOINT_KEYS) <= set(state)
    assert (state["step"], state["alpha"], state["used_sample"], state["iteration"]) == (2, 1, 12, 8)
    assert state["args"]["code_dim"] == 8 and state["args"]["width"] == 8
    assert state["args"]["seed"] == 1 and state["final_progress"] is False
    assert [g["lr"] for g in state["g_optimizer"]["defaults"]["param_groups"]] == pytest.approx(
        [1e-3, 1e-5])
    # the reference's snapshot before growing: the state after the 5 iterations at 8 px
    before_growing = load_checkpoint(os.path.join(folder, "train_step-2.model"))
    assert (before_growing["step"], before_growing["iteration"]) == (1, 5)
    assert before_growing["used_sample"] == 20


@pytest.mark.slow
def test_resume_gives_the_losses_of_the_uninterrupted_run(full_run, data_root, tmp_path):
    out, _ = full_run
    run(data_root, tmp_path, "--iter", "4", "--sample_every", "2", "--save_every", "100")
    end = main(build_parser().parse_args(
        [data_root, "--ckpt", str(tmp_path / "checkpoint" / "train_state.model"), "--iter",
         str(ITERATIONS), "--sample_every", "2", "--save_every", "100", "--out", str(tmp_path)]))
    assert end.trainer.config.phase == 8 and end.trainer.config.width == 8  # the run's own
    resumed, uninterrupted = read_log(tmp_path), read_log(out)
    assert [r["iteration"] for r in resumed] == [str(i) for i in range(1, ITERATIONS + 1)]
    for mine, theirs in zip(resumed, uninterrupted):
        for key in ("size", "alpha", "used_sample"):
            assert mine[key] == theirs[key]
        for key in ("g_loss", "d_loss", "grad_penalty"):
            assert float(mine[key]) == pytest.approx(float(theirs[key]), rel=1e-5, abs=1e-6)
    a = load_checkpoint(str(tmp_path / "checkpoint" / "train_state.model"))
    b = load_checkpoint(os.path.join(out, "checkpoint", "train_state.model"))
    for name in ("generator", "discriminator", "g_running"):
        for key in a[name]:
            np.testing.assert_allclose(a[name][key], b[name][key], rtol=1e-5, atol=1e-6)
    # train_step-2.model, written before growing, resumes too: at iteration 6, at 16 px
    main(build_parser().parse_args(
        [data_root, "--ckpt", os.path.join(out, "checkpoint", "train_step-2.model"), "--iter",
         "6", "--out", str(tmp_path / "from_snapshot")]))
    row = read_log(tmp_path / "from_snapshot")[-1]
    assert (row["iteration"], row["size"], row["alpha"]) == ("6", "16", "0.000000")
    assert float(row["d_loss"]) == pytest.approx(float(uninterrupted[5]["d_loss"]), rel=1e-5)
    with Image.open(tmp_path / "sample" / "000008.png") as mine, \
            Image.open(os.path.join(out, "sample", "000008.png")) as theirs:
        difference = np.abs(np.asarray(mine, np.int16) - np.asarray(theirs, np.int16))
        assert difference.max() <= 1  # the same fixed latents and noise after the resume


@pytest.mark.slow
def test_reference_snapshot_starts_at_init_size_with_a_fade_in(full_run, data_root, tmp_path):
    out, _ = full_run
    state = load_checkpoint(os.path.join(out, "checkpoint", "train_state.model"))
    snapshot = tmp_path / "train_step-3.model"
    atomic_save({k: state[k] for k in ("generator", "discriminator", "g_running")}, str(snapshot))
    end = run(data_root, tmp_path / "out", "--ckpt", str(snapshot), "--init_size", "16",
              "--iter", "1")
    row, = read_log(tmp_path / "out")
    assert (row["size"], float(row["alpha"])) == ("16", 1 / 8)  # (0 + 1) / phase, not 1
    assert end.trainer.config.fade_in_initial


@pytest.mark.slow
def test_wgan_gp_loss_trains_with_finite_losses(data_root, tmp_path):
    run(data_root, tmp_path, "--loss", "wgan-gp", "--iter", "2", "--no_mixing")
    rows = read_log(tmp_path)
    assert len(rows) == 2
    for row in rows:
        assert np.isfinite([float(row[k]) for k in ("g_loss", "d_loss", "grad_penalty")]).all()
        assert float(row["grad_penalty"]) > 0  # 10 (||grad|| - 1)^2, far from 0 at the start


# --- stopping: NaN and Ctrl-C ----------------------------------------------------------------------

@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(data_root, tmp_path,
                                                                     monkeypatch):
    discriminator_loss, generator_loss = LOSSES["r1"]
    calls = []

    def failing_generator_loss(scores):
        calls.append(1)
        loss = generator_loss(scores)
        return loss * float("nan") if len(calls) == 5 else loss

    monkeypatch.setitem(LOSSES, "r1", (discriminator_loss, failing_generator_loss))
    with pytest.raises(TrainingDiverged) as error:
        run(data_root, tmp_path, "--iter", "8", "--save_every", "3")
    message = str(error.value)
    assert "iteration 5" in message and "nan" in message and "iteration 3" in message
    assert os.path.join("checkpoint", "train_state.model") in message
    assert load_checkpoint(str(tmp_path / "checkpoint" / "train_state.model"))["iteration"] == 3
    assert len(read_log(tmp_path)) == 4  # the NaN iteration is not logged


@pytest.mark.slow
def test_ctrl_c_saves_a_resumable_checkpoint_after_the_iteration(data_root, tmp_path,
                                                                  monkeypatch):
    original = Trainer.train_iteration

    def interrupted_iteration(self):
        if self.iteration == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-iteration 2
        return original(self)

    monkeypatch.setattr(Trainer, "train_iteration", interrupted_iteration)
    # what the process had before (default_int_handler, or SIG_IGN under nohup / a background job)
    handler_before = signal.getsignal(signal.SIGINT)
    end = run(data_root, tmp_path, "--iter", "8")
    assert end.interrupted == signal.SIGINT and end.trainer.iteration == 2
    state = load_checkpoint(str(tmp_path / "checkpoint" / "train_state.model"))
    assert state["iteration"] == 2 and state["used_sample"] == 8
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler restored


# --- bad input, refused before training ------------------------------------------------------------

@pytest.mark.parametrize("flags, words", [
    (["--init_size", "12"], "--init_size must be a power of two from 4 to 1024, got 12"),
    (["--max_size", "2048"], "--max_size must be a power of two from 4 to 1024, got 2048"),
    (["--init_size", "2"], "--init_size must be a power of two"),
    (["--init_size", "32", "--max_size", "16"], "--init_size 32 is larger than --max_size 16"),
    (["--phase", "0"], "--phase must be an integer >= 1"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--ema_decay", "1"], r"--ema_decay must be a number in \[0, 1\), got 1.0"),
])
def test_bad_sizes_and_values_are_refused(data_root, tmp_path, flags, words):
    with pytest.raises(UsageError, match=words):
        run(data_root, tmp_path, *flags)
    assert not os.path.exists(tmp_path / "checkpoint")


def test_missing_resolution_folders_are_all_named_with_the_resize_command(tmp_path):
    for size in (8, 64):
        (tmp_path / str(size)).mkdir()
        Image.new("RGB", (size, size)).save(tmp_path / str(size) / "a.png")
    with pytest.raises(DatasetError) as error:
        main(build_parser().parse_args([str(tmp_path), *NARROW, "--max_size", "64",
                                        "--out", str(tmp_path / "out")]))
    message = str(error.value)
    assert os.path.join(str(tmp_path), "16") in message
    assert os.path.join(str(tmp_path), "32") in message
    assert f"python resize.py {os.path.join(str(tmp_path), '64')} --min_size 16" in message


@pytest.mark.slow
def test_checkpoints_that_cannot_resume_say_what_they_are(full_run, data_root, tmp_path):
    out, _ = full_run
    picture = tmp_path / "face.png"
    Image.new("RGB", (4, 4)).save(picture)
    text = tmp_path / "notes.model"
    text.write_text("not a checkpoint")
    cases = [(picture, "a PNG image"), (text, "a text file"),
             (tmp_path / "missing.model", "no such file"),
             (os.path.join(out, "checkpoint", "000003.model"), "a generator state dict")]
    for path, words in cases:
        with pytest.raises(CheckpointError, match=words):
            run(data_root, tmp_path / "out", "--ckpt", str(path), "--iter", "1")
    with pytest.raises(UsageError, match="--iter 8: the checkpoint has already done 8"):
        run(data_root, tmp_path / "out", "--iter", "8",
            "--ckpt", os.path.join(out, "checkpoint", "train_state.model"))


@pytest.mark.slow
def test_command_line_prints_one_line_and_exits_2_on_bad_input(data_root):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), data_root,
                           "--init_size", "32", "--max_size", "16"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "train.py: error: --init_size 32 is larger than --max_size 16")


def test_help_explains_every_flag_with_its_default():
    text = build_parser().format_help()
    for flag in ("--ckpt", "--init_size", "--max_size", "--phase", "--iter", "--lr", "--sched",
                 "--loss", "--no_mixing", "--batch", "--no_from_rgb_activate", "--width",
                 "--code_dim", "--n_mlp", "--seed", "--out", "--sample_every", "--save_every",
                 "--workers", "--ema_decay"):
        assert flag in text
    assert "(default: 150000)" in text and "(default: 128)" in text

"""evaluate.py: the SWD command line on a tiny generator and a tiny data folder."""
import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import jittor as jt

import evaluate
from metrics import swd
from files.checkpoint import atomic_save
from files.grid import save_image_grid
from model import StyledGenerator
from test_swd import random_discs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_IMAGES = 64
ROW = re.compile(r"^\| (\d+ px|average) \|(.*)\|$")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data root with 32/ and 16/ folders of N_IMAGES disc images each."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for size in (32, 16):
        os.makedirs(root / str(size))
        for i, image in enumerate(random_discs(rng, N_IMAGES, size=size)):
            Image.fromarray(image.transpose(1, 2, 0)).save(root / str(size) / f"{i:05d}.png")
    return str(root)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    jt.set_global_seed(0)
    path = str(tmp_path_factory.mktemp("checkpoint") / "tiny.model")
    atomic_save(StyledGenerator(code_dim=8, n_mlp=2, width=8).state_dict(), path)
    return path


def run(argv):
    return evaluate.main(evaluate.build_parser().parse_args(argv))


def parse_table(text):
    """{row label: [numbers]} of the markdown table in ``text``, and its header's column names."""
    lines = text.strip().splitlines()
    header = next(line for line in lines if line.startswith("| level |"))
    names = [cell.strip() for cell in header.strip("|").split("|")][1:]
    rows = {}
    for line in lines:
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = [float(cell) for cell in match.group(2).split("|")]
    return names, rows


def test_table_has_one_row_per_level_down_to_16_px_and_the_average(checkpoint, data, capsys):
    result = run([checkpoint, data, "--size", "32", "--n", "32", "--batch", "16", "--real-vs-real"])
    names, rows = parse_table(capsys.readouterr().out)
    assert names == ["generated vs real", "real vs real"]
    assert list(rows) == ["32 px", "16 px", "average"]
    assert result["levels"] == [32, 16] and result["n"] == 32
    for column, name in enumerate(names):
        values = result["columns"][name]
        assert [row[column] for row in rows.values()] == pytest.approx(values, abs=6e-5)
        assert values[2] == pytest.approx((values[0] + values[1]) / 2)
    # an untrained generator is far from the data, two samples of the data are closer (32
    # images are few: the 16 px floor is high, the level's descriptors overlap a lot)
    generated, floor = result["columns"]["generated vs real"], result["columns"]["real vs real"]
    assert 0 < floor[0] < generated[0] / 3 and 0 < floor[1] < generated[1]
    assert floor[2] < generated[2] / 2


def test_size_16_gives_a_single_level_and_the_same_seed_the_same_table(checkpoint, data, capsys):
    argv = [checkpoint, data, "--size", "16", "--n", "6", "--batch", "4", "--seed", "5"]
    first = run(argv)
    out = capsys.readouterr().out
    assert list(parse_table(out)[1]) == ["16 px", "average"]
    assert run(argv) == first
    assert capsys.readouterr().out == out
    other = run([checkpoint, data, "--size", "16", "--n", "6", "--batch", "3", "--seed", "6"])
    assert other["columns"] != first["columns"]


def test_real_vs_real_needs_no_checkpoint_and_compares_two_disjoint_random_sets(data, capsys):
    result = run([data, "--real-vs-real", "--size", "32", "--n", "10", "--seed", "2"])
    names, rows = parse_table(capsys.readouterr().out)
    assert names == ["real vs real"] and list(rows) == ["32 px", "16 px", "average"]
    folder = os.path.join(data, "32")
    files = sorted(os.listdir(folder))
    order = np.random.default_rng(2).permutation(len(files))
    images = np.stack([np.asarray(Image.open(os.path.join(folder, files[i]))).transpose(2, 0, 1)
                       for i in order[:20]])
    levels, average = swd.swd(images[:10], images[10:], seed=2)
    assert result["columns"]["real vs real"] == pytest.approx(levels + [average], rel=1e-12)
    # other direction counts: the same numbers as swd.py computes with them
    more = run([data, "--real-vs-real", "--size", "32", "--n", "10", "--seed", "2",
                "--directions", "512", "--repeats", "2"])
    levels, average = swd.swd(images[:10], images[10:], seed=2, repeats=2,
                              directions_per_repeat=512)
    assert more["columns"]["real vs real"] == pytest.approx(levels + [average], rel=1e-12)
    assert more["columns"] != result["columns"]


def test_fewer_images_than_asked_are_all_used_with_a_note(data, capsys):
    result = run([data, "--real-vs-real", "--size", "16", "--n", "100"])
    captured = capsys.readouterr()
    assert result["n"] == N_IMAGES // 2
    assert f"holds {N_IMAGES} images" in captured.err and "sets of 32" in captured.err
    assert "sets of 32 images" in captured.out


def test_generated_images_enter_as_the_png_values_grid_writes(tmp_path):
    rng = np.random.default_rng(3)
    outputs = rng.uniform(-1.3, 1.3, (3, 3, 16, 16)).astype(np.float32)
    pixels = evaluate.to_pixels(outputs)
    assert pixels.dtype == np.uint8 and pixels.shape == (3, 3, 16, 16)
    for k in range(3):
        path = str(tmp_path / f"{k}.png")
        save_image_grid(outputs[k:k + 1], path, nrow=1)
        np.testing.assert_array_equal(np.asarray(Image.open(path)).transpose(2, 0, 1), pixels[k])
    assert evaluate.to_pixels(np.array([-1.0, 0.0, 1.0]).reshape(1, 3, 1, 1)).ravel().tolist() == \
        [0, 128, 255]


def test_truncation_uses_the_mean_style_and_says_so_in_the_column(checkpoint, data, capsys):
    plain = run([checkpoint, data, "--size", "16", "--n", "6", "--seed", "1"])
    truncated = run([checkpoint, data, "--size", "16", "--n", "6", "--seed", "1",
                     "--truncation", "0.5"])
    names, _ = parse_table(capsys.readouterr().out.split("lower is better")[-1])
    assert names == ["generated (psi 0.5) vs real"]
    assert truncated["columns"][names[0]] != plain["columns"]["generated vs real"]


def test_untrained_adds_a_fresh_generator_of_the_same_architecture(checkpoint, data, capsys,
                                                                   monkeypatch):
    argv = [checkpoint, data, "--size", "16", "--n", "8", "--seed", "3"]
    plain = run(argv)
    built = []
    original = evaluate.untrained_generator
    monkeypatch.setattr(evaluate, "untrained_generator",
                        lambda info, seed: built.append(original(info, seed)) or built[-1])
    both = run(argv + ["--untrained"])
    names, rows = parse_table(capsys.readouterr().out.split("lower is better")[-1])
    assert names == ["generated vs real", "untrained vs real"]
    # the trained column is the same with or without the extra one
    assert both["columns"]["generated vs real"] == plain["columns"]["generated vs real"]
    assert both["columns"]["untrained vs real"] != plain["columns"]["generated vs real"]
    [fresh] = built
    saved = jt.load(checkpoint)
    shapes = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in saved.items()}
    assert not np.allclose(fresh.state_dict()["style.1.linear.weight_orig"].numpy(),
                           saved["style.1.linear.weight_orig"])
    with pytest.raises(evaluate.UsageError, match="--untrained needs a checkpoint"):
        run([data, "--real-vs-real", "--untrained", "--size", "16"])


def test_bad_flags_and_folders_fail_with_one_line_naming_them(checkpoint, data, tmp_path):
    trained_to_16 = str(tmp_path / "training.model")  # a training checkpoint that reached 16 px
    state = jt.load(checkpoint)
    atomic_save(dict(generator=state, discriminator={}, g_running=state, g_optimizer={},
                     d_optimizer={}, step=2, alpha=1.0, used_sample=0, iteration=0, args={}),
                trained_to_16)
    cases = [
        ([trained_to_16, data, "--size", "32"], "its training reached 16 px"),
        ([data, "--size", "32"], "a checkpoint is needed"),
        ([checkpoint, data, "--size", "8"], "--size"),
        ([checkpoint, data, "--size", "32", "--n", "0"], "--n must be at least 1"),
        ([checkpoint, str(tmp_path / "nowhere"), "--size", "32"], "nowhere"),
        ([checkpoint, data, "--size", "64"], os.path.join(data, "64")),
        ([os.path.join(data, "32", "00000.png"), data, "--size", "32"],
         "not a checkpoint: a PNG image"),
    ]
    for argv, message in cases:
        with pytest.raises((evaluate.EvaluateError, evaluate.UsageError)) as error:
            run(argv)
        assert message in str(error.value) and "\n" not in str(error.value)
    one = tmp_path / "one"
    os.makedirs(one / "16")
    Image.new("RGB", (16, 16)).save(one / "16" / "a.png")
    with pytest.raises(evaluate.EvaluateError, match="at least 2 images, the folder holds 1"):
        run([str(one), "--real-vs-real", "--size", "16"])


def test_command_line_prints_errors_as_one_line_and_help_explains_every_flag(tmp_path):
    completed = subprocess.run([sys.executable, "evaluate.py", str(tmp_path), "--real-vs-real",
                                "--size", "32"], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 1 and completed.stdout == ""
    assert completed.stderr.startswith("evaluate.py: error: ")
    assert len(completed.stderr.strip().splitlines()) == 1
    help_text = evaluate.build_parser().format_help()
    for flag in ("CKPT", "DATA", "--size", "--n", "--real-vs-real", "--seed", "--batch",
                 "--truncation", "--untrained", "--directions", "--repeats"):
        assert flag in help_text
    assert "run folder" in help_text and "swd.csv" in help_text and "curves.png" in help_text


# --- a training run's folder: every checkpoint scored ---------------------------------------------

RUN_ITERATIONS = 6       # phase 8, batch 4: iterations 1-5 at 8 px, iteration 6 at 16 px
RUN_SAVE_EVERY = 3       # checkpoints 000003.model (8 px) and 000006.model (16 px)
RUN_BATCH = 4


@pytest.fixture(scope="module")
def tiny_run(data, tmp_path_factory):
    """A real train.py run (width 16) on the disc images, 8 -> 16 px, two checkpoints."""
    from train import TrainConfig, train
    root = tmp_path_factory.mktemp("run_data")
    for size in (8, 16):
        os.makedirs(root / str(size))
        for name in sorted(os.listdir(os.path.join(data, "16")))[:16]:
            with Image.open(os.path.join(data, "16", name)) as image:
                image.resize((size, size), Image.LANCZOS).save(root / str(size) / name)
    out = str(tmp_path_factory.mktemp("run"))
    train(TrainConfig(path=str(root), init_size=8, max_size=16, phase=8, batch=RUN_BATCH,
                      code_dim=8, n_mlp=2, width=16, seed=0, out=out, iter=RUN_ITERATIONS,
                      save_every=RUN_SAVE_EVERY, sample_every=100))
    return out


def test_run_folder_gives_one_row_per_checkpoint_equal_to_scoring_each_alone(tiny_run, data,
                                                                            capsys):
    flags = ["--size", "16", "--n", "16", "--batch", "8", "--seed", "4"]
    result = run([tiny_run, data, "--real-vs-real"] + flags)
    out = capsys.readouterr().out
    rows = result["rows"]
    assert [row["iteration"] for row in rows] == [3, 6]
    assert [row["size"] for row in rows] == [8, 16]
    assert [row["images_seen"] for row in rows] == [3 * RUN_BATCH, 6 * RUN_BATCH]
    assert result["levels"] == [16] and result["n"] == 16

    # the 16 px checkpoint: the same numbers as evaluate.py CKPT DATA gives for it alone
    latest = os.path.join(tiny_run, "checkpoint", "000006.model")
    alone = run([latest, data, "--real-vs-real"] + flags)["columns"]["generated vs real"]
    assert rows[1]["swd"] == alone
    # the floor: as evaluate.py DATA --real-vs-real alone
    floor = run([data, "--real-vs-real"] + flags)["columns"]["real vs real"]
    assert result["references"] == {"real vs real": {"swd": floor}}
    # the 8 px checkpoint: its 8 px images, each pixel repeated to 16 px, scored alone
    folder = os.path.join(data, "16")
    files = sorted(os.listdir(folder))
    order = np.random.default_rng(4).permutation(len(files))
    real = np.stack([np.asarray(Image.open(os.path.join(folder, files[i]))).transpose(2, 0, 1)
                     for i in order[:16]])
    generator = StyledGenerator(code_dim=8, n_mlp=2, width=16)
    generator.load_state_dict(jt.load(os.path.join(tiny_run, "checkpoint", "000003.model")))
    generator.eval()
    jt.set_global_seed(4)
    with jt.no_grad():
        small = evaluate.to_pixels(generator(jt.randn(8, 8), step=1, alpha=1).numpy())
        small = np.concatenate([small, evaluate.to_pixels(
            generator(jt.randn(8, 8), step=1, alpha=1).numpy())])
    assert small.shape == (16, 3, 8, 8)
    levels, average = swd.swd(real, small.repeat(2, axis=2).repeat(2, axis=3), seed=4)
    assert rows[0]["swd"] == pytest.approx(levels + [average], rel=1e-12)
    assert rows[0]["swd"] != rows[1]["swd"]

    # RUN/swd.csv holds the same rows; stdout the same table
    with open(os.path.join(tiny_run, "swd.csv"), newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["iteration", "images_seen", "size", "swd_16px", "swd_average"]
    assert [line[:3] for line in table[1:]] == [["3", "12", "8"], ["6", "24", "16"]]
    for line, row in zip(table[1:], rows):
        assert [float(v) for v in line[3:]] == pytest.approx(row["swd"], abs=6e-5)
    assert f"| 6 | 24 | 16 px | {rows[1]['swd'][0]:.4f} | {rows[1]['swd'][1]:.4f} |" in out
    assert result["table"] == os.path.join(tiny_run, "swd.csv")

    # RUN/curves.png: two panels (losses, SWD) Pillow can read, with the curves drawn in colour
    assert result["plot"] == os.path.join(tiny_run, "curves.png")
    with Image.open(result["plot"]) as picture:
        picture.verify()
    with Image.open(result["plot"]) as picture:
        assert picture.format == "PNG" and picture.size == (900, 640)
        pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in pixels}
    assert (31, 119, 180) in colours and (214, 39, 40) in colours   # G and D loss, 16 px SWD


def test_run_folder_without_checkpoints_or_log_fails_with_one_line(tiny_run, data, tmp_path):
    empty = tmp_path / "empty"
    os.makedirs(empty / "checkpoint")
    no_log = tmp_path / "no_log"
    os.makedirs(no_log / "checkpoint")
    with open(os.path.join(tiny_run, "checkpoint", "000003.model"), "rb") as f:
        (no_log / "checkpoint" / "000003.model").write_bytes(f.read())
    cases = [(tmp_path, "a folder without checkpoint/"),
             (empty, "no NNNNNN.model checkpoints"),
             (no_log, os.path.join(str(no_log), "log.csv"))]
    for folder, message in cases:
        with pytest.raises(evaluate.EvaluateError) as error:
            run([str(folder), data, "--size", "16"])
        assert message in str(error.value) and "\n" not in str(error.value)


# --- FID and KID: pytorch-fid's Inception on seeded weights (test_fid.py checks the network) ------

def fid_flags(weights, cache):
    return ["--inception", weights, "--cache", str(cache), "--fid_batch", "4"]


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    from test_fid import seeded_weight_file
    return seeded_weight_file(tmp_path_factory.mktemp("inception"))


def test_fid_without_the_weight_file_says_where_to_get_it_before_any_work(checkpoint, data,
                                                                         tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = str(tmp_path / "torch" / "hub" / "checkpoints" /
                   "pt_inception-2015-12-05-6726825d.pth")
    monkeypatch.setattr(evaluate, "generate_images", lambda *a, **k: pytest.fail("generated"))
    for argv in ([checkpoint, data, "--metric", "fid"],
                 [checkpoint, data, "--metric", "swd,kid", "--inception", "nowhere.pth"]):
        with pytest.raises(evaluate.EvaluateError) as error:
            run(argv + ["--size", "16"])
        message = str(error.value)
        assert "\n" not in message and "--inception FILE" in message
        assert "github.com/mseitzer/pytorch-fid/releases" in message
        assert (expected if "--inception" not in argv else "nowhere.pth") in message
    with pytest.raises(evaluate.UsageError, match="'fd' is not one of swd, fid, kid"):
        run([checkpoint, data, "--metric", "fd"])


@pytest.mark.slow
def test_fid_and_kid_of_a_checkpoint_with_the_real_features_cached_under_their_key(
        checkpoint, data, inception_weights, tmp_path, capsys):
    from metrics import fid, inception
    cache = tmp_path / "cache"
    argv = [checkpoint, data, "--size", "16", "--n", "5", "--seed", "2", "--metric", "fid,kid",
            "--kid_subsets", "3"] + fid_flags(inception_weights, cache)
    result = run(argv)
    captured = capsys.readouterr()
    assert "both sets scored at 16 px" in captured.out and "SWD" not in captured.out
    assert "| FID |" in captured.out and "| KID x 1e3 |" in captured.out
    scores = result["scores"]["generated vs real"]
    # by hand: the same real images and generated images through the network, then the formulas
    folder = os.path.join(data, "16")
    files = sorted(os.listdir(folder))
    order = np.random.default_rng(2).permutation(len(files))
    real = np.stack([np.asarray(Image.open(os.path.join(folder, files[i]))).transpose(2, 0, 1)
                     for i in order[:5]])
    generator = StyledGenerator(code_dim=8, n_mlp=2, width=8)
    generator.load_state_dict(jt.load(checkpoint))
    generator.eval()
    jt.set_global_seed(2)
    generated = evaluate.generate_images(generator, 2, 5, evaluate.DEFAULT_BATCH)
    model = inception.load_weights(inception_weights)
    real_features = inception.features(model, real)
    fake_features = inception.features(model, generated)
    assert scores["fid"] == pytest.approx(fid.fid(real_features, fake_features).distance,
                                          rel=1e-5)
    kid = fid.kid(real_features, fake_features, 3, 1000, seed=2)
    assert scores["kid"][0] == pytest.approx(kid.mean * 1e3, rel=1e-4, abs=1e-6)
    assert "sets of 5 images, no more than the 2048 features" in captured.err
    assert "from the cache" not in captured.err

    # the second run reads the real features from the cache and gives the same numbers
    assert run(argv)["scores"] == result["scores"]
    assert "real features from the cache" in capsys.readouterr().err
    # a touched image file changes the key: recomputed, said, same numbers (same pixels)
    os.utime(os.path.join(folder, files[0]), ns=(1, 1))
    assert run(argv)["scores"] == result["scores"]
    assert "computed for another files; recomputing" in capsys.readouterr().err
    # another --n is another key too
    run(argv[:4] + ["--n", "4"] + argv[6:])
    assert "computed for another n; recomputing" in capsys.readouterr().err


@pytest.mark.slow
def test_fid_over_a_run_and_between_two_image_folders(tiny_run, data, inception_weights,
                                                       tmp_path, capsys):
    flags = ["--size", "16", "--n", "4", "--seed", "4", "--metric", "swd,fid"]
    result = run([tiny_run, data] + flags + fid_flags(inception_weights, tmp_path / "c"))
    out = capsys.readouterr().out
    assert "| iteration | images seen | size | SWD 16 px | SWD average | FID (16 px) |" in out
    with open(os.path.join(tiny_run, "fid.csv"), newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["iteration", "images_seen", "size", "fid_16px"]
    assert [float(line[3]) for line in table[1:]] == pytest.approx(
        [row["fid"] for row in result["rows"]], abs=6e-5)
    assert result["tables"]["fid"] == os.path.join(tiny_run, "fid.csv")
    with Image.open(result["plot"]) as picture:
        assert picture.size == (900, 3 * 320)       # losses, SWD, FID
    # the 16 px checkpoint alone gives the run's row
    alone = run([os.path.join(tiny_run, "checkpoint", "000006.model"), data] + flags
                + fid_flags(inception_weights, tmp_path / "c"))
    assert alone["scores"]["generated vs real"]["fid"] == pytest.approx(result["rows"][1]["fid"],
                                                                        rel=1e-9)

    # two folders: images written as files against DATA/16, as pytorch-fid compares folders
    written = tmp_path / "written"
    os.makedirs(written)
    for i, name in enumerate(sorted(os.listdir(os.path.join(data, "16")))[:6]):
        with Image.open(os.path.join(data, "16", name)) as image:
            image.save(written / f"{i}.png")
    both = run([str(written), data, "--size", "16", "--n", "6", "--metric", "fid"]
               + fid_flags(inception_weights, tmp_path / "c"))
    column, = both["scores"]
    assert column == f"{written} vs {os.path.join(data, '16')}"
    assert np.isfinite(both["scores"][column]["fid"]) and both["n"] == 6
    capsys.readouterr()


def smooth_images(folder, count, side, seed):
    """``count`` PNGs of ``side`` px, smooth colour fields (unlike noise, their features vary)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    for i in range(count):
        a, b, c = rng.uniform(0, 6, 3)
        pixels = np.stack([np.sin(a * x + b * y + c + k) for k in range(3)], axis=-1)
        Image.fromarray(((pixels + 1) * 127.5).astype(np.uint8)).save(
            os.path.join(folder, f"{i:02d}.png"))


@pytest.mark.slow
def test_two_folders_are_scored_at_their_images_own_size_as_pytorch_fid_does(
        inception_weights, tmp_path, capsys, monkeypatch):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    smooth_images(a, 6, 32, seed=1)
    smooth_images(b, 6, 32, seed=2)
    flags = ["--n", "6", "--metric", "fid"] + fid_flags(inception_weights, tmp_path / "c")
    read = []
    features = evaluate.image_features

    def spy(network, images, args, desc):
        read.append(np.array(images))
        return features(network, images, args, desc)

    monkeypatch.setattr(evaluate, "image_features", spy)
    result = run([a, b] + flags)
    out, err = capsys.readouterr()
    assert "note: scoring at the images' own size, 32 px" in err
    assert "both sets scored at 32 px" in out
    # each image read as its file's pixels, no resampling: what pytorch-fid gives its Inception
    files = {folder: np.stack([np.asarray(Image.open(os.path.join(folder, name))).transpose(2, 0, 1)
                               for name in sorted(os.listdir(folder))]) for folder in (a, b)}
    assert [images.shape for images in read] == [(6, 3, 32, 32)] * 2
    for images in read:
        assert any(sorted(map(bytes, images)) == sorted(map(bytes, own))
                   for own in files.values())
    # the number: pytorch-fid's formula (metrics/fid, test_fid) on the Inception features of the
    # files' own pixels (metrics/inception, test_fid)
    network = evaluate.load_inception(evaluate.build_parser().parse_args([a, b] + flags))
    expected = evaluate.fid.fid(*(evaluate.inception.features(network[0], files[f], 4)
                                  for f in (b, a))).distance
    column, = result["scores"]
    assert result["scores"][column]["fid"] == pytest.approx(expected, rel=1e-6)
    # at 128 px, the images are enlarged twice (32 -> 128 -> 299): another number
    at_128 = run([a, b, "--size", "128"] + flags)
    assert at_128["scores"][column]["fid"] != pytest.approx(expected, rel=1e-3)
    capsys.readouterr()
    # folders that share no size: one line naming both and --size, exit 2
    smooth_images(str(tmp_path / "c48"), 3, 48, seed=3)
    done = subprocess.run([sys.executable, "evaluate.py", a, str(tmp_path / "c48")] + flags,
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        f"{a} holds 32x32; {tmp_path / 'c48'} holds 48x48: give --size to score both folders at "
        f"one size (pytorch-fid scores two folders at their images' own size; these are not "
        f"squares of one size)")

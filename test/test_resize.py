"""resize.py on small image folders written here: sizes, names, pixels, colour modes, re-runs."""
import hashlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import resize
from runtime.cli import UsageError
from files import images, resizing
from resize import resize_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_SIZE = 32


def random_rgb(rng, height, width):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def lanczos(array_or_image, size):
    """PIL's own LANCZOS resize of an RGB array (or image), as a uint8 array."""
    img = array_or_image
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img, "RGB")
    return np.asarray(img.resize((size, size), Image.LANCZOS))


def read(path):
    with Image.open(path) as img:
        return img.mode, img.size, np.asarray(img.convert("RGB"))


def folder_digest(folder):
    """{name: sha1 of bytes} of every file in ``folder``."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.fixture
def rgb_folder(tmp_path):
    """tmp/32 with three random RGB PNGs; returns (folder, {name: pixels})."""
    rng = np.random.default_rng(0)
    folder = tmp_path / str(SOURCE_SIZE)
    folder.mkdir()
    pixels = {}
    for i in range(3):
        name = f"img{i}.png"
        pixels[name] = random_rgb(rng, SOURCE_SIZE, SOURCE_SIZE)
        Image.fromarray(pixels[name]).save(folder / name)
    return folder, pixels


def test_writes_each_power_of_two_below_source_under_the_same_names(rgb_folder):
    folder, pixels = rgb_folder
    summary = resize_folder(str(folder), min_size=4, workers=1, progress=False)
    parent = folder.parent
    assert sorted(os.listdir(parent), key=int) == ["4", "8", "16", "32"]
    assert summary.sizes == [4, 8, 16]
    assert (summary.images, summary.written, summary.skipped, summary.unreadable) == (3, 9, 0, 0)
    for size in (4, 8, 16):
        assert sorted(os.listdir(parent / str(size))) == sorted(pixels)
        for name in pixels:
            mode, shape, _ = read(parent / str(size) / name)
            assert (mode, shape) == ("RGB", (size, size))


def test_pixels_equal_pil_lanczos_from_the_source_at_every_size(rgb_folder):
    folder, pixels = rgb_folder
    resize_folder(str(folder), min_size=4, workers=1, progress=False)
    for size in (4, 8, 16):
        for name, source in pixels.items():
            _, _, out = read(folder.parent / str(size) / name)
            np.testing.assert_array_equal(out, lanczos(source, size))


def test_parallel_workers_write_the_same_files_as_one(tmp_path, rgb_folder):
    folder, _ = rgb_folder
    resize_folder(str(folder), min_size=8, workers=1, progress=False)
    one = {size: folder_digest(folder.parent / str(size)) for size in (8, 16)}
    for size in (8, 16):
        for name in os.listdir(folder.parent / str(size)):
            os.remove(folder.parent / str(size) / name)
    summary = resize_folder(str(folder), min_size=8, workers=2, progress=False)
    assert summary.written == 6
    assert {size: folder_digest(folder.parent / str(size)) for size in (8, 16)} == one


def test_rgba_is_composited_on_white(tmp_path):
    folder = tmp_path / "32"
    folder.mkdir()
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[:, :16] = (255, 0, 0, 255)  # opaque red
    rgba[:, 16:24] = (0, 0, 255, 0)  # fully transparent blue: must become white
    rgba[:, 24:] = (0, 0, 0, 128)  # half-transparent black: grey
    Image.fromarray(rgba, "RGBA").save(folder / "a.png")
    resize_folder(str(folder), min_size=16, workers=1, progress=False)

    alpha = rgba[..., 3:].astype(np.float64) / 255
    expected_rgb = np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    assert tuple(expected_rgb[0, 20]) == (255, 255, 255)
    _, _, out = read(folder.parent / "16" / "a.png")
    np.testing.assert_allclose(out, lanczos(expected_rgb, 16), atol=1)
    assert tuple(out[8, 9]) == (255, 255, 255)  # inside the transparent band


def test_grayscale_palette_and_cmyk_become_rgb(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "32"
    folder.mkdir()
    gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(gray, "L").save(folder / "gray.png")
    palette_rgb = random_rgb(rng, 32, 32)
    palette = Image.fromarray(palette_rgb).quantize(16)
    palette.save(folder / "palette.png")
    cmyk = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.jpg", quality=100)
    resize_folder(str(folder), min_size=16, workers=1, progress=False)
    out_dir = folder.parent / "16"

    mode, _, out = read(out_dir / "gray.png")
    assert mode == "RGB"
    np.testing.assert_array_equal(out, lanczos(np.stack([gray] * 3, axis=-1), 16))

    mode, _, out = read(out_dir / "palette.png")
    assert mode == "RGB"
    palette_pixels = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(out, lanczos(palette_pixels, 16))

    with Image.open(folder / "cmyk.jpg") as img:
        stored = np.asarray(img).astype(np.float64)  # CMYK as decoded from the JPEG
    # Pillow's CMYK -> RGB: (255 - C) * (255 - K) / 255, per channel
    expected = np.rint((255 - stored[..., :3]) * (255 - stored[..., 3:]) / 255).astype(np.uint8)
    mode, _, out = read(out_dir / "cmyk.jpg")
    assert mode == "RGB"
    # JPEG outputs are lossy: compare the decoded result loosely, the conversion exactly
    np.testing.assert_allclose(out, lanczos(expected, 16), atol=5)
    with Image.open(folder / "cmyk.jpg") as img:
        np.testing.assert_allclose(np.asarray(images.to_rgb(img)), expected, atol=1)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    folder = tmp_path / "32"
    folder.mkdir()
    deep = np.full((32, 32), 65535, dtype=np.uint16)
    deep[:, :16] = 257 * 100
    Image.fromarray(deep).save(folder / "deep.png")
    resize_folder(str(folder), min_size=16, workers=1, progress=False)
    _, _, out = read(folder.parent / "16" / "deep.png")
    assert out[0, 0].tolist() == [100] * 3 and out[0, 15].tolist() == [255] * 3


@pytest.mark.parametrize("width, height", [(40, 32), (32, 48)])
def test_non_square_is_centre_cropped_then_resized(tmp_path, width, height):
    rng = np.random.default_rng(2)
    folder = tmp_path / "32"
    folder.mkdir()
    pixels = random_rgb(rng, height, width)
    Image.fromarray(pixels).save(folder / "wide.png")
    resize_folder(str(folder), min_size=8, workers=1, progress=False)
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    crop = pixels[top:top + side, left:left + side]
    for size in (8, 16):
        _, shape, out = read(folder.parent / str(size) / "wide.png")
        assert shape == (size, size)
        np.testing.assert_array_equal(out, lanczos(crop, size))


def test_image_of_another_size_is_resized_straight_to_each_output(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "32"
    folder.mkdir()
    big = random_rgb(rng, 64, 64)
    Image.fromarray(big).save(folder / "big.png")
    resize_folder(str(folder), min_size=8, workers=1, progress=False)
    for size in (8, 16):
        _, _, out = read(folder.parent / str(size) / "big.png")
        np.testing.assert_array_equal(out, lanczos(big, size))


def test_accepts_every_listed_extension_in_any_case_and_ignores_others(tmp_path):
    rng = np.random.default_rng(4)
    folder = tmp_path / "16"
    folder.mkdir()
    names = ["a.png", "b.PNG", "c.jpg", "d.JPEG", "e.webp", "f.Bmp"]
    for name in names:
        Image.fromarray(random_rgb(rng, 16, 16)).save(folder / name)
    Image.fromarray(random_rgb(rng, 16, 16)).save(folder / "g.gif")
    (folder / "notes.txt").write_text("not an image")
    Image.fromarray(random_rgb(rng, 16, 16)).save(folder / ".hidden.png")
    summary = resize_folder(str(folder), min_size=8, workers=1, progress=False)
    assert summary.images == len(names)
    assert sorted(os.listdir(tmp_path / "8")) == sorted(names)
    for name in names:
        with Image.open(tmp_path / "8" / name) as img:
            expected_format = Image.registered_extensions()[os.path.splitext(name)[1].lower()]
            assert (img.format, img.mode, img.size) == (expected_format, "RGB", (8, 8))


def test_unreadable_and_truncated_files_are_skipped_and_named(tmp_path, rgb_folder, capsys):
    folder, pixels = rgb_folder
    (folder / "garbage.png").write_bytes(b"this is not a png")
    with open(folder / "img0.png", "rb") as f:
        (folder / "truncated.png").write_bytes(f.read()[:200])
    summary = resize_folder(str(folder), min_size=8, workers=1, progress=False)
    assert (summary.images, summary.unreadable, summary.written) == (5, 2, 6)
    err = capsys.readouterr().err
    assert "garbage.png" in err and "truncated.png" in err and "warning" in err
    assert sorted(os.listdir(folder.parent / "8")) == sorted(pixels)


def test_rerun_skips_up_to_date_outputs_and_never_touches_the_source(rgb_folder):
    folder, pixels = rgb_folder
    source_before = folder_digest(folder)
    resize_folder(str(folder), min_size=8, workers=1, progress=False)
    outputs = {size: folder_digest(folder.parent / str(size)) for size in (8, 16)}
    times = {p: os.stat(p).st_mtime_ns for p in (folder.parent / "8").iterdir()}

    again = resize_folder(str(folder), min_size=8, workers=1, progress=False)
    assert (again.written, again.skipped, again.unreadable) == (0, 6, 0)
    assert {p: os.stat(p).st_mtime_ns for p in (folder.parent / "8").iterdir()} == times
    assert {size: folder_digest(folder.parent / str(size)) for size in (8, 16)} == outputs
    assert folder_digest(folder) == source_before

    # a source changed after its outputs were written is redone; a smaller min_size adds 4/
    later = max(times.values()) + 10**9
    os.utime(folder / "img1.png", ns=(later, later))
    third = resize_folder(str(folder), min_size=4, workers=1, progress=False)
    assert (third.written, third.skipped) == (2 + 3, 4)
    assert folder_digest(folder) == source_before
    assert not [n for n in os.listdir(folder.parent / "8") if n.startswith(".")]  # no temp files


@pytest.mark.parametrize("make, min_size, message", [
    (lambda tmp: tmp / "nowhere" / "32", 8, "does not exist"),
    (lambda tmp: (tmp / "32").mkdir() or tmp / "32", 8, "no images in"),
    (lambda tmp: (tmp / "images").mkdir() or tmp / "images", 8, "named after its image size"),
    (lambda tmp: (tmp / "48").mkdir() or tmp / "48", 8, "named after its image size"),
    (lambda tmp: (tmp / "32").mkdir() or tmp / "32", 12, "power of two"),
    (lambda tmp: (tmp / "32").mkdir() or tmp / "32", 32, "smaller than the source size"),
])
def test_bad_input_raises_a_clear_error(tmp_path, make, min_size, message):
    with pytest.raises(UsageError, match=message):
        resize_folder(str(make(tmp_path)), min_size=min_size, workers=1, progress=False)


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "resize.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_command_line_exits_2_with_one_line_and_prints_a_summary(tmp_path, rgb_folder):
    missing = run_cli(str(tmp_path / "nowhere" / "64"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("resize.py: error:") and "does not exist" in missing.stderr

    folder, _ = rgb_folder
    done = run_cli(str(folder), "--min_size", "8", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "6 written, 0 skipped (up to date), 0 unreadable" in done.stdout
    assert sorted(os.listdir(folder.parent), key=int) == ["8", "16", "32"]


def test_pool_workers_die_of_sigterm_and_leave_ctrl_c_to_the_parent():
    """resize.py's workers must not inherit cli.run's SIGTERM handler (a worker raising inside
    the task queue's lock hung Pool.terminate and resize.py with it)."""
    import multiprocessing
    import signal
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # as cli.run installs one
    try:
        with multiprocessing.Pool(1, initializer=resizing.default_signals) as pool:
            handlers = pool.apply(_worker_handlers)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert handlers == (signal.SIG_DFL, signal.SIG_IGN)


def _worker_handlers():
    import signal
    return signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)


def test_format_lmdb_writes_every_size_up_to_the_source_into_one_database(tmp_path, rgb_folder):
    import lmdb
    folder, pixels = rgb_folder
    done = run_cli(str(folder), "--min_size", "8", "--format", "lmdb", "--workers", "2")
    assert done.returncode == 0, done.stderr
    out = str(folder.parent) + ".lmdb"
    assert f"3 images -> {out} (sizes 8, 16, 32): 9 written" in done.stdout
    with lmdb.open(out, readonly=True, lock=False) as env, env.begin() as txn:
        assert txn.get(b"length") == b"3"
        for index, name in enumerate(sorted(pixels)):
            for size in (8, 16, 32):
                with Image.open(io.BytesIO(txn.get(f"{size}-{index:05d}".encode()))) as img:
                    got = np.asarray(img).astype(int)
                want = pixels[name] if size == 32 else lanczos(pixels[name], size)
                assert img.format == "JPEG" and np.abs(got - want).max() <= 8
    assert sorted(os.listdir(folder.parent)) == ["32"]  # no folders written


@pytest.mark.parametrize("args, message", [
    (("--out", "x.lmdb"), "--out is for --format lmdb"),
    (("--format", "tar"), "invalid choice: 'tar'"),
])
def test_format_flags_are_checked(rgb_folder, args, message):
    folder, _ = rgb_folder
    run = run_cli(str(folder), *args)
    last = run.stderr.strip().split("\n")[-1]  # argparse prints its usage lines first
    assert run.returncode == 2 and last.startswith("resize.py: error:") and message in last

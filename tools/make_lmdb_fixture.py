"""Make the LMDB fixtures: the PyTorch original's own code writes one LMDB and reads another.

    python -m tools.make_lmdb_fixture --torch_python /tmp/torchenv/bin/python \\
        --original /tmp/style-based-gan-pytorch

``--original`` is a checkout of rosinality/style-based-gan-pytorch (its ``prepare_data.py`` and
``dataset.py``); ``--torch_python`` a throwaway Python with what they import (torch,
torchvision, lmdb, tqdm, pillow). This tool runs itself under that Python for the original's
side and writes:

* ``test/fixtures/prepare_data.lmdb/data.mdb``: the original's ``prepare()`` (the code path of
  its ``prepare_data.py``, sizes 8, 16 and 32) over ``fixture_images()``;
* ``test/fixtures/lmdb_expected.json``: for that LMDB, and for the LMDB that ``resize.py
  --format lmdb`` writes from ``reverse_images()``, what the original's
  ``MultiResolutionDataset`` reads at every key with its training transform (ToTensor,
  Normalize(0.5, 0.5)): the SHA-256 of the float32 (3, H, W) array and of its uint8 pixels.

test/test_lmdb_zip.py reads the first LMDB here and compares with those values, and makes the
second LMDB again with resize.py and compares with what the original read of it.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "test", "fixtures")
LMDB_FIXTURE = os.path.join(FIXTURES, "prepare_data.lmdb")
EXPECTED = os.path.join(FIXTURES, "lmdb_expected.json")
SIZES = (8, 16, 32)
REVERSE_SIZE = 32


def pattern(height, width, seed, channels=3):
    """A uint8 (height, width, channels) picture from integer arithmetic alone (no random
    generator, so every numpy gives the same): gradients, stripes and a checker."""
    import numpy as np
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * (3 + seed) + y * (5 + 2 * c) + 37 * seed * c) % 256 for c in range(channels)]
    planes[0] = np.where(((x // 4) + (y // 4)) % 2 == 0, planes[0], 255 - planes[0])
    return np.stack(planes, axis=-1).astype(np.uint8)


def fixture_images(folder):
    """The original's input: five images of several shapes and modes, under ``folder/images``
    (torchvision's ImageFolder wants a class folder)."""
    from PIL import Image
    out = os.path.join(folder, "images")
    os.makedirs(out)
    Image.fromarray(pattern(40, 40, 0)).save(os.path.join(out, "a_square.png"))
    Image.fromarray(pattern(48, 64, 1)).save(os.path.join(out, "b_wide.png"))
    Image.fromarray(pattern(70, 50, 2)).save(os.path.join(out, "c_tall.png"))
    Image.fromarray(pattern(36, 36, 3, 1)[..., 0], "L").save(os.path.join(out, "d_gray.png"))
    Image.fromarray(pattern(33, 33, 4)).save(os.path.join(out, "e_odd.jpg"), quality=95)
    return folder


def reverse_images(folder):
    """resize.py's input: ``folder/32`` with four 32 px images."""
    from PIL import Image
    out = os.path.join(folder, str(REVERSE_SIZE))
    os.makedirs(out)
    for i in range(4):
        Image.fromarray(pattern(REVERSE_SIZE, REVERSE_SIZE, 5 + i)).save(
            os.path.join(out, f"img{i}.png"))
    return out


def digest(array):
    import numpy as np
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def original_prepare(original, images, out):
    """Under the throwaway Python: the original's prepare_data.py code path, sizes SIZES."""
    import lmdb
    from torchvision import datasets
    sys.path.insert(0, original)
    import prepare_data
    imgset = datasets.ImageFolder(images)
    with lmdb.open(out, map_size=1024 ** 4, readahead=False) as env:
        with env.begin(write=True) as txn:
            prepare_data.prepare(txn, imgset, 1, sizes=SIZES)


def original_read(original, path):
    """Under the throwaway Python: what the original's MultiResolutionDataset gives at every
    size and index, as digests."""
    import numpy as np
    from torchvision import transforms
    sys.path.insert(0, original)
    from dataset import MultiResolutionDataset
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    values = {}
    data = MultiResolutionDataset(path, transform, resolution=SIZES[0])
    for size in SIZES:
        data.resolution = size  # how the original's train.py moves to the next size
        for index in range(len(data)):
            tensor = data[index].numpy().astype(np.float32)
            pixels = np.rint((tensor * 0.5 + 0.5) * 255).astype(np.uint8).transpose(1, 2, 0)
            values[f"{size}-{index:05d}"] = {"shape": list(tensor.shape),
                                             "tensor_sha256": digest(tensor),
                                             "pixels_sha256": digest(pixels)}
    return {"length": len(data), "keys": values}


def run_original(torch_python, *args):
    run = subprocess.run([torch_python, os.path.abspath(__file__), "--side", *args],
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"make_lmdb_fixture.py: the original's side failed:\n{run.stderr}")
    return run.stdout


def main(args):
    import PIL
    with tempfile.TemporaryDirectory() as tmp:
        made = os.path.join(tmp, "prepare_data.lmdb")
        run_original(args.torch_python, "prepare", args.original,
                     fixture_images(os.path.join(tmp, "original")), made)
        forward = json.loads(run_original(args.torch_python, "read", args.original, made))

        source = reverse_images(os.path.join(tmp, "reverse"))
        written = os.path.join(tmp, "resize.lmdb")
        subprocess.run([sys.executable, os.path.join(ROOT, "resize.py"), source, "--min_size",
                        str(min(SIZES)), "--format", "lmdb", "--out", written, "--quiet",
                        "--workers", "1"], check=True)
        reverse = json.loads(run_original(args.torch_python, "read", args.original, written))

        shutil.rmtree(LMDB_FIXTURE, ignore_errors=True)
        os.makedirs(LMDB_FIXTURE)
        shutil.copy(os.path.join(made, "data.mdb"), LMDB_FIXTURE)  # lock.mdb: readers need none
    versions = json.loads(run_original(args.torch_python, "versions", args.original))
    versions["commit"] = versions["commit"] or args.original_commit
    expected = {"made_by": "python -m tools.make_lmdb_fixture", "original": versions,
                "resize_py_pillow": PIL.__version__, "sizes": list(SIZES),
                "prepare_data": forward, "resize_lmdb": reverse}
    with open(EXPECTED, "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"make_lmdb_fixture.py: wrote {LMDB_FIXTURE}/data.mdb "
          f"({os.path.getsize(os.path.join(LMDB_FIXTURE, 'data.mdb'))} bytes) and {EXPECTED}")


def side(argv):
    """The original's side, under the throwaway Python."""
    what, original, *rest = argv
    if what == "prepare":
        original_prepare(original, *rest)
    elif what == "read":
        print(json.dumps(original_read(original, *rest)))
    else:
        import PIL
        import torch
        import torchvision
        commit = subprocess.run(["git", "-C", original, "rev-parse", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                          "pillow": PIL.__version__, "commit": commit or None}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--side"]:
        side(sys.argv[2:])
        sys.exit(0)
    parser = argparse.ArgumentParser(prog="make_lmdb_fixture.py", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--torch_python", required=True,
                        help="a Python with torch, torchvision, lmdb, tqdm and pillow")
    parser.add_argument("--original", required=True,
                        help="a checkout of rosinality/style-based-gan-pytorch")
    parser.add_argument("--original_commit", default=None,
                        help="its commit, recorded in the JSON when --original is no git "
                             "checkout")
    main(parser.parse_args())

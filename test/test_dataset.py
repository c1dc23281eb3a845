"""dataset.py: values like the reference transform, Jittor batching/workers/MPI, clear errors."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import jittor as jt
import jittor.dataset.dataset as jittor_dataset_module

from dataset import DatasetError, MultiResolutionDataset, check_resolutions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_IMAGES = 6
CODE_STEP = 40  # image i is filled with red = i * CODE_STEP, so a batch tells which images


def reference_transform(pixels, flip=False):
    """ToTensor then Normalize((0.5,)*3, (0.5,)*3), computed independently of dataset.py."""
    x = pixels[:, ::-1] if flip else pixels
    x = x.astype(np.float32) / np.float32(255)
    return ((x - np.float32(0.5)) / np.float32(0.5)).transpose(2, 0, 1)


def image_ids(batch):
    """The index of each image of a batch of coded images (see CODE_STEP)."""
    red = (np.asarray(batch)[:, 0, 0, 0] + 1) * 127.5
    return [int(round(v / CODE_STEP)) for v in red]


@pytest.fixture
def data_root(tmp_path):
    """tmp/8 and tmp/16 with N_IMAGES images each: random pixels, with extremes 0 and 255."""
    rng = np.random.default_rng(0)
    pixels = {}
    for size in (8, 16):
        folder = tmp_path / str(size)
        folder.mkdir()
        for i in range(N_IMAGES):
            p = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            p[0, 0], p[0, 1] = (0, 0, 0), (255, 255, 255)
            Image.fromarray(p).save(folder / f"img{i}.png")
            pixels[size, i] = p
    return tmp_path, pixels


@pytest.fixture
def coded_root(tmp_path):
    """tmp/8 holding 7 flat images, image i of red i * CODE_STEP."""
    folder = tmp_path / "8"
    folder.mkdir()
    for i in range(7):
        Image.new("RGB", (8, 8), (i * CODE_STEP, 0, 0)).save(folder / f"im{i}.png")
    return tmp_path


def test_item_is_float32_chw_equal_to_the_reference_transform(data_root):
    root, pixels = data_root
    ds = MultiResolutionDataset(str(root), resolution=8, flip=False)
    assert ds.num_images == N_IMAGES
    for i in range(N_IMAGES):
        item = ds[i]
        assert item.dtype == np.float32 and item.shape == (3, 8, 8)
        np.testing.assert_array_equal(item, reference_transform(pixels[8, i]))
        assert item.min() == -1.0 and item.max() == 1.0


def test_flip_mirrors_left_right_about_half_the_time(data_root):
    root, pixels = data_root
    ds = MultiResolutionDataset(str(root), resolution=8, flip=True)
    np.random.seed(0)
    flipped = 0
    draws = 200
    for _ in range(draws):
        item = ds[2]
        if np.array_equal(item, reference_transform(pixels[8, 2], flip=True)):
            flipped += 1
        else:
            np.testing.assert_array_equal(item, reference_transform(pixels[8, 2]))
    assert 0.35 * draws < flipped < 0.65 * draws


def test_set_resolution_switches_folder_and_batch_shape(data_root):
    root, pixels = data_root
    ds = MultiResolutionDataset(str(root), resolution=8, flip=False, batch_size=4)
    assert [tuple(b.shape) for b in ds] == [(4, 3, 8, 8), (2, 3, 8, 8)]
    assert ds.set_resolution(16) is ds
    batches = list(ds)
    assert [tuple(b.shape) for b in batches] == [(4, 3, 16, 16), (2, 3, 16, 16)]
    np.testing.assert_array_equal(batches[0].numpy()[1], reference_transform(pixels[16, 1]))


def test_batches_are_jittor_float32_and_drop_last_drops_the_short_one(data_root):
    root, _ = data_root
    ds = MultiResolutionDataset(str(root), resolution=8, batch_size=4, drop_last=True)
    batches = list(ds)
    assert len(ds) == len(batches) == 1  # Jittor's len: batches per epoch
    assert isinstance(batches[0], jt.Var) and batches[0].dtype == "float32"
    assert tuple(batches[0].shape) == (4, 3, 8, 8)


def test_shuffle_visits_every_image_once_per_epoch_in_a_new_order(coded_root):
    ds = MultiResolutionDataset(str(coded_root), resolution=8, flip=False, batch_size=3,
                                shuffle=True)
    orders = [sum((image_ids(b.numpy()) for b in ds), []) for _ in range(3)]
    for order in orders:
        assert sorted(order) == list(range(7))
    assert any(order != list(range(7)) for order in orders)
    assert len({tuple(order) for order in orders}) > 1


def test_worker_processes_give_the_same_batches_and_follow_a_resolution_switch(data_root):
    root, pixels = data_root
    plain = MultiResolutionDataset(str(root), resolution=8, flip=False, batch_size=4)
    workers = MultiResolutionDataset(str(root), resolution=8, flip=False, batch_size=4,
                                     num_workers=2)
    try:
        for a, b in zip(plain, workers):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        workers.set_resolution(16)
        batches = [b.numpy() for b in workers]
        assert [b.shape for b in batches] == [(4, 3, 16, 16), (2, 3, 16, 16)]
        np.testing.assert_array_equal(batches[1][0], reference_transform(pixels[16, 4]))
    finally:
        workers.terminate()


class FakeMPI:
    """What jittor.dataset reads of jt.mpi: this process's rank among ``world`` ranks."""

    def __init__(self, rank, world):
        self.rank, self.world = rank, world

    def world_rank(self):
        return self.rank

    def world_size(self):
        return self.world


def shards(root, world, **attrs):
    """What each of ``world`` MPI ranks receives, as image ids per batch (MPI simulated)."""
    seen = []
    for rank in range(world):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(jt, "in_mpi", True)
            patch.setattr(jittor_dataset_module, "mpi", FakeMPI(rank, world))
            ds = MultiResolutionDataset(str(root), resolution=8, flip=False, shuffle=True,
                                        **attrs)
            seen.append([image_ids(b.numpy()) for b in ds])
    return seen


def test_mpi_ranks_get_disjoint_shares_of_each_shuffled_batch(coded_root):
    # 7 images, global batch 4 on 2 ranks: each rank gets 2 of every full batch
    (rank0,), (rank1,) = shards(coded_root, 2, batch_size=4, drop_last=True)
    assert len(rank0) == len(rank1) == 2 and not set(rank0) & set(rank1)

    rank0, rank1 = shards(coded_root, 2, batch_size=4, drop_last=False)
    assert [len(b) for b in rank0] == [len(b) for b in rank1] == [2, 2]
    assert not set(rank0[0]) & set(rank1[0])
    # Jittor pads the short last batch (3 images) to 2 per rank, so one image is on both
    assert len(set(rank0[1]) | set(rank1[1])) == 3
    assert set(sum(rank0 + rank1, [])) == set(range(7))


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="OpenMPI's mpirun is not installed")
def test_real_mpirun_ranks_share_every_image_without_overlap(coded_root, tmp_path):
    # Each rank writes its own file: mpirun forwards the ranks' stdout through one pipe and
    # once joined two ranks' lines into one (seen in CI), so stdout is not parsed.
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from runtime.jittor_setup import setup; jt = setup()\n"
        "from dataset import MultiResolutionDataset\n"
        "ds = MultiResolutionDataset(sys.argv[2], resolution=8, flip=False, batch_size=2,"
        " shuffle=True)\n"
        "ids = [round((v + 1) * 127.5 / %d) for b in ds for v in b.numpy()[:, 0, 0, 0]]\n"
        "line = ' '.join(map(str, ['RANK', jt.rank, jt.world_size] + ids))\n"
        "open('%%s/rank%%d.txt' %% (sys.argv[3], jt.rank), 'w').write(line)\n"
    ) % CODE_STEP
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    run = subprocess.run(["mpirun", "-np", "2", sys.executable, "-c", script, ROOT,
                          str(coded_root), str(tmp_path)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = sorted(p.read_text().split() for p in tmp_path.glob("rank*.txt"))
    assert [line[1:3] for line in lines] == [["0", "2"], ["1", "2"]]
    ids = [list(map(int, line[3:])) for line in lines]
    # 7 images in global batches of 2: one image per rank per batch; the last, single image
    # is given to both ranks (Jittor pads a short last batch)
    assert len(ids[0]) == len(ids[1]) == 4
    assert not set(ids[0][:3]) & set(ids[1][:3])
    assert set(ids[0]) | set(ids[1]) == set(range(7))


def test_loader_workers_outlive_a_sigterm_from_others_and_end_by_their_parents(coded_root):
    """A SIGTERM to the whole process group (timeout, scancel) reaches the loader workers too;
    one that died of it could leave the training process waiting for its batch forever. The
    workers ignore a SIGTERM from anyone but their parent, and end by the parent's."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from runtime.jittor_setup import setup; setup()\n"
        "from dataset import MultiResolutionDataset\n"
        "ds = MultiResolutionDataset(sys.argv[2], resolution=8, flip=False, batch_size=2,"
        " num_workers=2, endless=True)\n"
        "batches = iter(ds); next(batches)\n"
        "print(*[w.p.pid for w in ds.workers], flush=True)\n"
        "sys.stdin.readline()  # meanwhile the test sends SIGTERM to the workers\n"
        "print('BATCHES', *sorted({len(next(batches)) for _ in range(10)}), flush=True)\n"
        "processes = [w.p for w in ds.workers]; ds.terminate()\n"
        "[p.join(30) for p in processes]\n"
        "print('EXITCODES', *[p.exitcode for p in processes], flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, ROOT, str(coded_root)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in child.stdout.readline().split()]
        assert len(workers) == 2, child.stderr.read() if child.poll() is not None else workers
        for pid in workers:  # from this process, not their parent
            os.kill(pid, signal.SIGTERM)
        time.sleep(1)
        for pid in workers:
            with open(f"/proc/{pid}/stat") as stat:
                assert stat.read().split(") ")[1][0] in "RS", "a worker died of the SIGTERM"
        out, err = child.communicate("go\n", timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err[-3000:]
    # ten more batches came (of 2 images, and of 1 at the end of an epoch of 7 images)
    assert out.split("\n")[0:2] == ["BATCHES 1 2", f"EXITCODES {-signal.SIGTERM} {-signal.SIGTERM}"]


def test_missing_resolution_names_the_folder_and_the_resize_command(data_root):
    root, _ = data_root
    ds = MultiResolutionDataset(str(root), resolution=8)
    with pytest.raises(DatasetError) as err:
        ds.set_resolution(4)
    message = str(err.value)
    assert os.path.join(str(root), "4") in message
    assert f"python resize.py {os.path.join(str(root), '16')} --min_size 4" in message
    assert ds.resolution == 8  # unchanged after the failed switch
    with pytest.raises(DatasetError, match="32"):
        MultiResolutionDataset(str(root), resolution=32)


def test_check_resolutions_names_every_missing_or_empty_folder_at_once(data_root):
    root, _ = data_root
    (root / "4").mkdir()  # empty
    check_resolutions(str(root), [8, 16])  # all there: no error
    with pytest.raises(DatasetError) as err:
        check_resolutions(str(root), [2, 4, 8, 16, 32])
    message = str(err.value)
    for size, why in ((2, "missing"), (4, "no images"), (32, "missing")):
        assert f"{os.path.join(str(root), str(size))} ({why})" in message
    assert os.path.join(str(root), "8 ") not in message
    assert f"python resize.py {os.path.join(str(root), '16')} --min_size 2" in message
    assert isinstance(err.value, ValueError)


def test_empty_root_suggests_building_a_data_set(tmp_path):
    with pytest.raises(DatasetError, match="build_emoji.py") as err:
        MultiResolutionDataset(str(tmp_path / "data"), resolution=8)
    assert os.path.join(str(tmp_path / "data"), "8") in str(err.value)


def test_source_folder_images_are_made_rgb_squares_like_resize_does(tmp_path):
    folder = tmp_path / "16"
    folder.mkdir()
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (16, 24), dtype=np.uint8)  # grayscale and not square
    Image.fromarray(gray, "L").save(folder / "g.png")
    item = MultiResolutionDataset(str(tmp_path), resolution=16, flip=False)[0]
    crop = np.stack([gray[:, 4:20]] * 3, axis=-1)
    np.testing.assert_array_equal(item, reference_transform(crop))


def test_unreadable_image_error_names_the_file(data_root):
    root, _ = data_root
    (root / "8" / "zz_broken.png").write_bytes(b"not an image")
    ds = MultiResolutionDataset(str(root), resolution=8)
    with pytest.raises(DatasetError, match="zz_broken.png"):
        ds[N_IMAGES]


def test_unknown_option_is_a_type_error(data_root):
    root, _ = data_root
    with pytest.raises(TypeError, match="batchsize"):
        MultiResolutionDataset(str(root), resolution=8, batchsize=4)

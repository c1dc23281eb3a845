"""The run folder ``--out``: what a training run writes there and which run it holds.

    OUT/checkpoint/NNNNNN.model          g_running every --save_every iterations
    OUT/checkpoint/train_step-K.model    the reference's snapshot when size K starts
    OUT/checkpoint/train_state.model     the rolling resumable checkpoint
    OUT/checkpoint/newest.txt            the name of the training checkpoint written last
    OUT/sample/NNNNNN.png                sample grids of g_running
    OUT/log.csv                          one row per iteration (LOG_COLUMNS)

``Outputs`` writes them (rank 0 only, atomically); ``run_files``, ``newest_training_checkpoint``
and ``run_differences`` tell what run a folder holds, for --resume and for refusing to write
one run over another.
"""
import csv
import os
import re
import sys

import jittor as jt

from files.atomic import atomic_write, make_folder, write_error
from files.checkpoint import CheckpointError, atomic_save, is_training_checkpoint, load_checkpoint
from files.grid import save_image_grid

CHECKPOINT_DIR = "checkpoint"
SAMPLE_DIR = "sample"
LOG_FILE = "log.csv"
TRAIN_STATE_FILE = "train_state.model"        # the rolling resumable checkpoint
NEWEST_FILE = "newest.txt"                    # names the training checkpoint written last
LOG_COLUMNS = ("iteration", "size", "alpha", "used_sample", "images", "g_loss", "d_loss",
               "grad_penalty", "images_per_sec", "seconds")

# Training arguments that define a run: a resumed run takes them from its checkpoint.
RUN_KEYS = ("init_size", "max_size", "phase", "lr", "sched", "loss", "mixing", "batch",
            "from_rgb_activate", "code_dim", "n_mlp", "width", "seed", "fade_in_initial",
            "ema_decay", "nvidia")
# Which run a folder holds: its checkpoints' names, and the options that tell one run from another
# (a snapshot's fade-in is how a run started, not which run it is).
RUN_FILE_NAMES = re.compile(r"^(train_state|train_step-\d+|\d+)\.model$")
TRAINING_CHECKPOINT_NAMES = re.compile(r"^(train_state|train_step-\d+)\.model$")
IDENTITY_KEYS = tuple(key for key in RUN_KEYS if key != "fade_in_initial")


class Outputs:
    """``out/checkpoint/``, ``out/sample/`` and ``out/log.csv``; no-ops off rank 0.

    The Jittor reference writes to a hard-coded ``FFHQ/checkpoint`` and ``FFHQ/sample``; the
    PyTorch original to ``checkpoint/`` and ``sample/`` in the working directory, which is what
    the default ``--out .`` gives.

    Every file is written atomically (``atomic.atomic_write``), so a crash or a full disk never
    leaves a partial file. A write that fails (full disk, read-only folder) does not raise: the
    first failure is kept in ``error`` (a one-line ``WriteError``) and later writes are skipped,
    so the training loop can stop every MPI process together (see ``train``)."""

    def __init__(self, out, writer=None):
        self.out = out
        self.writer = jt.rank == 0 if writer is None else writer
        self.checkpoint_dir = os.path.join(out, CHECKPOINT_DIR)
        self.sample_dir = os.path.join(out, SAMPLE_DIR)
        self.log_path = os.path.join(out, LOG_FILE)
        self._log = None
        self.error = None

    def _fail(self, path, error):
        if self.error is None:
            self.error = write_error(path, error)

    def prepare(self, resumed_iteration):
        """Create the folders; start log.csv, or on resume keep its rows up to the checkpoint."""
        if not self.writer:
            return
        try:
            for folder in (self.out, self.checkpoint_dir, self.sample_dir):
                make_folder(folder)
            rows = []
            if resumed_iteration and os.path.isfile(self.log_path):
                with open(self.log_path, newline="") as f:
                    rows = [row for row in csv.DictReader(f)
                            if row.get("iteration", "").isdigit()
                            and int(row["iteration"]) <= resumed_iteration]
            with atomic_write(self.log_path) as temporary:
                with open(temporary, "w", newline="") as f:
                    writer = csv.DictWriter(f, LOG_COLUMNS, extrasaction="ignore")
                    writer.writeheader()
                    writer.writerows(rows)
            self._log = open(self.log_path, "a", newline="")
            self._log_writer = csv.DictWriter(self._log, LOG_COLUMNS)
        except OSError as error:
            self._fail(self.log_path, error)

    def log(self, row):
        if self._log is not None and self.error is None:
            try:
                self._log_writer.writerow(row)
                self._log.flush()
            except OSError as error:
                self._fail(self.log_path, error)

    def close(self):
        if self._log is not None:
            log, self._log = self._log, None
            try:
                log.close()
            except OSError as error:
                self._fail(self.log_path, error)

    def save(self, obj, name):
        """Atomically write a checkpoint ``out/checkpoint/<name>``; returns its path, or None
        when writing it failed (then ``error`` says why and the previous file is intact).
        After a training checkpoint, ``newest.txt`` names it (see
        ``newest_training_checkpoint``)."""
        path = os.path.join(self.checkpoint_dir, name)
        if self.writer:
            if self.error is not None:
                return None
            try:
                atomic_save(obj, path)
            except OSError as error:
                self._fail(path, error)
                return None
            if TRAINING_CHECKPOINT_NAMES.match(name):
                newest = os.path.join(self.checkpoint_dir, NEWEST_FILE)
                try:
                    with atomic_write(newest) as temporary:
                        with open(temporary, "w") as f:
                            f.write(name + "\n")
                except OSError as error:
                    self._fail(newest, error)
                    try:                    # not naming an older one: --resume goes by time
                        os.remove(newest)
                    except OSError:
                        pass
        return path

    def sample(self, images, iteration, nrow):
        """Write the sample grid ``out/sample/NNNNNN.png`` (atomically)."""
        path = os.path.join(self.sample_dir, f"{iteration:06d}.png")
        if self.writer and self.error is None:
            try:
                save_image_grid(images, path, nrow=nrow)
            except OSError as error:
                self._fail(path, error)
        return path


def run_files(out):
    """The files in ``out`` that a training run wrote: ``checkpoint/*.model`` of train.py's
    names, and ``log.csv`` when it holds a row."""
    folder = os.path.join(out, CHECKPOINT_DIR)
    found = []
    if os.path.isdir(folder):
        found = [os.path.join(folder, name) for name in sorted(os.listdir(folder))
                 if RUN_FILE_NAMES.match(name)]
    log = os.path.join(out, LOG_FILE)
    try:
        with open(log, newline="") as f:
            if len(f.readline()) and len(f.readline()):
                found.append(log)
    except OSError:
        pass
    return found


def named_newest(folder):
    """The training checkpoint ``folder/newest.txt`` names, if it names one that exists (only
    train.py's own names count: the file is not trusted beyond that)."""
    try:
        with open(os.path.join(folder, NEWEST_FILE), "rb") as f:
            name = f.read(100).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    path = os.path.join(folder, name)
    return path if TRAINING_CHECKPOINT_NAMES.match(name) and os.path.isfile(path) else None


def newest_training_checkpoint(out):
    """``(path, checkpoint)``: the newest training checkpoint in ``out/checkpoint``
    (``train_state.model`` or ``train_step-K.model``) that loads; None if there is none.
    Damaged ones are passed over with a note.

    Newest is the one ``newest.txt`` names (written with each), then the others by time
    written. Not the highest iteration: a run continued with --ckpt from an earlier snapshot
    is the run to resume, not the later checkpoints it left behind. Not by time alone: a
    copied folder (``cp -r``, ``scp``, a download from a bucket after preemption) gets new
    file times in any order, and --resume would go back to an older one."""
    folder = os.path.join(out, CHECKPOINT_DIR)
    candidates = [path for path in run_files(out) if os.path.dirname(path) == folder
                  and not os.path.basename(path)[:1].isdigit()]
    by_time = sorted(candidates, key=lambda p: os.stat(p).st_mtime_ns, reverse=True)
    named = named_newest(folder)
    order = ([named] if named else []) + [p for p in by_time if p != named]
    for path in order:
        try:
            obj = load_checkpoint(path)
        except CheckpointError as error:
            if jt.rank == 0:
                print(f"train.py: note: --resume passes over {error}", file=sys.stderr)
            continue
        if is_training_checkpoint(obj) and isinstance(obj.get("args"), dict):
            return path, obj
    return None


def run_differences(config, saved):
    """How the run of a checkpoint's ``args`` (``saved``) differs from ``config``: a list of
    'key there, here' strings for the run-defining options and the data folder (the seed only
    when ``config`` has one)."""
    differences = []
    for key in IDENTITY_KEYS:
        if key == "seed" and config.seed is None:
            continue
        if key in saved and saved[key] != getattr(config, key):
            differences.append(f"{key} {saved[key]!r} there, {getattr(config, key)!r} here")
    if "path" in saved and os.path.realpath(str(saved["path"])) != os.path.realpath(config.path):
        differences.append(f"data {saved['path']} there, {config.path} here")
    return differences

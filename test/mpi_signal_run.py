"""Run by test_mpi.py under ``mpirun -np N``: train.py's command line, with a pause after each
iteration so that the test can signal the processes mid-run.

    mpirun -np 2 python3 test/mpi_signal_run.py SECONDS [train.py arguments]

Exits with train.py's exit status (``train.command_line``).
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import train  # noqa: E402
from training.trainer import Trainer  # noqa: E402


def main(seconds, *argv):
    original = Trainer.train_iteration

    def paused(trainer):
        result = original(trainer)
        time.sleep(float(seconds))
        return result

    Trainer.train_iteration = paused
    return train.command_line(list(argv))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

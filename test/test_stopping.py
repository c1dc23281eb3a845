"""Stopping a run (training.stopping): the decisions every process shares, the NaN check, the
one-line errors that name the last checkpoint, and the signal handlers of StopRequest."""
import math
import os
import signal
from types import SimpleNamespace

import pytest

import jittor as jt
from dataset import UnreadableImage
from training.stopping import (OutputFailed, StopRequest, TrainingDiverged, any_process,
                               check_finite, data_failed, mean_over_processes, output_failed)

LAST = (os.path.join("out", "checkpoint", "train_state.model"), 3)


def result(d_loss=0.5, g_loss=1.25, grad_penalty=0.01, iteration=5):
    return SimpleNamespace(d_loss=d_loss, g_loss=g_loss, grad_penalty=grad_penalty,
                           iteration=iteration)


def test_outside_mpi_each_flag_and_value_is_this_process_own():
    assert not jt.in_mpi
    assert any_process(0, 1, "", "x", None, True) == [False, True, False, True, False, True]
    assert any_process() == []
    values = mean_over_processes(jt.array(1.5), jt.array([-2.0]), jt.array(float("nan")))
    assert values[:2] == [1.5, -2.0] and math.isnan(values[2])
    assert all(isinstance(v, float) for v in values)


def test_check_finite_passes_finite_losses():
    assert check_finite(result(), LAST) is None


@pytest.mark.parametrize("losses, name, value", [
    (dict(d_loss=float("nan")), "discriminator", "nan"),
    (dict(g_loss=float("inf")), "generator", "inf"),
    (dict(grad_penalty=float("-inf")), "gradient penalty", "-inf"),
])
def test_check_finite_names_the_loss_and_the_last_checkpoint(losses, name, value):
    with pytest.raises(TrainingDiverged) as error:
        check_finite(result(**losses), LAST)
    assert str(error.value) == (
        f"iteration 5: the {name} loss is {value}; training stopped, the last checkpoint, "
        f"{LAST[0]} (iteration 3), is intact; try a lower --lr")
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet; try a lower"):
        check_finite(result(**losses), None)


def test_output_failed_says_why_and_how_to_resume():
    error = output_failed(SimpleNamespace(error="cannot write out/log.csv: No space left on "
                                                "device"), LAST)
    assert isinstance(error, OutputFailed)
    assert str(error) == (f"cannot write out/log.csv: No space left on device; training "
                          f"stopped, the last checkpoint, {LAST[0]} (iteration 3), is intact: "
                          f"resume with --resume once it can be written")
    # the other ranks do not know rank 0's reason
    assert str(output_failed(SimpleNamespace(error=None), LAST)) == (
        "rank 0 could not write its outputs (it says why); training stopped")


def test_data_failed_names_the_image_and_where_the_state_is():
    unreadable = UnreadableImage("data/16/img03.png", "cannot read data/16/img03.png (truncated)")
    saved = data_failed(unreadable, 7, "out/checkpoint/train_state.model", LAST)
    assert isinstance(saved, UnreadableImage) and saved.path == "data/16/img03.png"
    assert str(saved) == ("cannot read data/16/img03.png (truncated); training stopped, the "
                          "state after iteration 7 is saved in out/checkpoint/train_state.model: "
                          "then resume with --resume (the same command)")
    unsaved = data_failed(unreadable, 7, None, None)
    assert str(unsaved) == ("cannot read data/16/img03.png (truncated); training stopped, no "
                            "checkpoint was written yet: then resume with --resume (the same "
                            "command)")


def test_stop_request_records_the_first_signal_and_restores_the_handlers(capsys):
    def own_handler(signum, frame):
        raise AssertionError("the StopRequest's handler should have it")

    before = {s: signal.getsignal(s) for s in StopRequest.SIGNALS}
    previous_usr1 = signal.signal(signal.SIGUSR1, own_handler)
    try:
        with StopRequest() as stop:
            assert not stop.requested and stop.signum is None
            os.kill(os.getpid(), signal.SIGUSR1)
            assert stop.requested and stop.signum == signal.SIGUSR1
            os.kill(os.getpid(), signal.SIGTERM)       # a second signal: the first one is kept
            assert stop.signum == signal.SIGUSR1
        assert signal.getsignal(signal.SIGUSR1) is own_handler
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)
    assert {s: signal.getsignal(s) for s in StopRequest.SIGNALS} == before
    err = capsys.readouterr().err
    assert "SIGUSR1: saving a checkpoint after this iteration" in err
    assert "SIGTERM" not in err                        # said once, for the first signal

"""The progressive-growing schedule of the reference's ``train.py``, as a pure function.

``schedule(progress, config)`` gives the next iteration's resolution step and fade-in ``alpha``
from the images used so far (``Progress``, what a training checkpoint stores), so training,
resuming and the tests share one definition of it.
"""
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ScheduleConfig:
    init_step: int
    max_step: int
    phase: int                      # images per half phase: fade-in, then stabilisation
    fade_in_initial: bool = False


@dataclass(frozen=True)
class Progress:
    """Where training is: ``step`` (side 4 * 2**step), ``used_sample`` (images trained on at
    this step since it started), ``final_progress`` (the last size's phase is over: alpha stays
    1 for good). What a checkpoint stores."""
    step: int
    used_sample: int = 0
    final_progress: bool = False


def schedule(progress, config):
    """The reference's schedule: ``(progress, alpha, snapshot_step)`` for the next iteration.

    ``progress`` is the state after the previous iteration. As in the reference, alpha is
    min(1, (used_sample + 1) / phase), but 1 at the initial size of a fresh run and after the
    last phase; once more than 2 x phase images were used at a step, the next iteration starts
    the next step with alpha = 0 and used_sample = 0 (past ``max_step`` it stays there with
    alpha = 1, ``final_progress``). ``snapshot_step`` is then the K of the reference's
    ``train_step-K.model`` (step + 1 past the last step), else None; the caller rebuilds the data
    loader for the returned step whenever it is not None.
    """
    step, used, final = progress.step, progress.used_sample, progress.final_progress
    alpha = min(1.0, (used + 1) / config.phase)
    if (step == config.init_step and not config.fade_in_initial) or final:
        alpha = 1.0
    snapshot_step = None
    if used > 2 * config.phase:
        used, step = 0, step + 1
        if step > config.max_step:
            step, final = config.max_step, True
            snapshot_step = step + 1
        else:
            alpha = 0.0
            snapshot_step = step
    return Progress(step, used, final), alpha, snapshot_step


def advance(progress, images):
    """Progress after an iteration that trained on ``images`` real images."""
    return replace(progress, used_sample=progress.used_sample + images)

"""The progressive-growing schedule (training.schedule): resolution step and fade-in alpha from
the images used so far, as the reference's train.py computes them, and the batch and learning-rate
tables of training.config that drive it."""
from training.config import TrainConfig
from training.schedule import Progress, ScheduleConfig, advance, schedule


def test_schedule_alpha_and_step_at_given_sample_counts():
    fresh = ScheduleConfig(init_step=1, max_step=3, phase=8)
    loaded = ScheduleConfig(init_step=1, max_step=3, phase=8, fade_in_initial=True)
    # the initial size of a fresh run trains at alpha 1; a reference --ckpt run fades it in
    assert schedule(Progress(1, 0), fresh) == (Progress(1, 0), 1.0, None)
    assert schedule(Progress(1, 0), loaded) == (Progress(1, 0), 1 / 8, None)
    assert schedule(Progress(1, 3), loaded) == (Progress(1, 3), 0.5, None)
    assert schedule(Progress(1, 7), loaded) == (Progress(1, 7), 1.0, None)
    # 2 x phase images are not yet enough; one more and the next step starts at alpha 0
    assert schedule(Progress(1, 16), fresh) == (Progress(1, 16), 1.0, None)
    assert schedule(Progress(1, 17), fresh) == (Progress(2, 0), 0.0, 2)
    assert schedule(Progress(2, 0), fresh) == (Progress(2, 0), 1 / 8, None)
    assert schedule(Progress(2, 4), fresh) == (Progress(2, 4), 5 / 8, None)
    assert schedule(Progress(3, 12), fresh) == (Progress(3, 12), 1.0, None)
    # past the last step: stay there at alpha 1, snapshot train_step-(max_step + 1)
    assert schedule(Progress(3, 20), fresh) == (Progress(3, 0, True), 1.0, 4)
    assert schedule(Progress(3, 0, True), fresh) == (Progress(3, 0, True), 1.0, None)
    assert schedule(Progress(3, 17, True), fresh) == (Progress(3, 0, True), 1.0, 4)
    # the reference's phase: alpha 0.5 after 74 999 images of a new size
    reference = ScheduleConfig(init_step=1, max_step=5, phase=150_000)
    assert schedule(Progress(2, 74_999), reference)[1] == 0.5
    assert schedule(Progress(2, 300_000), reference)[0] == Progress(2, 300_000)
    assert schedule(Progress(2, 300_001), reference)[0] == Progress(3, 0)
    assert advance(Progress(2, 4), 256) == Progress(2, 260)


def test_schedule_walked_iteration_by_iteration_with_the_batch_table():
    config = TrainConfig(path="data", init_size=8, max_size=32, phase=300)
    progress, seen = Progress(1), []
    for _ in range(8):
        progress, alpha, _ = schedule(progress, config.schedule_config)
        size = 4 * 2 ** progress.step
        seen.append((size, alpha))
        progress = advance(progress, config.batch_for(size))
    # 8 px: batch 256, so 256 and 512 images are not > 600; at 768 it grows to 16 px (batch 128)
    assert seen == [(8, 1), (8, 1), (8, 1), (16, 0), (16, 129 / 300), (16, 257 / 300),
                    (16, 1), (16, 1)]
    assert [config.batch_for(s) for s in (4, 8, 16, 32, 64, 128, 256)] == [512, 256, 128, 64,
                                                                          32, 16, 32]
    sched = TrainConfig(path="data", sched=True, lr=0.002)
    assert [sched.batch_for(s) for s in (64, 128, 256, 512)] == [32, 32, 32, 32]
    assert [sched.lr_for(s) for s in (64, 128, 256, 512)] == [0.002, 0.0015, 0.002, 0.003]
    assert TrainConfig(path="data", batch=7).batch_for(8) == 7

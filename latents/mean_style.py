"""The mean style: the centre of the truncation trick (paper section 4), averaged as the
reference's generate.py does, at once or one batch a step (the explorer draws it while idle)."""
import jittor as jt

MEAN_STYLE_BATCH = 1024
MEAN_STYLE_LATENTS = 10 * MEAN_STYLE_BATCH   # the reference's generate.py: 10 means of 1024


def run_steps(steps, after_step=None):
    """Run the Python generator ``steps`` to its end, calling ``after_step()`` after each of
    its steps; returns the generator's return value."""
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value
        if after_step is not None:
            after_step()


def average_style_steps(generator, n_latents=MEAN_STYLE_LATENTS, batch=MEAN_STYLE_BATCH):
    """``average_style`` one batch at a time: a Python generator that draws and maps one batch of
    latents (synced) at each ``next``, yields the latents done so far, and returns the mean (the
    StopIteration's value; ``mean = yield from average_style_steps(g)`` in a generator).
    Everything between two batches may run other work, as long as it leaves Jittor's global
    random generator alone; the explorer steps it while idle (``explorer.renderer``). Its body
    runs inside each ``next``: step it under ``jt.no_grad()`` (a decorator on this function would
    cover only the generator's creation)."""
    total = None
    done = 0
    while done < n_latents:
        n = min(batch, n_latents - done)
        style = generator.mean_style(jt.randn(n, generator.code_dim)) * (n / batch)
        total = style if total is None else total + style
        total.sync()
        done += n
        yield done
    return total / (n_latents / batch)


@jt.no_grad()
def average_style(generator, n_latents=MEAN_STYLE_LATENTS, batch=MEAN_STYLE_BATCH, progress=None):
    """Mean mapped style w of ``n_latents`` random latents, the centre of the truncation trick
    (paper section 4; used by generate.py and evaluate.py). Averaged batch by batch as the
    reference's generate.py does (the mean of 10 means of 1024); a smaller last batch counts by
    its size. ``progress`` (a tqdm bar) advances once a batch. ``average_style_steps`` run to
    its end."""
    return run_steps(average_style_steps(generator, n_latents, batch),
                     None if progress is None else lambda: progress.update(1))

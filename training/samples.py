"""The sample grid a training run writes every --sample_every iterations (``sample/NNNNNN.png``):
the same latents and noise for the whole run, resumed runs included, so its grids show one model
changing."""
import numpy as np

import jittor as jt

from networks.shapes import size_for_step
from training.data_stream import EPOCH_ORDER_STREAM, derived_seed

SAMPLE_GRID = {512: (8, 4), 1024: (4, 2)}     # (columns, rows) of the sample grid, PyTorch's
DEFAULT_SAMPLE_GRID = (10, 5)


class SampleGrid:
    """Fixed latents (from the run's seed) and noise maps (from the seed and the step) for the
    reference's sample grid: ``columns`` x ``rows`` images of g_running."""

    def __init__(self, seed, code_dim):
        self.seed = seed
        latent_rng = np.random.RandomState(seed)
        self.latents = latent_rng.randn(
            max(columns * rows for columns, rows in [DEFAULT_SAMPLE_GRID, *SAMPLE_GRID.values()]),
            code_dim).astype(np.float32)
        self._noise = {}

    def noise(self, step, shapes):
        """Fixed noise maps of ``shapes`` (the generator's at ``step``) for the sample grid at
        ``step``, drawn once from the seed."""
        if step not in self._noise:
            rng = np.random.RandomState(derived_seed(self.seed, step, EPOCH_ORDER_STREAM))
            self._noise[step] = [rng.randn(*shape).astype(np.float32) for shape in shapes]
        return self._noise[step]

    def images(self, g_running, step, alpha):
        """``(images, columns)``: the grid's images (numpy, in [-1, 1]) from ``g_running`` at
        ``step`` and ``alpha``, in column-major order as the reference writes them."""
        columns, rows = SAMPLE_GRID.get(size_for_step(step), DEFAULT_SAMPLE_GRID)
        noise = self.noise(step, g_running.noise_shapes(step, columns * rows))
        images = []
        with jt.no_grad():
            for column in range(columns):  # the reference generates one column at a time
                chunk = slice(column * rows, (column + 1) * rows)
                out = g_running(jt.array(self.latents[chunk]),
                                noise=[jt.array(n[chunk]) for n in noise], step=step, alpha=alpha)
                images.append(out.numpy())
        return np.concatenate(images), columns

"""Pictures for the explorer's states: the same images generate.py makes, from a seed's draws.

generate.py, given ``--seed S``, calls ``jt.set_global_seed(S)``, draws the mean style's 10240
latents when ``--truncation`` is not 1, then the latent z, then the noise maps inside the forward
pass (``StyledGenerator.execute``, noise=None). ``seed_draws`` repeats that sequence once per seed
and keeps z, the noise maps (up to the largest size: map i is the same whatever size is drawn,
since the maps come in order from 4 px up) and the mean, so later pictures of that seed need no
drawing; its single image (``sample.png`` of ``--n_row 1 --n_col 1``) is then pixel for pixel
what ``generator(z, noise, mean_style=mean, style_weight=psi)`` gives here.

Mixing, projected latents and directions go through ``latents.synthesis`` (one style per
synthesis layer); a plain mix of two seeds goes through the generator's own ``mixing_range``.
Jittor's random generator is global and Jittor runs on its main thread only: every call here is
made from the main thread (``explorer.server.MainThreadJobs``). While nobody waits, ``prefetch``
draws the page's neighbouring seeds a step at a time (one batch of the mean style a step), so a
request waits for one batch at most; a request that comes between two steps abandons the seed
half drawn (``interrupt``: it re-seeds the generator that drawing depends on), and that seed is
drawn again from its start later, never resumed.
"""
import io
import math
from collections import OrderedDict, namedtuple

import numpy as np
from PIL import Image

import jittor as jt

from explorer.state import Limits, RequestError, State
from files.grid import PNG_OPTIONS, normalize, tile_corners, unit_to_bytes
from files.latents import N_LAYERS, LatentsError, load_directions, load_latents
from latents.synthesis import edit, mix, synthesize
from latents.mean_style import average_style_steps, run_steps
from model import noise_shapes, step_for_size, truncate

ALPHA = 1                            # the newest block fully faded in, as generate.py samples
PARTS = ("main", "source", "mix", "grid")
GRID_BATCH = 16                      # grid images a forward pass
GRID_PADDING = 2                     # generate.py's grids (torchvision's default padding)
DRAWS_CACHE_BYTES = 256 * 2 ** 20    # seeds' z, noise and mean kept (1024 px: ~45 seeds)
PNG_CACHE_BYTES = 64 * 2 ** 20       # encoded pictures kept, for reloads and revisits
PREFETCH_QUEUE = 8

SeedDraws = namedtuple("SeedDraws", "mean z noise")   # numpy: (1, cd) or None, (1, cd), maps


def draws_bytes(draws):
    return sum(a.nbytes for a in [draws.z, *draws.noise] + ([draws.mean] if draws.mean is not None
                                                             else []))


class ByteBoundedCache:
    """Least recently used entries, dropped once their sizes sum past ``budget`` bytes."""

    def __init__(self, budget, size_of):
        self.budget, self.size_of = budget, size_of
        self.entries = OrderedDict()
        self.total = 0

    def get(self, key):
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    def put(self, key, value):
        if key in self.entries:
            self.total -= self.size_of(self.entries.pop(key))
        self.entries[key] = value
        self.total += self.size_of(value)
        while self.total > self.budget and len(self.entries) > 1:
            _, dropped = self.entries.popitem(last=False)
            self.total -= self.size_of(dropped)

    def __contains__(self, key):
        return key in self.entries

    def __len__(self):
        return len(self.entries)


def to_pixels(images, nrow=1):
    """uint8 (H, W, 3) of images (n, 3, s, s) in [-1, 1], laid out as generate.py's grids (a
    single image unpadded): files.grid's normalisation and rounding, in memory."""
    n, channels, height, width = images.shape
    grid_height, grid_width, corners = tile_corners(n, nrow, height, width, GRID_PADDING)
    pixels = np.zeros((grid_height, grid_width, channels), dtype=np.uint8)
    for image, (top, left) in zip(images, corners):
        pixels[top:top + height, left:left + width] = unit_to_bytes(normalize(image)[0])
    return pixels


def png_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", **PNG_OPTIONS)
    return buffer.getvalue()


def grid_columns(n):
    """Columns of an n-image grid: the smallest square that holds them."""
    return math.ceil(math.sqrt(n))


class Renderer:
    """The generator, its seeds' draws, and the files the server may read."""

    def __init__(self, generator, info, max_size, latents, directions,
                 draws_cache_bytes=DRAWS_CACHE_BYTES, png_cache_bytes=PNG_CACHE_BYTES):
        self.generator = generator
        self.info = info
        self.code_dim = info["code_dim"]
        self.max_size = max_size
        self.max_step = step_for_size(max_size)
        self.latents = latents
        self.directions = directions
        self.draws_cache = ByteBoundedCache(draws_cache_bytes, draws_bytes)
        self.png_cache = ByteBoundedCache(png_cache_bytes, len)
        self.wanted = []     # (seed, truncated) worth drawing while idle: the page's neighbours
        self.prefetching = None   # (key, draw_steps) of the seed ``prefetch`` is drawing

    def limits(self):
        return Limits(self.max_size, self.latents.names(), self.directions.names())

    # -- a seed's random draws, as generate.py makes them ---------------------------------------

    def draw_steps(self, seed, truncated):
        """``seed_draws``'s drawing one step at a time (a Python generator returning the
        SeedDraws): seeds Jittor and draws the mean style a batch a step (``average_style_steps``,
        generate.py's values), then z and the noise maps in one last step. Run it under
        ``jt.no_grad()``, with nothing between its steps that touches Jittor's random generator."""
        jt.set_global_seed(seed)
        mean = None
        if truncated:
            mean = (yield from average_style_steps(self.generator)).numpy()
        z = jt.randn(1, self.code_dim)
        noise = [jt.randn(*shape) for shape in noise_shapes(self.max_step, 1)]
        jt.sync([z] + noise)
        return SeedDraws(mean, z.numpy(), [maps.numpy() for maps in noise])

    @jt.no_grad()
    def seed_draws(self, seed, truncated):
        """(mean or None, z, noise maps 4 px .. max size) of ``seed``, drawn in generate.py's
        order: the mean style only where generate.py computes it (truncation not 1). Drawing
        re-seeds Jittor's random generator, so it abandons a prefetch in progress."""
        key = (seed, truncated)
        draws = self.draws_cache.get(key)
        if draws is None:
            self.interrupt()
            draws = run_steps(self.draw_steps(seed, truncated))
            self.draws_cache.put(key, draws)
        return draws

    def want(self, seeds, truncated):
        """Remember seeds to draw while idle (the newest first), ``prefetch`` draws them."""
        for seed in reversed(seeds):
            key = (seed, truncated)
            if 0 <= seed < 2 ** 32 and key not in self.draws_cache:
                if key in self.wanted:
                    self.wanted.remove(key)
                self.wanted.insert(0, key)
        del self.wanted[PREFETCH_QUEUE:]

    @jt.no_grad()
    def prefetch(self):
        """One step of drawing the wanted seeds: at most one batch of a mean style (1024 latents
        through the mapping network), or a seed's z and noise; the seed's draws go into the
        cache at its last step. False when nothing was left to draw. Between two steps the
        server answers requests; one that comes while a seed is half drawn abandons it
        (``interrupt``), since Jittor's random generator is global."""
        if self.prefetching is None:
            while self.wanted:
                key = self.wanted.pop(0)
                if key not in self.draws_cache:
                    self.prefetching = (key, self.draw_steps(*key))
                    break
            else:
                return False
        key, steps = self.prefetching
        try:
            next(steps)
        except StopIteration as finished:
            self.prefetching = None
            self.draws_cache.put(key, finished.value)
        except BaseException:
            self.prefetching = None
            raise
        return True

    def interrupt(self):
        """Abandon the seed half drawn by ``prefetch``, if any (the caller is about to use
        Jittor's random generator, whose state the rest of that drawing depends on): it goes
        back to the front of ``wanted``, to be drawn again from its start, never resumed."""
        if self.prefetching is None:
            return
        key, steps = self.prefetching
        self.prefetching = None
        steps.close()
        if key in self.wanted:
            self.wanted.remove(key)
        self.wanted.insert(0, key)
        del self.wanted[PREFETCH_QUEUE:]

    # -- styles ----------------------------------------------------------------------------------

    def seed_style(self, seed, psi, mean):
        """w (1, code_dim) of ``seed``, truncated towards ``mean`` (numpy) unless psi is 1."""
        draws = self.seed_draws(seed, psi != 1.0)
        w = self.generator.style(jt.array(draws.z))
        if mean is not None and psi != 1.0:
            w = truncate(w, jt.array(mean), psi)
        return w.numpy()

    def load_latents(self, name):
        try:
            return self.latents.load(name, lambda path: load_latents(path, self.code_dim))
        except KeyError:
            raise RequestError(f"unknown latents file {name}") from None
        except LatentsError as error:
            raise RequestError(f"latents file {name}: {error}") from None

    def load_directions(self, name):
        try:
            return self.directions.load(name, lambda path: load_directions(path, self.code_dim))
        except KeyError:
            raise RequestError(f"unknown directions file {name}") from None
        except LatentsError as error:
            raise RequestError(f"directions file {name}: {error}") from None

    def main_layers(self, state, step):
        """(w_layers (1, N_LAYERS, cd) numpy, noise maps) of the state's own picture, edited;
        None where it is the plain picture of a seed (then the generator's own path draws it)."""
        draws = self.seed_draws(state.seed, state.truncated)
        if state.latents:
            latents = self.load_latents(state.latents)
            if state.index >= len(latents.names):
                raise RequestError(f"index {state.index} is past the last latent of "
                                   f"{state.latents} ({len(latents.names)} latents: 0-"
                                   f"{len(latents.names) - 1})")
            w = latents.w[state.index:state.index + 1]
            if w.shape[1] < step + 1:
                raise RequestError(f"{state.latents} holds styles for {w.shape[1]} layers, "
                                   f"{state.size} px needs {step + 1}")
            if latents.noise is not None and len(latents.noise) >= step + 1:
                noise = [maps[state.index:state.index + 1] for maps in latents.noise]
            else:
                noise = draws.noise    # a file without noise maps: the seed's noise
        elif state.directions and state.edits:
            w = np.repeat(self.seed_style(state.seed, state.psi, draws.mean)[:, None],
                          N_LAYERS, axis=1)
            noise = draws.noise
        else:
            return None
        if state.directions and state.edits:
            directions = self.load_directions(state.directions)
            for k, strength in state.edits:
                if k >= len(directions.vectors):
                    raise RequestError(f"direction {k} is past the last of {state.directions} "
                                       f"({len(directions.vectors)} directions: 0-"
                                       f"{len(directions.vectors) - 1})")
                w = edit(w, directions.vectors[k], strength, directions.layers)
        return w, noise

    # -- pictures --------------------------------------------------------------------------------

    @jt.no_grad()
    def seed_images(self, seeds, psi, step):
        """generate.py's image of each seed (n, 3, s, s), GRID_BATCH a forward pass."""
        parts = []
        for start in range(0, len(seeds), GRID_BATCH):
            batch = [self.seed_draws(seed, psi != 1.0) for seed in seeds[start:start + GRID_BATCH]]
            z = jt.array(np.concatenate([d.z for d in batch]))
            noise = [jt.array(np.concatenate([d.noise[i] for d in batch])) for i in range(step + 1)]
            mean = (jt.array(np.concatenate([d.mean for d in batch])) if psi != 1.0 else None)
            parts.append(self.generator(z, noise=noise, step=step, alpha=ALPHA, mean_style=mean,
                                        style_weight=psi).numpy())
        return np.concatenate(parts)

    @jt.no_grad()
    def images(self, state, part):
        """The float images (n, 3, s, s) of one part of the page for ``state``."""
        step = step_for_size(state.size)
        if part == "grid":
            return self.seed_images(list(range(state.seed, min(state.seed + state.n, 2 ** 32))),
                                    state.psi, step)
        if part == "source":
            return self.seed_images([state.seed2], state.psi, step)
        edited = self.main_layers(state, step)
        if part == "main":
            if edited is None:
                return self.seed_images([state.seed], state.psi, step)
            w, noise = edited
            return synthesize(self.generator, jt.array(w),
                              [jt.array(maps) for maps in noise[:step + 1]], step, ALPHA).numpy()
        # part == "mix": the state's picture with the mixing layers' styles of seed2
        draws = self.seed_draws(state.seed, state.truncated)
        if edited is None:
            source = self.seed_draws(state.seed2, state.truncated)
            noise = [jt.array(maps) for maps in draws.noise[:step + 1]]
            mean = jt.array(draws.mean) if state.truncated else None
            return self.generator([jt.array(draws.z), jt.array(source.z)], noise=noise, step=step,
                                  alpha=ALPHA, mean_style=mean, style_weight=state.psi,
                                  mixing_range=state.layer_range).numpy()
        w, noise = edited
        source_w = np.repeat(self.seed_style(state.seed2, state.psi, draws.mean)[:, None],
                             N_LAYERS, axis=1)
        mixed = mix(w[0], source_w[0], state.layer_range)[None]
        return synthesize(self.generator, jt.array(mixed),
                          [jt.array(maps) for maps in noise[:step + 1]], step, ALPHA).numpy()

    def pixels(self, state, part):
        """uint8 (H, W, 3) of one part; the grid laid out as generate.py's grids."""
        if part not in PARTS:
            raise RequestError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
        images = self.images(state, part)
        return to_pixels(images, grid_columns(len(images)) if part == "grid" else 1)

    def png(self, state, part):
        """(PNG bytes, whether it came from the cache) of one part for ``state``."""
        key = (state.to_query(), part)
        cached = self.png_cache.get(key)
        if cached is not None:
            return cached, True
        data = png_bytes(self.pixels(state, part))
        self.png_cache.put(key, data)
        if state.truncated:
            neighbours = [state.seed + 1, state.seed - 1]
            if state.view == "mix":
                neighbours += [state.seed2 + 1, state.seed2 - 1]
            if state.view == "grid":
                neighbours = [state.seed + state.n + k for k in range(state.n)]
            self.want(neighbours, True)
        return data, False

    def describe(self, kind, name):
        """What the page shows of one file: directions' count and layers, latents' names."""
        if kind == "directions":
            directions = self.load_directions(name)
            return {"count": int(len(directions.vectors)), "layers": list(directions.layers),
                    "values": [float(v) for v in directions.values]}
        latents = self.load_latents(name)
        return {"count": len(latents.names), "names": latents.names,
                "w_plus": bool(latents.w_plus), "noise": latents.noise is not None,
                "layers": int(latents.w.shape[1])}

    def warm_up(self):
        """Render each kind of picture once, so Jittor compiles its operators before the first
        request rather than during it."""
        state = State(size=self.max_size)
        self.pixels(state, "main")
        if step_for_size(self.max_size) >= 1:
            self.pixels(State(view="mix", size=self.max_size), "mix")
        draws = self.seed_draws(0, True)
        w = np.repeat(self.seed_style(0, 0.7, draws.mean)[:, None], N_LAYERS, axis=1)
        step = step_for_size(self.max_size)
        synthesize(self.generator, jt.array(w), [jt.array(m) for m in draws.noise[:step + 1]],
                   step, ALPHA).numpy()

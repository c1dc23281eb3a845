"""explore.py and the explorer package: request checking and the URL's state, the files it may
read, the generate.py command, the HTTP routes (fast, with a stand-in renderer); the pictures
against generate.py and the library, signals, the load tool, and the page in headless Chromium
(slow)."""
import ast
import base64
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from explorer.catalogue import Catalogue
from explorer.commands import generate_command
from explorer.server import MainThreadJobs, Superseded, make_server, save_name
from explorer.state import (MAX_GRID_PIXELS, Limits, RequestError, State,
                            parse_state)
from tools.explorer_process import start_explorer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMITS = Limits(max_size=32, latents=("faces.npz",), directions=("coarse.npz",))
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def generate_py_flags():
    """The --flags generate.py's parser defines, read from its source (no Jittor import)."""
    with open(os.path.join(ROOT, "generate.py")) as f:
        tree = ast.parse(f.read())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
            and node.args and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("--")}


# -- the state in the URL, and the checks -------------------------------------------------------

@pytest.mark.parametrize("state", [
    State(size=32),
    State(view="mix", seed=7, psi=0.55, size=16, seed2=4294967295, layers="2,3"),
    State(view="grid", seed=10, psi=1.0, size=8, n=64),
    State(seed=3, size=32, latents="faces.npz", index=2, directions="coarse.npz",
          edits=((0, 1.5), (3, -2.25))),
])
def test_state_survives_its_query_string(state):
    assert parse_state(state.to_query(), LIMITS) == state


def test_empty_query_is_the_default_state_at_the_largest_size():
    assert parse_state("", LIMITS) == State(size=32)


def test_edits_are_sorted_and_zeros_dropped():
    state = parse_state("directions=coarse.npz&edits=3:1.0,0:-2,1:0", LIMITS)
    assert state.edits == ((0, -2.0), (3, 1.0))
    assert "edits=0:-2.0,3:1.0" in state.to_query()


@pytest.mark.parametrize("query, message", [
    ("seed=abc", "seed must be a whole number"),
    ("seed=-1", "seed must be a whole number"),
    ("seed=4294967296", "seed must be from 0 to 4294967295"),
    ("seed2=1e3", "seed2 must be a whole number"),
    ("size=4096", "size 4096 is larger than this server offers"),
    ("size=12", "size must be a power of two"),
    ("psi=9", "psi (truncation) must be a number from -1.0 to 2.0"),
    ("psi=nan", "psi (truncation) must be a number"),
    ("psi=inf", "psi (truncation) must be a number"),
    ("latents=../../etc/passwd", "unknown latents file '../../etc/passwd'"),
    ("latents=%2Fetc%2Fpasswd", "unknown latents file '/etc/passwd'"),
    ("directions=other.npz", "unknown directions file other.npz: this server was started with "
                             "coarse.npz"),
    ("foo=1", "unknown parameter 'foo'"),
    ("seed=1&seed=2", "parameter 'seed' given twice"),
    ("view=video", "view must be one of single, mix, grid"),
    ("layers=3,1", "layers: a layer range A-B needs 0 <= A <= B <= 8"),
    ("layers=all", "layers: expected coarse = 0-1"),
    ("view=mix&layers=fine", "layers fine (4-8) do not exist at 32 px"),
    ("n=65", "n (grid) must be from 1 to 64"),
    ("directions=coarse.npz&edits=0:99", "edits: strength must be a number from -20.0 to 20.0"),
    ("directions=coarse.npz&edits=zero", "edits must be K:S pairs"),
    ("directions=coarse.npz&edits=1:1,1:2", "edits: direction 1 given twice"),
    ("seed=" + "1" * 3000, "query string too long"),
])
def test_bad_requests_are_refused_with_their_reason(query, message):
    with pytest.raises(RequestError) as refused:
        parse_state(query, LIMITS)
    assert message in str(refused.value)


def test_a_grid_too_large_for_its_size_is_refused():
    limits = Limits(max_size=1024)
    most = MAX_GRID_PIXELS // 1024 ** 2
    parse_state(f"view=grid&n={most}&size=1024", limits)
    with pytest.raises(RequestError, match=f"at most {most} at that size"):
        parse_state(f"view=grid&n={most + 1}&size=1024", limits)


# -- the generate.py command --------------------------------------------------------------------

def test_the_command_for_one_seed_uses_only_generate_py_flags():
    result = generate_command(State(seed=5, psi=0.5, size=32), "runs/my model.model")
    assert result["exact"]
    assert result["command"] == ("python3 generate.py 'runs/my model.model' --size 32 --seed 5 "
                                 "--truncation 0.5 --n_row 1 --n_col 1 --n_mixing 0 "
                                 "--out generated")
    used = set(re.findall(r"--\w+", result["command"]))
    assert used <= generate_py_flags()


def test_a_mix_gets_the_nearest_command_and_says_it_is_not_exact():
    result = generate_command(State(view="mix", seed=5, seed2=9, size=32, layers="2,3"), "g.model")
    assert not result["exact"]
    assert "--mixing_range middle" in result["command"] and "cannot mix" in result["note"]


def test_a_grid_is_the_one_seed_command_for_each_seed():
    result = generate_command(State(view="grid", seed=3, n=4, size=16), "g.model")
    assert result["command"].startswith("for seed in $(seq 3 6); do python3 generate.py g.model "
                                        "--size 16 --seed $seed ")


def test_edit_and_latent_flags_appear_only_when_the_state_uses_them():
    plain = generate_command(State(seed=1, size=32, directions="coarse.npz"), "g.model",
                             directions_path="/d/coarse.npz")["command"]
    assert "--direction" not in plain and "--strength" not in plain and "--w" not in plain
    edited = generate_command(State(seed=1, size=32, directions="coarse.npz", edits=((2, 1.5),)),
                              "g.model", directions_path="/d/coarse.npz")["command"]
    assert "--direction /d/coarse.npz:2 --strength 1.5:1.5:1" in edited
    projected = generate_command(State(size=32, latents="faces.npz", index=1), "g.model",
                                 latents_path="/l/faces.npz")
    assert "--w /l/faces.npz" in projected["command"] and "number 1" in projected["note"]
    used = set(re.findall(r"--\w+", edited + projected["command"]))
    assert used <= generate_py_flags()


# -- the files it may read ------------------------------------------------------------------------

def test_the_catalogue_lists_given_files_and_folders_npz_only(tmp_path):
    folder = tmp_path / "latents"
    folder.mkdir()
    for name in ("a.npz", "b.npz", "notes.txt"):
        (folder / name).write_bytes(b"x")
    outside = tmp_path / "secret.npz"
    outside.write_bytes(b"x")
    os.symlink(outside, folder / "link.npz")
    single = tmp_path / "single.npz"
    single.write_bytes(b"x")
    catalogue = Catalogue("latents", [str(single), str(folder)])
    assert catalogue.check() is None
    assert catalogue.names() == ("single.npz", "a.npz", "b.npz")   # not the link out of it
    assert catalogue.load("a.npz", lambda path: path) == str(folder / "a.npz")
    with pytest.raises(KeyError):
        catalogue.load("../secret.npz", lambda path: path)
    (folder / "c.npz").write_bytes(b"x")
    assert "c.npz" in catalogue.names()                              # listed again each time


def test_the_catalogue_refuses_missing_and_same_named_files(tmp_path):
    (tmp_path / "x").mkdir()
    for path in (tmp_path / "a.npz", tmp_path / "x" / "a.npz"):
        path.write_bytes(b"x")
    assert "two latents files are named a.npz" in Catalogue(
        "latents", [str(tmp_path / "a.npz"), str(tmp_path / "x" / "a.npz")]).check()
    assert "does not exist" in Catalogue("directions", [str(tmp_path / "none.npz")]).check()


# -- the HTTP server, with a stand-in renderer (no Jittor) ---------------------------------------

PNG_OF = {}


class StandInRenderer:
    """What the server needs of a Renderer: the picture's PNG is its part and state, in text."""
    info = {"code_dim": 8, "n_mlp": 2, "width": 8, "kind": "generator state dict"}
    max_size = 32
    wanted = []

    def __init__(self, tmp_path):
        self.latents = Catalogue("latents", [])
        self.directions = Catalogue("directions", [])

    def limits(self):
        return Limits(self.max_size, self.latents.names(), self.directions.names())

    def png(self, state, part):
        return b"\x89PNG" + f"{part}?{state.to_query()}".encode(), False

    def prefetch(self):
        return False

    prefetching = None

    def interrupt(self):
        pass


@pytest.fixture
def stand_in_server(tmp_path):
    server = make_server(StandInRenderer(tmp_path), "127.0.0.1", 0, "g.model",
                         str(tmp_path / "out"))
    listener = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                daemon=True)
    worker = threading.Thread(target=server.jobs.serve, args=(server.stopping,), daemon=True)
    listener.start()
    worker.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


def fetch(url, method="GET"):
    """(status, body, headers) of one request."""
    try:
        with NO_PROXY.open(urllib.request.Request(url, method=method), timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def test_the_server_answers_pages_pictures_and_refusals(stand_in_server):
    url = stand_in_server.url()
    status, body, headers = fetch(url)
    assert status == 200 and b"StyleGAN explorer" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, body, _ = fetch(url + "api/image.png?seed=4&part=mix&view=mix")
    assert status == 200 and body.startswith(b"\x89PNGmix?view=mix&seed=4&")
    for query, message in [("seed=abc", b"seed must be a whole number"),
                           ("size=4096", b"size 4096 is larger"),
                           ("psi=-5", b"psi (truncation) must be"),
                           ("latents=../../etc/passwd", b"unknown latents file")]:
        status, body, _ = fetch(url + "api/image.png?" + query)
        assert status == 400 and message in body, (query, body)
    status, body, _ = fetch(url + "api/image.png?channel=../x")
    assert status == 400 and b"channel must be" in body
    status, body, _ = fetch(url + "../../etc/passwd")
    assert status == 404
    status, body, _ = fetch(url + "api/file?kind=latents&name=../../etc/passwd")
    assert status == 400 and b"unknown latents file" in body
    status, body, _ = fetch(url + "api/command?seed=2&psi=0.7")
    assert status == 200 and b"--seed 2" in body
    status, _, _ = fetch(url + "api/image.png?seed=1")   # the server went on after the refusals
    assert status == 200
    status, body, _ = fetch(url + "api/stats")
    assert status == 200 and b'"caches": {}' in body and b'"prefetching": false' in body


def test_saving_writes_only_into_the_output_folder(stand_in_server, tmp_path):
    status, body, _ = fetch(stand_in_server.url() + "api/save?seed=6&size=16", method="POST")
    assert status == 200
    state = State(seed=6, size=16)
    written = tmp_path / "out" / save_name(state, "main")
    assert written.read_bytes().startswith(b"\x89PNGmain?")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [written.name]


def test_a_request_superseded_in_its_channel_is_dropped_unrun():
    jobs = MainThreadJobs(StandInRenderer(None))
    stopping = threading.Event()
    release = threading.Event()
    ran, answers = [], {}

    def ask(name, channel, work):
        try:
            answers[name] = jobs.run(work, channel)
        except Superseded:
            answers[name] = "superseded"

    blocker = threading.Thread(target=ask, args=("blocker", "", release.wait))
    blocker.start()
    worker = threading.Thread(target=jobs.serve, args=(stopping,), daemon=True)
    worker.start()
    time.sleep(0.2)                      # the worker is inside the blocking job
    old = threading.Thread(target=ask, args=("old", "page-main", lambda: ran.append("old")))
    old.start()
    time.sleep(0.1)
    new = threading.Thread(target=ask, args=("new", "page-main", lambda: ran.append("new")))
    new.start()
    time.sleep(0.1)
    release.set()
    for thread in (blocker, old, new):
        thread.join(timeout=10)
    stopping.set()
    assert answers["old"] == "superseded" and ran == ["new"]


class SteppingRenderer(StandInRenderer):
    """A stand-in whose prefetch takes ``steps`` steps a seed, and tells ``events`` what ran."""

    def __init__(self, steps, events, on_step=None):
        super().__init__(None)
        self.steps, self.events, self.on_step = steps, events, on_step
        self.wanted = [(7, True)]
        self.prefetching = None
        self.done = []

    def prefetch(self):
        if self.prefetching is None:
            if not self.wanted:
                self.events.append("nothing left")
                return False
            self.prefetching = [self.wanted.pop(0), 0]
        self.prefetching[1] += 1
        key, step = self.prefetching
        self.events.append(f"step {step}")
        if step == self.steps:
            self.done.append(key)
            self.prefetching = None
        if self.on_step:
            self.on_step(step)
        return True

    def interrupt(self):
        if self.prefetching is not None:
            self.events.append("interrupted")
            self.wanted.insert(0, self.prefetching[0])
            self.prefetching = None


class RecordingQueue:
    """A job queue that tells ``events`` whether each look waited."""

    def __init__(self, events):
        import queue
        self.inner, self.events = queue.Queue(), events

    def put(self, job):
        self.inner.put(job)

    def get(self, block=True, timeout=None):
        self.events.append("look, waiting" if block else "look")
        return self.inner.get(block, timeout)


def serve_until_stopped(jobs, stopping, timeout):
    """``jobs.serve(stopping)``, stopped after ``timeout`` s at the latest: a failure in the
    test's stopping condition fails the test instead of hanging it."""
    watchdog = threading.Timer(timeout, stopping.set)
    watchdog.start()
    try:
        jobs.serve(stopping)
    finally:
        watchdog.cancel()


def test_a_request_waits_for_one_prefetch_step_at_most(monkeypatch):
    """A job queued during a prefetch's first step runs right after it (the queue looked at
    without waiting), abandons the half-drawn seed, which is then drawn again from its start."""
    from explorer import server as server_module
    from explorer.server import Job
    monkeypatch.setattr(server_module, "IDLE_BEFORE_PREFETCH", 0.0)
    events = []
    stopping = threading.Event()

    def on_step(step):
        if events.count("step 1") == 1 and step == 1:   # a request arrives during step 1
            jobs.queue.put(Job(lambda: events.append("job"), "", 1))
        if renderer.done:
            stopping.set()
    renderer = SteppingRenderer(4, events, on_step)
    jobs = MainThreadJobs(renderer)
    jobs.queue = RecordingQueue(events)
    jobs.last_request = time.monotonic() - 10
    serve_until_stopped(jobs, stopping, 30)
    steps = [e for e in events if e.startswith("step") or e in ("job", "interrupted")]
    assert steps == ["step 1", "interrupted", "job", "step 1", "step 2", "step 3", "step 4"]
    assert renderer.done == [(7, True)] and renderer.wanted == []
    for before, after in zip(events, events[1:]):
        if before.startswith("step"):              # between steps: a look that does not wait
            assert after == "look", events


# -- slow: pictures, command line, signals, load, browser ----------------------------------------

TINY = dict(code_dim=8, n_mlp=2, width=8)
TINY_SIZE = 16


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A tiny generator (noise weights made non-zero, so the noise shows), SeFa directions and
    projected latents for it."""
    import jittor as jt
    from files.checkpoint import atomic_save
    from files.latents import save_directions, save_latents
    from model import StyledGenerator, noise_shapes
    folder = tmp_path_factory.mktemp("explore")
    jt.set_global_seed(11)
    generator = StyledGenerator(**TINY)
    state = {k: v.numpy() for k, v in generator.state_dict().items()}
    for key in state:
        if "noise" in key:
            state[key] = state[key] + np.float32(0.5)
    checkpoint = str(folder / "tiny.model")
    atomic_save(state, checkpoint)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((4, TINY["code_dim"])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    directions = str(folder / "coarse.npz")
    save_directions(directions, vectors, (0, 1), np.arange(4, 0, -1, dtype=np.float32))
    latents_folder = folder / "latents"
    latents_folder.mkdir()
    w = rng.standard_normal((2, 9, TINY["code_dim"])).astype(np.float32)
    noise = [rng.standard_normal((2,) + shape[1:]).astype(np.float32)
             for shape in noise_shapes(4, 1)]
    save_latents(str(latents_folder / "faces.npz"), w, noise, ["left", "right"])
    return {"checkpoint": checkpoint, "directions": directions,
            "latents": str(latents_folder), "folder": folder}


def library_image(checkpoint, seed, psi, size):
    """generate.py's one image of ``seed``, through the library in generate.py's order."""
    import jittor as jt
    from files.checkpoint import load_generator
    from latents.mean_style import average_style
    from model import step_for_size
    generator, _ = load_generator(checkpoint)
    jt.set_global_seed(seed)
    mean = average_style(generator) if psi != 1.0 else None
    z = jt.randn(1, generator.code_dim)
    with jt.no_grad():
        return generator(z, step=step_for_size(size), alpha=1, mean_style=mean,
                         style_weight=psi).numpy()


def pixels_of(images):
    from explorer.renderer import to_pixels
    return to_pixels(images)


@pytest.fixture(scope="module")
def tiny_renderer(tiny_files):
    from explorer.renderer import Renderer
    from files.checkpoint import load_generator
    generator, info = load_generator(tiny_files["checkpoint"])
    return Renderer(generator, info, 32, Catalogue("latents", [tiny_files["latents"]]),
                    Catalogue("directions", [tiny_files["directions"]]))


@pytest.mark.slow
def test_pictures_are_generate_py_ones_pixel_for_pixel(tiny_files, tiny_renderer, tmp_path):
    limits = tiny_renderer.limits()
    for query in ("seed=3&psi=0.7&size=16", "seed=3&psi=1.0&size=16", "seed=8&psi=0.4&size=8"):
        state = parse_state(query, limits)
        shown = tiny_renderer.pixels(state, "main")
        command = generate_command(state, tiny_files["checkpoint"])["command"]
        out = tmp_path / re.sub(r"\W", "_", query)
        words = command.replace("--out generated", f"--out {out}").split()
        assert words[:2] == ["python3", "generate.py"]
        run = subprocess.run([sys.executable] + words[1:], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        written = np.asarray(Image.open(out / "sample.png").convert("RGB"))
        assert np.array_equal(shown, written), query
        assert np.array_equal(shown, pixels_of(library_image(tiny_files["checkpoint"],
                                                             state.seed, state.psi, state.size)))


@pytest.mark.slow
def test_grid_mix_edits_and_latents_are_the_library_pictures(tiny_files, tiny_renderer):
    import jittor as jt
    from files.latents import load_directions, load_latents
    from latents.synthesis import edit, synthesize
    from model import truncate
    renderer, limits, step = tiny_renderer, tiny_renderer.limits(), 2
    generator = renderer.generator
    grid = renderer.images(parse_state("view=grid&seed=4&n=4&size=16&psi=0.7", limits), "grid")
    for k in range(4):
        single = renderer.images(parse_state(f"seed={4 + k}&size=16&psi=0.7", limits), "main")
        assert np.abs(grid[k] - single[0]).max() < 1e-5

    a, b = renderer.seed_draws(2, True), renderer.seed_draws(9, True)
    with jt.no_grad():
        expected = generator([jt.array(a.z), jt.array(b.z)],
                             noise=[jt.array(m) for m in a.noise[:step + 1]], step=step, alpha=1,
                             mean_style=jt.array(a.mean), style_weight=0.7,
                             mixing_range=(2, 3)).numpy()
    mixed = renderer.images(parse_state("view=mix&seed=2&seed2=9&layers=middle&size=16", limits),
                            "mix")
    assert np.array_equal(mixed, expected)
    assert not np.array_equal(mixed, renderer.images(parse_state("seed=2&size=16", limits),
                                                     "main"))

    directions = load_directions(tiny_files["directions"], TINY["code_dim"])
    with jt.no_grad():
        w = truncate(generator.style(jt.array(a.z)), jt.array(a.mean), 0.7).numpy()
        w_layers = edit(np.repeat(w[:, None], 9, axis=1), directions.vectors[1], 2.5, (0, 1))
        expected = synthesize(generator, jt.array(w_layers),
                              [jt.array(m) for m in a.noise[:step + 1]], step).numpy()
    edited = renderer.images(parse_state("seed=2&size=16&directions=coarse.npz&edits=1:2.5",
                                          limits), "main")
    assert np.array_equal(edited, expected)

    latents = load_latents(os.path.join(tiny_files["latents"], "faces.npz"), TINY["code_dim"])
    with jt.no_grad():
        expected = synthesize(generator, jt.array(latents.w[1:2]),
                              [jt.array(m[1:2]) for m in latents.noise[:step + 1]], step).numpy()
    shown = renderer.images(parse_state("size=16&latents=faces.npz&index=1", limits), "main")
    assert np.array_equal(shown, expected)
    with pytest.raises(RequestError, match="index 2 is past the last latent"):
        renderer.images(parse_state("size=16&latents=faces.npz&index=2", limits), "main")
    with pytest.raises(RequestError, match="direction 4 is past the last"):
        renderer.images(parse_state("size=16&directions=coarse.npz&edits=4:1", limits), "main")


def fresh_renderer(tiny_renderer):
    """A Renderer of the tiny generator with empty caches."""
    from explorer.renderer import Renderer
    r = tiny_renderer
    return Renderer(r.generator, r.info, r.max_size, r.latents, r.directions)


def assert_same_draws(drawn, fresh):
    assert (drawn.mean is None) == (fresh.mean is None)
    if fresh.mean is not None:
        assert np.array_equal(drawn.mean, fresh.mean)
    assert np.array_equal(drawn.z, fresh.z)
    assert len(drawn.noise) == len(fresh.noise)
    for a, b in zip(drawn.noise, fresh.noise):
        assert np.array_equal(a, b)


@pytest.mark.slow
def test_a_prefetch_stepped_to_its_end_draws_what_seed_draws_does(tiny_renderer):
    from latents.mean_style import MEAN_STYLE_BATCH, MEAN_STYLE_LATENTS
    batches = -(-MEAN_STYLE_LATENTS // MEAN_STYLE_BATCH)
    for truncated, expected_steps in ((True, batches + 1), (False, 1)):
        renderer = fresh_renderer(tiny_renderer)
        renderer.want([5], truncated)
        steps = 0
        while renderer.prefetch():
            steps += 1
            if steps < expected_steps:               # one batch of the mean a step: not done yet
                assert renderer.prefetching is not None
                assert (5, truncated) not in renderer.draws_cache
        assert steps == expected_steps
        drawn = renderer.draws_cache.get((5, truncated))
        assert_same_draws(drawn, fresh_renderer(tiny_renderer).seed_draws(5, truncated))


@pytest.mark.slow
def test_an_interrupted_prefetch_is_drawn_again_from_its_start(tiny_renderer, monkeypatch):
    """Through the server's loop: after one step of seed 5's prefetch a request for seed 9
    comes (it re-seeds Jittor); it runs next, its picture is the one made with no prefetch in
    flight, and seed 5 is drawn again from its start: all its batches again, the same draws."""
    from explorer import server as server_module
    from explorer.server import Job
    from latents.mean_style import MEAN_STYLE_BATCH, MEAN_STYLE_LATENTS
    monkeypatch.setattr(server_module, "IDLE_BEFORE_PREFETCH", 0.0)
    batches = -(-MEAN_STYLE_LATENTS // MEAN_STYLE_BATCH)
    renderer = fresh_renderer(tiny_renderer)
    state = parse_state("seed=9&psi=0.7&size=16", renderer.limits())
    events, shown = [], {}
    stopping = threading.Event()
    prefetch = renderer.prefetch

    def request():
        events.append("job")
        assert renderer.prefetching is None and renderer.wanted[0] == (5, True)
        shown["main"] = renderer.pixels(state, "main")

    def step():
        try:
            progressed = prefetch()
        except BaseException:
            stopping.set()                                  # the server would go on: stop it
            raise
        events.append("step" if progressed else "nothing left")
        if events == ["step"]:
            events.append("half drawn" if renderer.prefetching is not None else "drawn")
            jobs.queue.put(job)
        if renderer.prefetching is None and not renderer.wanted:
            stopping.set()                                  # all drawn
        return progressed
    renderer.prefetch = step
    job = Job(request, "", 1)
    jobs = MainThreadJobs(renderer)
    jobs.last_request = time.monotonic() - 10
    renderer.want([5], True)
    serve_until_stopped(jobs, stopping, 600)
    assert job.error is None and job.done.is_set()
    assert events == ["step", "half drawn", "job"] + ["step"] * (batches + 1)
    assert np.array_equal(shown["main"], fresh_renderer(tiny_renderer).pixels(state, "main"))
    assert_same_draws(renderer.draws_cache.get((5, True)),
                      fresh_renderer(tiny_renderer).seed_draws(5, True))
    assert_same_draws(renderer.draws_cache.get((9, True)),
                      fresh_renderer(tiny_renderer).seed_draws(9, True))


def start_tiny_explorer(tiny_files, *extra):
    return start_explorer(tiny_files["checkpoint"], "--size", "32", "--latents",
                          tiny_files["latents"], "--directions", tiny_files["directions"],
                          "--out", str(tiny_files["folder"] / "out"), *extra)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, line", [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                                (signal.SIGTERM, 143, "stopped by SIGTERM")])
def test_ctrl_c_and_sigterm_stop_it_cleanly(tiny_files, signum, code, line):
    server, url = start_tiny_explorer(tiny_files)
    assert fetch(url + "api/image.png?seed=1")[0] == 200
    server.send_signal(signum)
    assert server.wait(timeout=60) == code
    stderr = server.stderr.read()
    assert stderr.strip().splitlines()[-1] == f"explore.py: {line}"
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_bad_command_lines_get_one_line(tiny_files, tmp_path):
    for args, code, message in [(["--port", "70000"], 2, "--port must be from 0 to 65535"),
                                (["--size", "48"], 2, "--size: "),
                                (["--latents", str(tmp_path / "none.npz")], 2, "does not exist")]:
        run = subprocess.run([sys.executable, "explore.py", tiny_files["checkpoint"], *args],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == code, run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("explore.py: error: ") and message in last
    run = subprocess.run([sys.executable, "explore.py", str(tmp_path / "missing.model")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr


@pytest.mark.slow
def test_the_load_tool_runs_clean(tiny_files):
    run = subprocess.run([sys.executable, "-m", "tools.load_explorer", tiny_files["checkpoint"],
                          "--size", "16", "--requests", "40", "--clients", "4", "--changes", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert re.search(r"40 requests from 4 clients .* 0 failed; good ones p50 \d+ ms, p95 \d+ ms",
                     run.stdout)
    assert "exit 143" in run.stdout
    size = r"[\d.]+ [kM]B"
    warm = re.search(rf"warm-up: (\d+) requests in \d+ rounds of 20, caches .*: draws {size} "
                     rf"of 256.0 MB \((\d+) entries\), png {size} of 64.0 MB \((\d+) entries\)",
                     run.stdout)
    assert warm and int(warm.group(1)) >= 20 and int(warm.group(2)) > 0, run.stdout
    assert int(warm.group(3)) > 0
    assert re.search(rf"caches before -> after: draws {size} -> {size} of 256.0 MB, png {size} -> "
                     rf"{size} of 64.0 MB; memory growth besides them -?[\d.]+ MB", run.stdout)


# -- the page in headless Chromium ----------------------------------------------------------------

@pytest.fixture
def browser(tmp_path):
    from tools.browser import missing, start_chromium
    problem = missing()
    if problem:
        pytest.skip(problem)
    driver = start_chromium(tmp_path / "profile")
    yield driver
    driver.quit()


def shown_picture(driver, part, timeout=120):
    """The PNG the page shows as ``part`` once it shows the page's current state, decoded."""
    deadline = time.monotonic() + timeout
    script = ("const img = document.getElementById('img-' + arguments[0]);"
              "return img.dataset.query === document.body.dataset.query ? img.src : null;")
    while time.monotonic() < deadline:
        source = driver.execute_script(script, part)
        if source:
            encoded = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {"
                "  let s = ''; const a = new Uint8Array(b);"
                "  for (let i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);"
                "  done(btoa(s)); }).catch(() => done(null));", source)
            if encoded:   # None: the page replaced that picture meanwhile
                return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))
        time.sleep(0.1)
    raise AssertionError(f"the page did not show {part} for "
                         f"{driver.execute_script('return document.body.dataset.query')}; status: "
                         f"{driver.find_element('id', 'status').text}")


def page_state(driver):
    from urllib.parse import urlsplit
    return parse_state(urlsplit(driver.current_url).query, Limits(
        32, ("faces.npz",), ("coarse.npz",)))


@pytest.mark.slow
def test_the_page_in_chromium_shows_the_library_pictures(tiny_files, tiny_renderer, browser,
                                                         tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    server, url = start_tiny_explorer(tiny_files)
    try:
        browser.get(url + "?seed=3&psi=0.7&size=16")
        first = shown_picture(browser, "main")
        assert np.array_equal(first, pixels_of(library_image(tiny_files["checkpoint"], 3, 0.7,
                                                             16)))
        # the seed: next, then typed
        browser.find_element(By.ID, "seed-next").click()
        assert page_state(browser).seed == 4
        after_next = shown_picture(browser, "main")
        assert not np.array_equal(after_next, first)
        assert np.array_equal(after_next, pixels_of(library_image(tiny_files["checkpoint"], 4,
                                                                  0.7, 16)))
        seed = browser.find_element(By.ID, "seed")
        seed.clear()
        seed.send_keys("12", Keys.ENTER)
        typed = shown_picture(browser, "main")
        assert page_state(browser).seed == 12
        assert np.array_equal(typed, pixels_of(library_image(tiny_files["checkpoint"], 12, 0.7,
                                                             16)))
        # the truncation slider, moved by keys as a person would
        browser.find_element(By.ID, "psi").send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        state = page_state(browser)
        assert state.psi == pytest.approx(0.8)
        moved = shown_picture(browser, "main")
        assert not np.array_equal(moved, typed)
        assert np.array_equal(moved, tiny_renderer.pixels(state, "main"))
        assert np.array_equal(moved, pixels_of(library_image(tiny_files["checkpoint"], 12,
                                                             state.psi, 16)))
        # mixing: the mixed picture beside its two sources
        browser.find_element(By.CSS_SELECTOR, "input[name=view][value=mix]").click()
        mixed = shown_picture(browser, "mix")
        state = page_state(browser)
        assert state.view == "mix" and state.layers == "coarse"
        assert np.array_equal(mixed, tiny_renderer.pixels(state, "mix"))
        assert np.array_equal(shown_picture(browser, "source"),
                              pixels_of(library_image(tiny_files["checkpoint"], state.seed2,
                                                      state.psi, 16)))
        assert not np.array_equal(mixed, moved)
        # a direction slider
        browser.find_element(By.CSS_SELECTOR, "input[name=view][value=single]").click()
        shown_picture(browser, "main")
        from selenium.webdriver.support.ui import Select
        Select(browser.find_element(By.ID, "directions")).select_by_value("coarse.npz")
        # the sliders appear once the page has fetched the file's description from the server
        from selenium.webdriver.support.ui import WebDriverWait
        slider = WebDriverWait(browser, 120).until(
            lambda driver: driver.find_elements(By.ID, "direction-1"))[0]
        slider.send_keys(*[Keys.ARROW_RIGHT] * 15)
        state = page_state(browser)
        assert state.edits == ((1, pytest.approx(1.5)),)
        edited = shown_picture(browser, "main")
        assert not np.array_equal(edited, moved)
        assert np.array_equal(edited, tiny_renderer.pixels(state, "main"))
        # the state survives a reload
        browser.refresh()
        assert page_state(browser) == state
        assert np.array_equal(shown_picture(browser, "main"), edited)
        assert "--direction" in browser.find_element(By.ID, "command").get_attribute("value")
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        assert browser.save_screenshot(str(tmp_path / "explorer.png"))
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 143

"""The explorer's HTTP server: the standard library's ThreadingHTTPServer, a thread per request,
one picture computed at a time (Jittor's random generator is global).

Routes (all GET but the save):

    /                      the page (explorer/page.html)
    /api/info              the model, the sizes offered, the files listed, the limits (JSON)
    /api/image.png?STATE&part=main|source|mix|grid&channel=C
                           one picture as PNG; 400 with a message for a bad state
    /api/command?STATE     the generate.py command for the picture (JSON)
    /api/file?kind=latents|directions&name=NAME
                           what a listed file holds (JSON)
    /api/stats             the bounded caches' fullness: bytes, budget, entries (JSON; for
                           tools/load_explorer.py)
    POST /api/save?STATE&part=P
                           writes the picture under the output folder, returns its path (JSON)

Jittor runs on the main thread only (``MainThreadJobs``); the request threads hand it their
work. The newest request wins: image requests name a ``channel`` (the page uses one per picture
it shows); one still waiting for its turn when a newer one of its channel arrives is answered
204 without being computed, so stale slider positions are dropped, not queued.
"""
import hashlib
import ipaddress
import json
import os
import queue
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from explorer.commands import generate_command
from files.atomic import atomic_write, make_folder
from networks.style_layers import LAYER_GROUPS
from explorer.state import (MAX_EDITS, MAX_GRID, MAX_GRID_PIXELS, MAX_QUERY, MAX_STRENGTH,
                            PSI_RANGE, RequestError, State, parse_state,
                            sizes_offered)

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.html")
API_KEYS = ("part", "channel")
CHANNEL_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
MAX_CHANNEL = 64
MAX_CHANNELS = 1024          # channels remembered; the oldest are forgotten past this
IDLE_BEFORE_PREFETCH = 0.3   # seconds without a request before neighbours' draws are made
PAGE_SECURITY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' "
                 "'unsafe-inline'; script-src 'self' 'unsafe-inline'; connect-src 'self' blob:")


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Superseded(Exception):
    """A newer request of the same channel arrived before this one's turn."""


class Job:
    def __init__(self, work, channel, ticket):
        self.work, self.channel, self.ticket = work, channel, ticket
        self.done = threading.Event()
        self.result = self.error = None


class MainThreadJobs:
    """Work for Jittor, which runs only on the thread that imported it (it crashes elsewhere):
    the request threads queue their work here and wait, and the main thread runs it in turn.
    A job whose channel has a newer job waiting is dropped unrun (``Superseded``); while the
    queue is empty the renderer draws the seeds the page is likely to ask for next, a step at a
    time; a job abandons a seed half drawn (``Renderer.interrupt``)."""

    def __init__(self, renderer):
        self.renderer = renderer
        self.queue = queue.Queue()
        self.guard = threading.Lock()
        self.tickets = {}
        self.counter = 0
        self.last_request = time.monotonic()

    def run(self, work, channel=""):
        """``work()``'s value, computed on the main thread; raises what it raised, or
        Superseded."""
        with self.guard:
            self.counter += 1
            job = Job(work, channel, self.counter)
            self.last_request = time.monotonic()
            if channel:
                self.tickets.pop(channel, None)
                self.tickets[channel] = job.ticket
                while len(self.tickets) > MAX_CHANNELS:
                    self.tickets.pop(next(iter(self.tickets)))
        self.queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def serve(self, stopping):
        """Run jobs until ``stopping`` is set (on the main thread; signals interrupt it). While
        the renderer is drawing (``idle`` did a step), the queue is looked at between its steps
        without waiting, so a request waits for one step at most."""
        busy = False
        while not stopping.is_set():
            try:
                job = self.queue.get(block=False) if busy else self.queue.get(timeout=0.05)
            except queue.Empty:
                busy = self.idle()
                continue
            busy = False
            self.renderer.interrupt()   # the job may re-seed Jittor's random generator
            try:
                with self.guard:
                    stale = job.channel and self.tickets.get(job.channel, job.ticket) != job.ticket
                if stale:
                    raise Superseded()
                job.result = job.work()
            except Exception as error:   # handed to the request's thread, which answers it
                job.error = error
            finally:
                self.last_request = time.monotonic()
                job.done.set()

    def idle(self):
        """One step of drawing the seeds the page may want next (at most one batch of a mean
        style), once no request came for a while; True when a step was made."""
        renderer = self.renderer
        if ((renderer.wanted or renderer.prefetching is not None)
                and time.monotonic() - self.last_request > IDLE_BEFORE_PREFETCH):
            try:
                return renderer.prefetch()
            except Exception as error:   # a failed prefetch only costs a later request time
                print(f"explore.py: prefetch failed: {error}", file=sys.stderr, flush=True)
                renderer.wanted.clear()
        return False


class ExplorerServer(ThreadingHTTPServer):
    daemon_threads = True          # a stuck client never holds the process at exit
    request_queue_size = 64

    def __init__(self, address, renderer, checkpoint, out, latents_paths, directions_paths):
        super().__init__(address, Handler)
        self.renderer = renderer
        self.checkpoint = checkpoint
        self.out = out
        self.latents_paths = latents_paths
        self.directions_paths = directions_paths
        self.jobs = MainThreadJobs(renderer)
        with open(PAGE, "rb") as f:
            self.page = f.read()
        self.stopping = threading.Event()

    def url(self):
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def serve(self):
        """Answer requests (on a thread) and run their Jittor work (on this, the main thread)
        until interrupted; the caller closes the server."""
        listener = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                    name="http", daemon=True)
        listener.start()
        try:
            self.jobs.serve(self.stopping)
        finally:
            self.stopping.set()
            self.shutdown()

    def info(self):
        renderer = self.renderer
        host = self.server_address[0]
        limits = renderer.limits()
        return {
            "checkpoint": os.path.basename(self.checkpoint),
            "model": {key: renderer.info[key] for key in ("code_dim", "n_mlp", "width", "kind")},
            "max_size": renderer.max_size,
            "sizes": sizes_offered(renderer.max_size),
            "latents": list(limits.latents),
            "directions": list(limits.directions),
            "host": host,
            "loopback": is_loopback(host),
            "defaults": State(size=renderer.max_size).to_query(),
            "psi_range": list(PSI_RANGE),
            "max_grid": MAX_GRID,
            "max_grid_pixels": MAX_GRID_PIXELS,
            "max_strength": MAX_STRENGTH,
            "max_edits": MAX_EDITS,
            "mixing_ranges": {name: list(r) for name, r in LAYER_GROUPS.items()},
        }

    def stats(self):
        """The caches' byte totals, budgets and entries, read without waiting for the main
        thread (plain numbers; a report, not a lock-step view)."""
        renderer = self.renderer
        caches = {"draws": getattr(renderer, "draws_cache", None),
                  "png": getattr(renderer, "png_cache", None)}
        return {"caches": {name: {"bytes": cache.total, "budget": cache.budget,
                                  "entries": len(cache)}
                           for name, cache in caches.items() if cache is not None},
                "wanted": len(renderer.wanted),
                "prefetching": getattr(renderer, "prefetching", None) is not None}

    def file_path(self, kind, name):
        catalogue = self.renderer.latents if kind == "latents" else self.renderer.directions
        return catalogue.paths().get(name) if name else None


def split_query(query, keys=API_KEYS):
    """(state pairs, {api key: value}) of a raw query string."""
    if len(query) > MAX_QUERY:
        raise RequestError(f"query string too long ({len(query)} characters, at most {MAX_QUERY})")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=32)
    except ValueError as error:
        raise RequestError(f"malformed query string: {error}") from None
    api = {}
    state_pairs = []
    for key, value in pairs:
        if key in keys:
            if key in api:
                raise RequestError(f"parameter {key!r} given twice")
            api[key] = value
        else:
            state_pairs.append((key, value))
    return state_pairs, api


def check_channel(channel):
    if len(channel) > MAX_CHANNEL or not set(channel) <= CHANNEL_CHARACTERS:
        raise RequestError(f"channel must be up to {MAX_CHANNEL} letters, digits, - or _")
    return channel


def save_name(state, part):
    """The file name a saved picture gets: what it shows, and a digest of its whole state."""
    digest = hashlib.sha1(f"{state.to_query()}&part={part}".encode()).hexdigest()[:10]
    return f"{part}-seed{state.seed}-{state.size}px-{digest}.png"


class Handler(BaseHTTPRequestHandler):
    server_version = "StyleGANExplorer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        """Quiet: a page changing its picture makes many requests; errors are printed."""

    def send_body(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, value, status=HTTPStatus.OK):
        self.send_body(status, json.dumps(value).encode(), "application/json")

    def send_error_text(self, status, message):
        self.send_body(status, (message + "\n").encode(), "text/plain; charset=utf-8")

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True   # the page gave up on this picture: nothing to say

    def do_GET(self):
        self.dispatch({"/": self.get_page, "/index.html": self.get_page,
                       "/favicon.ico": self.get_favicon, "/api/info": self.get_info,
                       "/api/image.png": self.get_image, "/api/command": self.get_command,
                       "/api/file": self.get_file, "/api/stats": self.get_stats})

    def do_POST(self):
        self.dispatch({"/api/save": self.post_save})

    def dispatch(self, routes):
        parts = urlsplit(self.path)
        route = routes.get(parts.path)
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 65536:
            self.rfile.read(length)        # a body is never used; read it to keep the connection
        elif length:
            self.close_connection = True
        if route is None:
            self.send_error_text(HTTPStatus.NOT_FOUND, f"no such page: {parts.path}")
            return
        try:
            route(parts.query)
        except RequestError as error:
            self.send_error_text(HTTPStatus.BAD_REQUEST, str(error))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:   # one request's failure is reported, and the server goes on
            print(f"explore.py: {self.command} {parts.path} failed: {type(error).__name__}: "
                  f"{error}", file=sys.stderr, flush=True)
            self.send_error_text(HTTPStatus.INTERNAL_SERVER_ERROR,
                                 f"internal error: {type(error).__name__}: {error}")

    def state(self, pairs):
        return parse_state(pairs, self.server.renderer.limits())

    def get_page(self, query):
        self.send_body(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8",
                       [("Content-Security-Policy", PAGE_SECURITY)])

    def get_favicon(self, query):
        self.send_body(HTTPStatus.NO_CONTENT, b"", "image/x-icon")

    def get_info(self, query):
        self.send_json(self.server.info())

    def get_command(self, query):
        pairs, _ = split_query(query, keys=())
        state = self.state(pairs)
        self.send_json(generate_command(state, self.server.checkpoint,
                                        self.server.file_path("latents", state.latents),
                                        self.server.file_path("directions", state.directions),
                                        self.server.renderer.info.get("flavour") == "nvidia"))

    def get_stats(self, query):
        self.send_json(self.server.stats())

    def get_file(self, query):
        _, api = split_query(query, keys=("kind", "name"))
        kind, name = api.get("kind", ""), api.get("name", "")
        if kind not in ("latents", "directions"):
            raise RequestError(f"kind must be latents or directions, got {kind!r}")
        limits = self.server.renderer.limits()
        parse_state([(kind, name)], limits)   # the same refusal as a state naming it
        self.send_json(self.server.jobs.run(lambda: self.server.renderer.describe(kind, name)))

    def get_image(self, query):
        pairs, api = split_query(query)
        state = self.state(pairs)
        part = api.get("part", "main")
        channel = check_channel(api.get("channel", ""))
        renderer = self.server.renderer

        def render():
            start = time.perf_counter()
            data, cached = renderer.png(state, part)
            return data, cached, time.perf_counter() - start
        try:
            data, cached, elapsed = self.server.jobs.run(render, channel)
        except Superseded:
            self.send_body(HTTPStatus.NO_CONTENT, b"", "image/png", [("X-Superseded", "1")])
            return
        self.send_body(HTTPStatus.OK, data, "image/png",
                       [("X-Render-Ms", f"{elapsed * 1000:.1f}"),
                        ("X-Cached", "1" if cached else "0"),
                        ("X-State", state.to_query())])

    def post_save(self, query):
        pairs, api = split_query(query)
        state = self.state(pairs)
        part = api.get("part", "main")
        data, _ = self.server.jobs.run(lambda: self.server.renderer.png(state, part))
        out = self.server.out
        make_folder(out)
        path = os.path.join(out, save_name(state, part))
        with atomic_write(path, suffix=".png") as temporary:
            with open(temporary, "wb") as f:
                f.write(data)
        self.send_json({"path": path})


def make_server(renderer, host, port, checkpoint, out, latents_paths=(), directions_paths=()):
    """The server bound to (host, port) (port 0: a free one); OSError when it cannot bind."""
    server_class = ExplorerServer
    if ":" in host:
        server_class = type("ExplorerServer6", (ExplorerServer,), {"address_family": socket.AF_INET6})
    return server_class((host, port), renderer, checkpoint, out, latents_paths, directions_paths)

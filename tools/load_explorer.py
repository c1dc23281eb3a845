"""Load test of explore.py on 127.0.0.1: starts the server on a free loopback port, times single
changes (a new truncation, the next seed, a seed never seen), then sends REQUESTS picture
requests from CLIENTS threads at once (seeds from a small pool, varied truncation, views and
sizes, one request in ten a bad one that must get its 400), and reports errors, p50/p95
latency and the server's resident memory before and after. Stops the server with SIGTERM and
checks it exits 143.

Before the measured requests, a warm-up of the same kind of traffic (rounds of REQUESTS / 2,
other seeds of the same mix, at most --warmup_rounds) fills the server's bounded caches (the
seeds' draws and the PNGs): it stops once each cache is full (90 % of its budget) or grew by
less than 5 % in a round, so "memory before -> after" shows growth, not the caches filling. The
caches' byte totals (``/api/stats``) are printed after the warm-up and after the measured
requests; a cache the warm-up could not fill (a small model's PNGs) has its own growth printed,
and it is not counted as the server's growth.

    python -m tools.load_explorer CKPT --size 32 --requests 500 --clients 8

Exit 1 when a request failed (a bad one answered other than 400, a good one other than 200),
the memory grew by more than --max_growth_mb besides the caches' growth, or the server did not
stop cleanly.
"""
import argparse
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from explorer.server import IDLE_BEFORE_PREFETCH
from tools.explorer_process import ExplorerStartError, start_explorer

MAX_REQUESTS = 10000
MAX_CLIENTS = 64
REQUEST_TIMEOUT = 120
SEED_POOL = 16
CACHE_FULL = 0.9            # a cache holding this share of its budget is full
CACHE_SETTLED = 0.05         # ... or one growing by less than this share in a warm-up round
BAD_QUERIES = ("seed=abc", "size=4096", "psi=9", "latents=../../etc/passwd", "directions=x.npz",
               "seed=1&seed=2", "view=nothing")


def resident_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Client:
    def __init__(self, url):
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path):
        """(status, seconds)."""
        start = time.perf_counter()
        try:
            with self.opener.open(self.url + path, timeout=REQUEST_TIMEOUT) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            error.read()
            status = error.code
        return status, time.perf_counter() - start

    def get_json(self, path):
        """The JSON the server answers at ``path``."""
        with self.opener.open(self.url + path, timeout=REQUEST_TIMEOUT) as response:
            return json.loads(response.read())


def cache_stats(client):
    """{cache name: {"bytes", "budget", "entries"}} of the server's bounded caches."""
    return client.get_json("api/stats")["caches"]


def amount(n_bytes):
    """Bytes in MB, or in kB below one MB (a small model's caches)."""
    return f"{n_bytes / 2 ** 20:.1f} MB" if n_bytes >= 2 ** 20 else f"{n_bytes / 2 ** 10:.1f} kB"


def describe_caches(caches):
    return ", ".join(f"{name} {amount(c['bytes'])} of {amount(c['budget'])} "
                     f"({c['entries']} entries)" for name, c in caches.items())


def settled(before, after):
    """Whether each cache is full, or grew by less than CACHE_SETTLED between two readings."""
    return all(c["bytes"] >= CACHE_FULL * c["budget"]
               or c["bytes"] - before[name]["bytes"] < CACHE_SETTLED * max(c["bytes"], 1)
               for name, c in after.items())


def warm_up(url, size, per_round, n_clients, seed, max_rounds):
    """Rounds of the measured kind of traffic (other seeds of the mix) until the caches are
    full or stop growing; (requests sent, rounds, whether they settled, failures)."""
    client = Client(url)
    caches = cache_stats(client)
    sent, failures = 0, []
    for r in range(max_rounds):
        _, round_failures = load(url, size, per_round, n_clients, f"{seed}-warm-up-{r}")
        sent += per_round
        failures += round_failures
        now = cache_stats(client)
        if settled(caches, now):
            return sent, r + 1, True, failures
        caches = now
    return sent, max_rounds, False, failures


def single_changes(client, size, repeats):
    """Latency (s) of one change at a time, the page's way: each a new picture."""
    timings = {"new truncation, same seed": [], "next seed (drawn while idle)": [],
               "a seed never seen": [], "new truncation while a neighbour is drawn": []}
    for k in range(repeats):
        seed = 1000 + 10 * k
        client.get(f"api/image.png?seed={seed}&psi=0.7&size={size}")
        time.sleep(2.0)          # idle: the server draws seed + 1 meanwhile
        timings["new truncation, same seed"].append(
            client.get(f"api/image.png?seed={seed}&psi=0.6{k}&size={size}")[1])
        time.sleep(2.0)
        timings["next seed (drawn while idle)"].append(
            client.get(f"api/image.png?seed={seed + 1}&psi=0.7&size={size}")[1])
        timings["a seed never seen"].append(
            client.get(f"api/image.png?seed={500000 + 1000 * k}&psi=0.7&size={size}")[1])
        # just after the server starts drawing that seed's neighbours (idle for
        # IDLE_BEFORE_PREFETCH): the request waits for one batch of the mean at most
        time.sleep(IDLE_BEFORE_PREFETCH + 0.02)
        timings["new truncation while a neighbour is drawn"].append(
            client.get(f"api/image.png?seed={500000 + 1000 * k}&psi=0.6{k}&size={size}")[1])
    return timings


def load(client_url, size, n_requests, n_clients, seed):
    """Run the requests; returns (latencies of good requests, failures)."""
    rng = random.Random(seed)
    plans = []
    for i in range(n_requests):
        if i % 10 == 9:
            plans.append((f"api/image.png?{rng.choice(BAD_QUERIES)}", 400))
            continue
        view = rng.choice(["single", "single", "mix", "grid"])
        part = {"single": "main", "mix": rng.choice(["main", "source", "mix"]), "grid": "grid"}[view]
        psi = rng.choice(["0.5", "0.7", "1.0"])
        query = (f"view={view}&seed={rng.randrange(SEED_POOL)}&seed2={rng.randrange(SEED_POOL)}"
                 f"&psi={psi}&size={size}&n=4&part={part}")
        plans.append((f"api/image.png?{query}", 200))
    latencies, failures = [], []
    lock = threading.Lock()
    chunks = [plans[k::n_clients] for k in range(n_clients)]

    def run(chunk):
        client = Client(client_url)
        for path, expected in chunk:
            try:
                status, seconds = client.get(path)
            except OSError as error:
                status, seconds = f"{type(error).__name__}: {error}", 0
            with lock:
                if status != expected:
                    failures.append(f"{path}: {status}, expected {expected}")
                elif expected == 200:
                    latencies.append(seconds)
    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="generator checkpoint explore.py serves")
    parser.add_argument("--size", type=int, default=32, help="picture side (default 32)")
    parser.add_argument("--requests", type=int, default=500, help="requests in all (default 500)")
    parser.add_argument("--clients", type=int, default=8, help="clients at once (default 8)")
    parser.add_argument("--changes", type=int, default=3,
                        help="repeats of the single-change timings (default 3; 0: none)")
    parser.add_argument("--max_growth_mb", type=float, default=50.0,
                        help="memory growth over the measured requests, besides the caches' own "
                             "growth, counted as a failure (default 50)")
    parser.add_argument("--warmup_rounds", type=int, default=4,
                        help="most warm-up rounds of REQUESTS / 2 requests, until the caches are "
                             "full or stop growing (default 4; 0: no warm-up)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix (default 0)")
    args = parser.parse_args()
    if not 1 <= args.requests <= MAX_REQUESTS or not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--requests 1..{MAX_REQUESTS}, --clients 1..{MAX_CLIENTS}")
    if not 0 <= args.warmup_rounds <= 100:
        parser.error("--warmup_rounds 0..100")

    try:
        server, url = start_explorer(args.path, "--host", "127.0.0.1", "--size", str(args.size))
    except ExplorerStartError as error:
        raise SystemExit(f"load_explorer: {error}") from None
    failed = False
    try:
        client = Client(url)
        if args.changes:
            for name, values in single_changes(client, args.size, args.changes).items():
                print(f"{name}: " + ", ".join(f"{v * 1000:.0f}" for v in values) + " ms")
        half = max(1, args.requests // 2)
        sent, rounds, steady, warm_failures = warm_up(url, args.size, half, args.clients,
                                                      args.seed, args.warmup_rounds)
        caches_before = cache_stats(client)
        fullness = ("full or steady" if steady else
                    "still growing" if rounds else "as they were (no warm-up)")
        print(f"warm-up: {sent} requests in {rounds} rounds of {half}, caches {fullness}: "
              f"{describe_caches(caches_before)}")
        before = resident_mb(server.pid)
        start = time.perf_counter()
        latencies, failures = load(url, args.size, args.requests, args.clients, args.seed + 1)
        elapsed = time.perf_counter() - start
        after = resident_mb(server.pid)
        caches_after = cache_stats(client)
        cache_growth = sum(c["bytes"] - caches_before[name]["bytes"]
                           for name, c in caches_after.items()) / 2 ** 20
        print(f"{args.requests} requests from {args.clients} clients in {elapsed:.1f} s: "
              f"{len(failures)} failed; good ones p50 {percentile(latencies, 50) * 1000:.0f} ms, "
              f"p95 {percentile(latencies, 95) * 1000:.0f} ms; server memory {before:.0f} -> "
              f"{after:.0f} MB (after a warm-up of {sent} requests)")
        print("caches before -> after: " + ", ".join(
            f"{name} {amount(caches_before[name]['bytes'])} -> {amount(c['bytes'])} of "
            f"{amount(c['budget'])}" for name, c in caches_after.items())
            + f"; memory growth besides them {after - before - cache_growth:.1f} MB")
        failures = warm_failures + failures
        for failure in failures[:10]:
            print(f"  failed: {failure}")
        failed = bool(failures) or after - before - cache_growth > args.max_growth_mb
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            code = "none (killed)"
        stderr = server.stderr.read().strip().splitlines()
        print(f"server stopped by SIGTERM: exit {code}; last line: "
              f"{stderr[-1] if stderr else '(none)'}")
        failed = failed or code != 143
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

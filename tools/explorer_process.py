"""explore.py as a child process on a free loopback port, for the explorer's load test, its
screenshot and its tests: started, and its URL read from the line it prints once it serves."""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVING = re.compile(r"serving (http://127\.0\.0\.1:\d+/)")
START_TIMEOUT = 900          # Jittor may compile its operators at the first start


class ExplorerStartError(RuntimeError):
    """explore.py ended, or printed no URL in time (one message, with its stderr's tail when
    that was captured)."""


def start_explorer(checkpoint, *flags, stderr=subprocess.PIPE, timeout=START_TIMEOUT):
    """``(process, url)`` of ``explore.py CHECKPOINT --port 0 FLAGS...`` run from the repository
    root, its stdout a pipe (and its stderr unless ``stderr`` says otherwise)."""
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "explore.py"), checkpoint,
                               "--port", "0", *flags], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=stderr, text=True)
    deadline = time.monotonic() + timeout
    for line in server.stdout:
        match = SERVING.search(line)
        if match:
            return server, match.group(1)
        if time.monotonic() > deadline:
            break
    server.kill()
    code = server.wait()
    detail = server.stderr.read()[-2000:] if stderr == subprocess.PIPE else f"exit {code}"
    raise ExplorerStartError(f"explore.py did not start: {detail}")

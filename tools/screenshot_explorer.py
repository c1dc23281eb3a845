"""The README's screenshot of explore.py: starts it on a free port with a checkpoint (and the
latents and directions given), opens the page at a query in headless Chromium, waits until
every picture shown is the page's current state, and saves a PNG.

    python -m tools.screenshot_explorer runs/demo/checkpoint/003000.model \\
        --latents runs/demo/own/latents.npz --directions runs/demo/own/coarse.npz \\
        --query "view=mix&latents=latents.npz&index=1&seed2=12&layers=coarse&directions=coarse.npz&edits=0:1.5" \
        --out docs/explorer_screenshot.png
"""
import argparse
import signal
import tempfile
import time

from tools.browser import missing, start_chromium
from tools.explorer_process import ExplorerStartError, start_explorer

# true once every visible picture shows the page's current state (the page marks each with it)
PICTURES_READY = ("const shown = [...document.querySelectorAll('#pictures figure')]"
                  ".filter(f => f.offsetParent !== null).map(f => f.querySelector('img'));"
                  "return shown.length > 0 && shown.every(img => img.complete && "
                  "img.naturalWidth > 0 && img.dataset.query === document.body.dataset.query);")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--latents", action="append", default=[])
    parser.add_argument("--directions", action="append", default=[])
    parser.add_argument("--query", default="", help="the page's state, as in its URL")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--out", default="explorer_screenshot.png")
    args = parser.parse_args()
    problem = missing()
    if problem:
        parser.exit(1, f"screenshot_explorer: {problem}\n")
    extra = [flag for path in args.latents for flag in ("--latents", path)]
    extra += [flag for path in args.directions for flag in ("--directions", path)]
    try:   # explore.py's stderr (Jittor compiling) goes to the terminal
        server, url = start_explorer(args.checkpoint, *extra, stderr=None)
    except ExplorerStartError as error:
        raise SystemExit(f"screenshot_explorer: {error}") from None
    try:
        with tempfile.TemporaryDirectory() as profile:
            driver = start_chromium(profile, (args.width, args.height))
            try:
                driver.get(url + ("?" + args.query if args.query else ""))
                # twice: the first load compiles Jittor's operators, the reload shows the
                # timings a user sees from then on
                for load in range(2):
                    if load:
                        driver.refresh()
                    deadline = time.monotonic() + args.timeout
                    while not driver.execute_script(PICTURES_READY):
                        if time.monotonic() > deadline:
                            raise SystemExit("screenshot_explorer: the pictures did not arrive "
                                             f"in {args.timeout:.0f} s")
                        time.sleep(0.2)
                errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                if errors:
                    raise SystemExit(f"screenshot_explorer: the page logged errors: {errors}")
                driver.save_screenshot(args.out)
            finally:
                driver.quit()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    print(f"wrote {args.out} ({url}?{args.query})")


if __name__ == "__main__":
    main()

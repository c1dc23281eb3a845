"""The command-line convention every script follows, defined once:

* 0 done;
* 2 a usage error: a bad flag value or input found before any work (``UsageError``, or
  argparse's own ``prog: error: ...`` line);
* 1 a failure at run time: a file that cannot be read or written, a full disk, ... (the
  ``failures`` a script names, and ``WriteError``);
* 130 interrupted by Ctrl-C (SIGINT) or SIGUSR1, 143 stopped by SIGTERM (128 + the signal's
  number), also when the script saved first and says so (``Stopped``).

Every error is one line on stderr, ``script.py: error: ...``, never a traceback. Outputs are
written atomically (``files/atomic.py``), so an interrupted script leaves no partial file.

    if __name__ == "__main__":
        parser = build_parser()
        cli.run(parser, lambda: main(parser.parse_args()), failures=(CheckpointError,))
"""
import argparse
import contextlib
import os
import signal
import sys

from files.atomic import WriteError

EXIT_DONE = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UsageError(ValueError):
    """A bad flag value or input, found before any work; its text is the whole message and
    names the flag or file."""


@contextlib.contextmanager
def input_errors(*types):
    """Within the block, an error of ``types`` (e.g. CheckpointError) is a usage error: a file
    the user named on the command line is of the wrong kind or unreadable, found before any work,
    so the script exits 2 with the error's line."""
    try:
        yield
    except types as error:
        raise UsageError(str(error)) from None


class Stopped(Exception):
    """The script stopped cleanly on a signal (after saving what it had): exit 143 when
    ``terminated`` (SIGTERM), else 130. Its text is the line to print."""

    def __init__(self, message, terminated=False):
        super().__init__(message)
        self.terminated = terminated


class Terminated(BaseException):
    """SIGTERM arrived (raised by the handler ``run`` installs, so ``finally`` blocks run)."""


_running_pid = None   # the process whose run() installed _terminate


def _terminate(signum, frame):
    """SIGTERM in the script: raise Terminated. In a process forked from it (a worker pool that
    inherited the handler), die of SIGTERM as the pool that sends it expects: an exception there
    would leave the worker alive and its pool waiting for it."""
    if os.getpid() != _running_pid:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends each flag's default, unless its help already says what the default is."""

    def _get_help_string(self, action):
        if "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def run(parser, action, failures=(), speaks=True, leave=sys.exit):
    """Run ``action()`` and exit with the convention above. ``UsageError`` exits 2, the
    ``failures`` types (and WriteError) 1, ``Stopped`` 130 or 143, each with one line on stderr
    (none where ``speaks`` is false: the MPI processes other than rank 0). ``leave(status)``
    ends the process (``sys.exit`` unless the script needs another way out); what it returns,
    if it returns, is returned."""
    global _running_pid
    prog = parser.prog
    _running_pid = os.getpid()
    previous = signal.signal(signal.SIGTERM, _terminate)
    status, message = EXIT_DONE, None
    try:
        action()
    except UsageError as error:
        status, message = EXIT_USAGE, f"error: {error}"
    except (WriteError, *failures) as error:
        status, message = EXIT_FAILURE, f"error: {error}"
    except Stopped as stop:
        status, message = (EXIT_TERMINATED if stop.terminated else EXIT_INTERRUPTED), str(stop)
    except KeyboardInterrupt:
        status, message = EXIT_INTERRUPTED, "interrupted (Ctrl-C)"
    except Terminated:
        status, message = EXIT_TERMINATED, "stopped by SIGTERM"
    finally:
        signal.signal(signal.SIGTERM, previous)
    if message is not None and speaks:
        print(f"{prog}: {message}", file=sys.stderr, flush=True)
    return leave(status)

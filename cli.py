"""The exit-code convention every script's command line follows (train.py has its own loop for
the signals, with the same codes):

* 0 done;
* 2 a usage error: a bad flag value (argparse's own code, with its ``prog: error: ...`` line);
* 1 a failure at run time: a file that cannot be read or written, a full disk, ...;
* 130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (128 + the signal's number).

Every error is one line on stderr, ``script.py: error: ...``, never a traceback. Outputs are
written atomically (``atomic.py``), so an interrupted script leaves no partial file.

    if __name__ == "__main__":
        parser = build_parser()
        cli.run(parser, lambda: main(parser.parse_args()), usage=(UsageError,),
                failures=(CheckpointError,))
"""
import signal
import sys

from atomic import WriteError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM arrived (raised by the handler ``run`` installs, so ``finally`` blocks run)."""


def _terminate(signum, frame):
    raise Terminated()


def run(parser, action, usage=(), failures=()):
    """Run ``action()`` and exit with the convention above: exceptions of the ``usage`` types
    exit 2, of the ``failures`` types (and WriteError) exit 1, each with one line."""
    prog = parser.prog
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        action()
    except usage as error:
        parser.exit(EXIT_USAGE, f"{prog}: error: {error}\n")
    except (WriteError, *failures) as error:
        parser.exit(EXIT_FAILURE, f"{prog}: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(EXIT_INTERRUPTED, f"{prog}: interrupted (Ctrl-C)\n")
    except Terminated:
        parser.exit(EXIT_TERMINATED, f"{prog}: stopped by SIGTERM\n")
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(0)

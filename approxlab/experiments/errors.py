"""How the command line and the ``analyses/*.py`` scripts report errors: ordinary bad input (a value, a name, a
path) as one line on stderr and exit status 2, argparse's convention, instead of a traceback; Ctrl-C as one line
and exit status 130. ``APPROXLAB_TRACEBACK=1`` shows the traceback."""

from __future__ import annotations

import os
import sys

#: errors of ordinary bad input (a value, a name, a path): one line on stderr and exit status 2, argparse's
#: convention, instead of a traceback; ``APPROXLAB_TRACEBACK=1`` shows the traceback
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, RuntimeError)


def reporting_errors(fn, *args, prog: str = "approxlab"):
    """``fn(*args)``, with ordinary bad input (:data:`USER_ERRORS`) reported as one line on stderr and exit status
    2 (:class:`CommandError`), and Ctrl-C as one line and exit status 130 (``analyses/*.py`` use it too)."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130)
    except USER_ERRORS as exc:
        if os.environ.get("APPROXLAB_TRACEBACK"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        raise CommandError(message) from None


class CommandError(SystemExit):
    """Exit status 2 for a bad command; ``str()`` is the one-line message printed on stderr."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message

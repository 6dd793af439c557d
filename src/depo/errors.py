"""User-facing errors: a command prints their message on one line and exits with code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable


class DepoError(Exception):
    """Bad input or configuration that the user can fix. Never a traceback at the CLI."""

    exit_code = 2


def describe_exception(exc: BaseException) -> str:
    """`TypeName: first line of its message`: a library's exception as part of a one-line DepoError."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"


def run_command(work: Callable[[], int | None], prog: str = "depo") -> int:
    """A command's exit code: a DepoError becomes one line on stderr (exit 2), Ctrl-C exit 130."""
    try:
        return int(work() or 0)
    except DepoError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130

"""User-facing errors: a command prints their message on one line and exits with code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable


class DepoError(Exception):
    """Bad input or configuration that the user can fix. Never a traceback at the CLI."""

    exit_code = 2


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

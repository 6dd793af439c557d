"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class DepoError(Exception):
    """Bad input or configuration that the user can fix. Never a traceback at the CLI."""

    exit_code = 2

"""How a command reports an error that ends it: one line on stderr, ``shopsync <command>: …``."""

from __future__ import annotations

import sys

from shopsync.observability.logs import redact

__all__ = ["print_error"]


def print_error(command: str, message: object) -> None:
    """Print ``message`` (an exception, or text made from one) as the command's error line.

    Redacted like a log line: an error's text can quote the configuration or the database URL,
    where a token pasted in the wrong place is token-shaped text."""
    print(f"shopsync {command}: {redact(str(message))}", file=sys.stderr)

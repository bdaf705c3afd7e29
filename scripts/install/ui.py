"""Messages to the operator, and the error that ends a run with one of them."""

from __future__ import annotations

import sys

BOLD, RESET = ("\033[1m", "\033[0m")


class Fail(Exception):
    """Ends the run: its message is printed after "error: "."""


def say(msg: str) -> None:
    print(f"{BOLD}==> {msg}{RESET}", file=sys.stderr)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)

"""The command line every service shares: ``python -m <service>`` and ``p2 serve <service>``.

A service declares its options once (``Option``) and its ``serve`` function;
``main`` parses them, runs ``serve`` and turns invalid settings into one error
line and exit code 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2.core.settings import SettingsError


@dataclass(frozen=True)
class Option:
    """``--name VALUE``; ``None`` (not given) leaves the environment's setting alone."""

    name: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None


HOST = Option("host", "bind address")
PORT = Option("port", "port", int)
MODEL = Option("model", "model file or directory", Path)


def main(
    prog: str,
    serve: Callable[..., None],
    options: Sequence[Option],
    argv: Sequence[str] | None = None,
) -> None:
    """Parse ``options`` from ``argv`` and call ``serve`` with them as keyword arguments."""
    parser = argparse.ArgumentParser(prog=prog, description=serve.__doc__)
    for option in options:
        parser.add_argument(
            f"--{option.name}", type=option.type, default=option.default, help=option.help
        )
    args = vars(parser.parse_args(argv))
    try:
        serve(**{name.replace("-", "_"): value for name, value in args.items()})
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from exc

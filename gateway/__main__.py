"""``python -m gateway [--config PATH] [--host H] [--port N]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.commands import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    serve(args.config, args.host, args.port)


if __name__ == "__main__":
    main()

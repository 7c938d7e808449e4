"""``python -m inference --role chat``: the same as ``p2 serve inference``."""

import sys

from p2.cli import app

if __name__ == "__main__":
    app(["serve", "inference", *sys.argv[1:]])

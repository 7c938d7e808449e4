"""``python -m p2``: the same as the ``p2`` command."""

from p2.cli import app

app()

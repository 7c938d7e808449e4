"""Files P2 ships (the default routing config), found the same way from a checkout or a wheel.

The files live in the repository's ``config/``; the links here make them package
data, so a non-editable install carries real copies at the same place.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped_file(name: str) -> Path:
    """The path of a shipped file, e.g. ``shipped_file("litellm.yaml")``."""
    path = Path(str(files(__package__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"P2 ships no file {name!r} (looked at {path})")
    return path

"""A non-editable install carries what P2 finds at run time: shipped files, all packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = (".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests")


def test_the_wheel_ships_the_config_and_every_layer(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: an in-tree build/ could hold stale modules
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*SKIP))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("p2-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = archive.read("p2/core/shipped/litellm.yaml").decode()
        entry_points = next(
            archive.read(n).decode() for n in names if n.endswith("entry_points.txt")
        )
    assert shipped == (ROOT / "config" / "litellm.yaml").read_text()  # a copy, not a link
    assert "p2/core/shipped/prometheus.yml" in names
    for package in ("gateway", "inference", "embedding", "rag", "benchmarks", "testkit"):
        assert f"{package}/__init__.py" in names, package
    assert "[p2.commands]\nbench = benchmarks.cli:app" in entry_points

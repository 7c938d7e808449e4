"""The build entry point's stdout is exactly the artifact's path: the Makefile reads it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inference import build

NOISY = "import sys; print('compiler noise on stdout'); print('warning', file=sys.stderr)"


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def _only_line(out: str) -> Path:
    lines = out.splitlines()
    assert len(lines) == 1, f"stdout must be one path, got {out!r}"
    path = Path(lines[0])
    assert path.is_file(), f"stdout names no file: {lines[0]!r}"
    return path


def test_wheel_prints_only_the_path(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def fake_compile(out: Path) -> None:
        build._progress("compiling (fake)")
        wheel = out / "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl"
        build._run([sys.executable, "-c", f"{NOISY}; open({str(wheel)!r}, 'w')"], "fake pip")

    monkeypatch.setattr(build, "_compile_wheel", fake_compile)
    assert build.main(["wheel"]) == 0
    captured = capfd.readouterr()
    assert _only_line(captured.out).name.endswith(".whl")
    assert "compiler noise" in captured.err

    assert build.main(["wheel"]) == 0  # cached: the same single line, nothing compiled
    assert _only_line(capfd.readouterr().out).name.endswith(".whl")


def test_llama_server_prints_only_the_path(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def fake_compile(work: Path, jobs: int) -> Path:
        binary = work / "llama-server"
        build._run([sys.executable, "-c", f"{NOISY}; open({str(binary)!r}, 'w')"], "fake cmake")
        return binary

    monkeypatch.setattr(build, "_compile_llama_server", fake_compile)
    monkeypatch.delenv("LLAMA_SERVER_BIN", raising=False)
    assert build.main(["llama-server"]) == 0
    path = _only_line(capfd.readouterr().out)
    assert path == build.cached_binary()


def test_a_failed_step_is_one_line_on_stderr_and_nothing_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def failing(out: Path) -> None:
        build._run([sys.executable, "-c", "print('noise'); raise SystemExit(3)"], "fake pip")

    monkeypatch.setattr(build, "_compile_wheel", failing)
    assert build.main(["wheel"]) == 1
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "fake pip failed with exit code 3" in captured.err

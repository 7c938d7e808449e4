"""The build entry points' stdout is exactly the artifact's path: the Makefile reads it."""

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
    monkeypatch.delenv("LLAMA_SERVER_BIN", raising=False)
    return cache


def _only_line(out: str) -> Path:
    lines = out.splitlines()
    assert len(lines) == 1, f"stdout must be one path, got {out!r}"
    path = Path(lines[0])
    assert path.is_file(), f"stdout names no file: {lines[0]!r}"
    return path


def fake_compile(calls: list[bool]) -> object:
    """Stands in for pip + CMake: noise on both streams, a wheel in ``out``, and (for the
    server) the binary and a library in the shared build tree."""

    def compile_(out: Path, *, server: bool, jobs: int | None = None) -> None:
        calls.append(server)
        build._progress("compiling (fake)")
        wheel = out / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
        tree = build.native_dir() / "cmake" / "bin"
        tree.mkdir(parents=True, exist_ok=True)
        files = [wheel] + ([tree / "llama-server", tree / "libllama.so.0"] if server else [])
        script = "; ".join(f"open({str(f)!r}, 'w')" for f in files)
        build._run([sys.executable, "-c", f"{NOISY}; {script}"], "fake pip")

    return compile_


def test_wheel_prints_only_the_path(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(build, "_compile", fake_compile(calls))
    assert build.main(["wheel"]) == 0
    captured = capfd.readouterr()
    assert _only_line(captured.out).name.endswith(".whl")
    assert "compiler noise" in captured.err

    assert build.main(["wheel"]) == 0  # cached: the same single line, nothing compiled
    assert _only_line(capfd.readouterr().out).name.endswith(".whl")
    assert calls == [False]


def test_llama_server_is_built_in_the_wheels_tree_and_copied_with_its_libraries(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(build, "_compile", fake_compile(calls))
    assert build.main(["wheel"]) == 0
    capfd.readouterr()
    assert build.main(["llama-server"]) == 0
    path = _only_line(capfd.readouterr().out)
    assert path == build.cached_binary()
    assert (path.parent / "libllama.so.0").is_file()  # beside it: its $ORIGIN run path
    assert build.find_llama_server() == path
    assert build.main(["llama-server"]) == 0  # cached
    assert calls == [False, True]


def test_a_failed_step_is_one_line_on_stderr_and_nothing_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def failing(out: Path, *, server: bool, jobs: int | None = None) -> None:
        build._run([sys.executable, "-c", "print('noise'); raise SystemExit(3)"], "fake pip")

    monkeypatch.setattr(build, "_compile", failing)
    assert build.main(["wheel"]) == 1
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "fake pip failed with exit code 3" in captured.err

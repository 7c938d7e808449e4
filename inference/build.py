"""Build llama.cpp natively: the llama-cpp-python wheel and ``llama-server``.

Both are compiled with the same explicit CPU feature flags. ``-march=native``
is avoided on purpose: on Xeons that advertise AMX it compiles ggml's AMX
kernels, which crashed on the first decode here. The flags are part of the
cache key, so a wheel built with other flags is never reused by mistake.

The sdist of llama-cpp-python carries llama.cpp at the exact commit the
Python engine uses, so both engines run the same kernels. CMake runs offline.

Run without the project installed: ``python -m inference.build wheel|llama-server``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"

# ggml option -> /proc/cpuinfo flag that must be present (x86-64 only).
_X86_FEATURES = {
    "GGML_AVX": "avx",
    "GGML_AVX2": "avx2",
    "GGML_FMA": "fma",
    "GGML_F16C": "f16c",
    "GGML_BMI2": "bmi2",
    "GGML_AVX_VNNI": "avx_vnni",
    "GGML_AVX512": "avx512f",
    "GGML_AVX512_VBMI": "avx512vbmi",
    "GGML_AVX512_VNNI": "avx512_vnni",
    "GGML_AVX512_BF16": "avx512_bf16",
}


def cpu_cmake_flags() -> list[str]:
    """ggml CPU flags for this machine, AMX always off."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return ["-DGGML_NATIVE=ON"]
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    args = [
        "-DGGML_NATIVE=OFF",
        "-DGGML_AMX_TILE=OFF",
        "-DGGML_AMX_INT8=OFF",
        "-DGGML_AMX_BF16=OFF",
    ]
    args += [f"-D{opt}={'ON' if flag in flags else 'OFF'}" for opt, flag in _X86_FEATURES.items()]
    return args


def flags_key() -> str:
    return hashlib.sha256(" ".join(cpu_cmake_flags()).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class BuildSettings:
    """The two variables the build reads. Plain (no pydantic): this module runs before the
    project and its dependencies are installed."""

    cache_home: Path  # XDG_CACHE_HOME
    llama_server_bin: Path | None  # LLAMA_SERVER_BIN

    @classmethod
    def from_environ(cls) -> BuildSettings:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        binary = os.environ.get("LLAMA_SERVER_BIN")
        return cls(Path(cache), Path(binary) if binary else None)


def p2_cache() -> Path:
    return BuildSettings.from_environ().cache_home / "p2"


def build_wheel() -> Path:
    """The llama-cpp-python wheel for this CPU, built once per flag set."""
    out = p2_cache() / "wheels" / f"llama-cpp-python-{LLAMA_CPP_PYTHON}-{flags_key()}"
    found = sorted(out.glob("llama_cpp_python-*.whl"))
    if found:
        return found[-1]
    out.mkdir(parents=True, exist_ok=True)
    _progress(f"compiling llama-cpp-python {LLAMA_CPP_PYTHON} (several minutes)")
    _compile_wheel(out)
    found = sorted(out.glob("llama_cpp_python-*.whl"))
    if not found:
        raise BuildError("building the llama-cpp-python wheel produced no wheel")
    return found[-1]


def _compile_wheel(out: Path) -> None:
    """``pip wheel`` llama-cpp-python into ``out`` with P2's CPU flags."""
    env = {**os.environ, "CMAKE_ARGS": " ".join(["-DLLAVA_BUILD=OFF", *cpu_cmake_flags()])}
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "-w",
            str(out),
            f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
        ],
        "build the llama-cpp-python wheel",
        env=env,
    )


CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
)


class BuildError(RuntimeError):
    """A native build failed; the message says at which step."""


def cached_binary() -> Path:
    return p2_cache() / "bin" / f"llama-server-{version('llama-cpp-python')}-{flags_key()}"


def find_llama_server(configured: Path | None = None) -> Path | None:
    """``configured`` (``LLAMA_SERVER_BIN``), then ``llama-server`` on PATH, then P2's build."""
    if configured is not None:
        return configured if configured.is_file() else None
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    cached = cached_binary()
    return cached if cached.is_file() else None


def _progress(message: str) -> None:
    """Progress goes to stderr: stdout carries only the built artifact's path."""
    print(f"[p2 build] {message}", file=sys.stderr, flush=True)


def _run(
    argv: list[str], step: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    _progress(f"{step}: {' '.join(argv)}")
    # The child's stdout joins stderr, so `$(python -m inference.build ...)` sees only the path.
    result = subprocess.run(argv, cwd=cwd, env=env, stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise BuildError(f"{step} failed with exit code {result.returncode}")


def build_llama_server(jobs: int | None = None) -> Path:
    """``llama-server`` for this CPU, compiled once per llama-cpp-python version and flag set."""
    target = cached_binary()
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="p2-llama-server-") as tmp:
        built = _compile_llama_server(Path(tmp), jobs or os.cpu_count() or 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.chmod(0o755)
        partial.replace(target)
    return target


def _compile_llama_server(work: Path, jobs: int) -> Path:
    """Fetch the sdist llama-cpp-python vendors llama.cpp in, and build its server in ``work``."""
    pinned = version("llama-cpp-python")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(work),
            f"llama-cpp-python=={pinned}",
        ],
        "fetch the llama-cpp-python sdist",
    )
    sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    source = work / sdist.name.removesuffix(".tar.gz") / "vendor" / "llama.cpp"
    if not (source / "CMakeLists.txt").is_file():
        raise BuildError(f"no vendored llama.cpp in {sdist.name}")
    build = work / "build"
    _run(
        ["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS, *cpu_cmake_flags()],
        "configure",
    )
    _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)], "compile")
    return build / "bin" / "llama-server"


def main(argv: list[str]) -> int:
    """Print one line on stdout (the artifact's path, or the flags); all else goes to stderr."""
    builders = {"wheel": build_wheel, "llama-server": build_llama_server}
    if argv == ["cmake-args"]:
        print(" ".join(cpu_cmake_flags()))
        return 0
    if len(argv) != 1 or argv[0] not in builders:
        print("usage: python -m inference.build wheel|llama-server|cmake-args", file=sys.stderr)
        return 2
    try:
        path = builders[argv[0]]()
    except BuildError as exc:
        print(f"[p2 build] error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

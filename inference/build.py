"""Build llama.cpp natively: the llama-cpp-python wheel and, from the same tree, ``llama-server``.

Both are compiled with the same explicit CPU feature flags. ``-march=native``
is avoided on purpose: on Xeons that advertise AMX it compiles ggml's AMX
kernels, which crashed on the first decode here. The flags are part of the
cache key, so a build with other flags is never reused by mistake.

The llama-cpp-python sdist carries llama.cpp at the exact commit the Python
engine uses. It is unpacked once into P2's cache and built with a persistent
CMake tree (scikit-build-core ``build-dir``): ``wheel`` builds the Python
package's libraries there; ``llama-server`` then builds only the server target
(and the libraries it adds: llama-common, mtmd, the server itself) in the same
tree, so the kernels are compiled once and both engines run the very same ones.
The server is linked against those shared libraries with an ``$ORIGIN`` run
path and copied with them into one relocatable directory.

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


class BuildError(RuntimeError):
    """A native build failed; the message says at which step."""


def native_dir() -> Path:
    """Everything built for this llama-cpp-python version and flag set."""
    return p2_cache() / "llama.cpp" / f"{LLAMA_CPP_PYTHON}-{flags_key()}"


def cached_binary() -> Path:
    return native_dir() / "server" / "llama-server"


# CMake options of both builds: the same libraries, linked to be copied side by side,
# and no web UI (its build would try a download).
_COMMON_CMAKE = (
    "-DLLAVA_BUILD=OFF",
    "-DCMAKE_BUILD_RPATH=$ORIGIN",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)
_SERVER_CMAKE = ("-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON")


def build_wheel() -> Path:
    """The llama-cpp-python wheel for this CPU, built once per flag set."""
    out = native_dir() / "wheel"
    found = sorted(out.glob("llama_cpp_python-*.whl"))
    if found:
        return found[-1]
    _progress(f"compiling llama-cpp-python {LLAMA_CPP_PYTHON} (several minutes)")
    native_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=native_dir()) as tmp:
        _compile(Path(tmp), server=False)
        built = sorted(Path(tmp).glob("llama_cpp_python-*.whl"))
        if not built:
            raise BuildError("building the llama-cpp-python wheel produced no wheel")
        out.mkdir(parents=True, exist_ok=True)
        built[-1].replace(out / built[-1].name)
    return out / built[-1].name


def build_llama_server(jobs: int | None = None) -> Path:
    """``llama-server`` for this CPU, built in the wheel's CMake tree (only the server's
    own parts compile if the wheel was built there), then copied with its libraries."""
    target = cached_binary()
    if target.is_file():
        return target
    _progress("compiling llama-server in the wheel's build tree")
    native_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="server-", dir=native_dir()) as tmp:
        _compile(Path(tmp), server=True, jobs=jobs)
        built = native_dir() / "cmake" / "bin"
        staged = Path(tmp) / "server"
        staged.mkdir()
        for path in [built / "llama-server", *built.glob("*.so*")]:
            shutil.copy2(path, staged / path.name, follow_symlinks=False)
        if target.parent.exists():
            shutil.rmtree(target.parent)
        staged.replace(target.parent)
    return target


def _sources() -> Path:
    """The llama-cpp-python sdist, unpacked once: a fixed source path keeps the CMake tree
    valid from one build to the next."""
    root = native_dir() / "src"
    source = root / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    if (source / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        return source
    native_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="src-", dir=native_dir()) as tmp:
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
                tmp,
                f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
            ],
            "fetch the llama-cpp-python sdist",
        )
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp, filter="data")
        unpacked = Path(tmp) / sdist.name.removesuffix(".tar.gz")
        if not (unpacked / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
            raise BuildError(f"no vendored llama.cpp in {sdist.name}")
        if root.exists():
            shutil.rmtree(root)
        root.mkdir()
        unpacked.replace(source)
    return source


def _compile(out: Path, *, server: bool, jobs: int | None = None) -> None:
    """``pip wheel`` the sources into ``out`` with P2's flags, in the persistent CMake tree;
    ``server``: build the llama-server target (and its libraries) as well."""
    source = _sources()
    cmake = [*_COMMON_CMAKE, *cpu_cmake_flags(), *(_SERVER_CMAKE if server else ())]
    env = {**os.environ, "CMAKE_ARGS": " ".join(cmake)}
    if jobs:
        env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(jobs)
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(out)]
    argv += ["-C", f"build-dir={native_dir() / 'cmake'}"]
    if server:
        argv += ["-C", "build.targets=llama-server"]
    _run([*argv, str(source)], "build llama-server" if server else "build the wheel", env=env)


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

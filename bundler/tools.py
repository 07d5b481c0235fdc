"""Tools a bundle carries: llama.cpp's converter (from the pinned llama-cpp-python sdist, via appliance.tools)
and, on request, a llama-cpp-python wheel built for the target.

The wheel build compiles llama.cpp (about 7 minutes on 2 cores). It uses portable CPU flags (-DGGML_NATIVE=OFF:
the default -march=native would crash on an older CPU at the site) and adds -DGGML_CUDA=on for a CUDA target,
which needs nvcc here. --no-cache-dir matters: pip's wheel cache ignores CMAKE_ARGS and would hand back a
native build made earlier.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from appliance.errors import AirlockError
from appliance.fetch import fetch_pinned
from appliance.tools import LLAMA_CPP_PYTHON, ensure_converter

from .spec import Target
from .wheels import check_buildable


def converter(log=print) -> Path:
    """The unpacked converter directory (fetched once from the registry, hash-checked)."""
    return ensure_converter(log=log)


def cmake_args(target: Target) -> str:
    args = ["-DGGML_NATIVE=OFF"]
    if target.accelerator.startswith("cuda"):
        if not shutil.which("nvcc"):
            raise AirlockError("the target asks for CUDA, but there is no CUDA compiler (nvcc) here",
                               where="spec: target.accelerator",
                               fix="build on a machine with the CUDA toolkit, or set tools.llama_cpp_wheel_file")
        args.append("-DGGML_CUDA=on")
    return " ".join(args)


def build_llama_cpp_wheel(target: Target, dest: Path, log=print) -> Path:
    """Build llama-cpp-python==pin from its hash-checked sdist into a portable wheel for `target`."""
    check_buildable(target)
    sdist = fetch_pinned(LLAMA_CPP_PYTHON.package, LLAMA_CPP_PYTHON.version, LLAMA_CPP_PYTHON.filename,
                         LLAMA_CPP_PYTHON.sha256, sdist=True)
    env = dict(os.environ, CMAKE_ARGS=cmake_args(target),
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2), PIP_DISABLE_PIP_VERSION_CHECK="1")
    log(f"building llama-cpp-python {LLAMA_CPP_PYTHON.version} for the target ({env['CMAKE_ARGS']}); "
        "this takes several minutes ...")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                                 "--progress-bar=off", "-w", tmp, str(sdist)], env=env, capture_output=True,
                                text=True)
        built = list(Path(tmp).glob("llama_cpp_python-*.whl"))
        if result.returncode != 0 or not built:
            raise AirlockError("building the llama-cpp-python wheel failed:\n" + result.stderr[-2000:],
                               where="spec: tools.llama_cpp_wheel", fix="install cmake and a C++ compiler")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(built[0], dest / built[0].name))

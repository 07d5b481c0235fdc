"""A CUDA compiler for building llama.cpp for a CUDA host, on a connected machine that has no GPU and no CUDA
toolkit: for `accelerator: cuda13`, NVIDIA's own compiler, runtime, cuBLAS and CCCL wheels from the package
registry, installed into a throw-away directory of the bundle's work area and laid out as a toolkit; for cuda12,
the machine's own `nvcc` when it is CUDA 12 and has cuBLAS. Either way nvcc's major version is checked against the
target's and a missing part is named with its fix.

The registry toolchain is pinned to the CUDA runtime torch 2.13.0 brings (cudart 13.0.96, cuBLAS 13.1.1.3): the
llama.cpp it builds loads the very libraries the bundle's NVIDIA wheels install at the site.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from appliance.errors import AirlockError

from .spec import Target

REGISTRY_TOOLCHAINS = {
    "13": {"nvidia-cuda-nvcc": "13.0.88", "nvidia-cuda-runtime": "13.0.96", "nvidia-cublas": "13.1.1.3",
           "nvidia-cuda-cccl": "13.0.85", "nvidia-nvvm": "13.0.88", "nvidia-cuda-crt": "13.0.88"},
}
# The oldest NVIDIA driver branch each CUDA major runs on (NVIDIA's CUDA release notes): a host's driver must be at
# least this (`nvidia-smi` prints it).
MIN_DRIVER = {"12": "525", "13": "580"}
DEFAULT_TOOLKIT = Path("/usr/local/cuda")  # where NVIDIA's installers put a toolkit
WHERE = "spec: target.accelerator"


def major_of(target: Target) -> str:
    return target.accelerator[len("cuda"):].split(".")[0]


def nvcc_major(nvcc: Path) -> str | None:
    run = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True)
    found = re.search(r"release (\d+)\.\d+", run.stdout)
    return found[1] if run.returncode == 0 and found else None


def toolchain(target: Target, work: Path, log=print) -> dict:
    """{"nvcc", "root", "env"} of a CUDA compiler for the target's CUDA major."""
    major = major_of(target)
    if major in REGISTRY_TOOLCHAINS:
        return registry_toolchain(major, work / f"cuda{major}-toolkit", log)
    return system_toolchain(major)


def registry_toolchain(major: str, root: Path, log=print) -> dict:
    """NVIDIA's wheels from the package registry, laid out as a toolkit under `root` (kept between builds)."""
    pins = REGISTRY_TOOLCHAINS[major]
    cu = root / "nvidia" / f"cu{major}"
    if not (cu / "bin" / "nvcc").is_file():
        log(f"CUDA {major} toolchain from the package registry: " + ", ".join(f"{p}=={v}" for p, v in pins.items()))
        run = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(root),
                              *(f"{p}=={v}" for p, v in pins.items())], capture_output=True, text=True,
                             env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
        if run.returncode != 0:
            raise AirlockError(f"the CUDA {major} compiler wheels did not install:\n{run.stderr[-1500:]}",
                               where=WHERE, code="cuda.toolchain",
                               fix="check access to the package registry (pip's index settings), or give a wheel "
                               "built elsewhere as tools.llama_cpp_wheel_file")
    _lay_out(cu)
    return _checked(cu / "bin" / "nvcc", cu, major)


def _lay_out(cu: Path) -> None:
    """What a CUDA toolkit has and the wheels leave out: the targets/<arch> tree nvcc's profile names, lib64, and
    the unversioned library names CMake links with."""
    target_dir = cu / "targets" / "x86_64-linux"
    target_dir.mkdir(parents=True, exist_ok=True)
    for name, dest in (("include", "../../include"), ("lib", "../../lib"), ("lib64", "../../lib")):
        if not (target_dir / name).is_symlink():
            (target_dir / name).symlink_to(dest)
    if not (cu / "lib64").exists():
        (cu / "lib64").symlink_to("lib")
    for lib in cu.glob("lib/lib*.so.*"):
        plain = lib.with_name(lib.name.split(".so.")[0] + ".so")
        if not plain.exists():
            plain.symlink_to(lib.name)


def system_toolchain(major: str) -> dict:
    """This machine's nvcc (PATH, CUDACXX or /usr/local/cuda), if it is CUDA `major` and has cuBLAS."""
    candidates = [os.environ.get("CUDACXX"), shutil.which("nvcc"), DEFAULT_TOOLKIT / "bin" / "nvcc"]
    nvcc = next((Path(c) for c in candidates if c and Path(c).is_file()), None)
    if nvcc is None:
        raise AirlockError(f"the target asks for CUDA {major}, and there is no CUDA {major} compiler here",
                           where=WHERE, code="cuda.no_nvcc",
                           fix=f"install CUDA {major}'s toolkit with cuBLAS (nvcc on PATH), or use accelerator: cuda13 "
                           "(its compiler comes from the package registry), or set tools.llama_cpp_wheel_file")
    root = nvcc.resolve().parent.parent
    return _checked(nvcc, root, major)


def _checked(nvcc: Path, root: Path, major: str) -> dict:
    found = nvcc_major(nvcc)
    if found != major:
        raise AirlockError(f"{nvcc} is CUDA {found or '(unknown)'}, the target is CUDA {major}", where=WHERE,
                           code="cuda.nvcc_major", fix=f"put a CUDA {major} nvcc first on PATH (or CUDACXX), or set "
                           f"target.accelerator: cuda{found}" if found else "check the nvcc installation")
    libs = [root / d for d in ("lib", "lib64", "targets/x86_64-linux/lib")] + [Path("/usr/lib/x86_64-linux-gnu")]
    headers = [root / d for d in ("include", "targets/x86_64-linux/include")] + [Path("/usr/include")]
    missing = [part for part, dirs, pattern in (("cuBLAS headers (cublas_v2.h)", headers, "cublas_v2.h"),
                                               ("cuBLAS libraries (libcublas.so)", libs, "libcublas.so"),
                                               ("the CUDA runtime (libcudart.so)", libs, "libcudart.so"))
               if not any((d / pattern).exists() for d in dirs)]
    if missing:
        raise AirlockError(f"the CUDA {major} toolkit at {root} lacks {', '.join(missing)}: llama.cpp's CUDA build "
                           "links them (CMake fails with 'CUDA::cublas target was not found')", where=WHERE,
                           code="cuda.incomplete", fix=f"install CUDA {major}'s cuBLAS development files (e.g. "
                           f"apt-get install libcublas-dev-{major}-0 from NVIDIA's repository), or use accelerator: "
                           "cuda13, whose complete toolchain comes from the package registry")
    env = {"PATH": f"{nvcc.parent}{os.pathsep}{os.environ.get('PATH', '')}", "CUDACXX": str(nvcc),
           "CUDAToolkit_ROOT": str(root), "CUDA_PATH": str(root)}
    return {"nvcc": nvcc, "root": root, "env": env}

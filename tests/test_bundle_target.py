"""Which wheels fit the target: Python and ABI tags (abi3 included), manylinux platforms up to the target's glibc,
the torch build for the accelerator, pure-Python sdists built into wheels and compiled ones refused, and the
llama.cpp build flags for CPU and CUDA hosts.

    .venv/bin/python -m pytest tests/test_bundle_target.py -q
"""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from appliance.errors import AirlockError
from bundler.spec import Target, WheelsSpec
from bundler.wheels import Wheel, check_compatible, check_torch, download, pure_wheels_dir, torch_build


def wheel(filename: str) -> Wheel:
    name, version, *_, py, abi, plat = filename.removesuffix(".whl").split("-")
    return Wheel(Path(filename), name.lower(), version, "0" * 64, f"{py}-{abi}-{plat}")


@pytest.mark.parametrize("filename", [
    "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl",
    "tokenizers-0.23.3-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "cryptography-50.0.2-cp311-abi3-manylinux_2_28_x86_64.whl",
    "safetensors-0.8.0-cp38-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "six-1.17.0-py2.py3-none-any.whl",
    "jieba-0.42.1-py3-none-any.whl",
    "psutil-7.2.2-cp36-abi3-manylinux2010_x86_64.manylinux_2_12_x86_64.whl",
])
def test_wheels_that_fit_a_glibc_2_28_cpython_3_11_host(filename):
    check_compatible(wheel(filename), Target(glibc="2.28"), "test")


@pytest.mark.parametrize("filename,why", [
    ("torch-2.13.0-cp312-cp312-manylinux_2_28_x86_64.whl", "CPython 3.11"),
    ("foo-1.0-cp312-abi3-manylinux_2_17_x86_64.whl", "CPython 3.11"),
    ("foo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", "x86_64"),
    ("foo-1.0-cp311-cp311-musllinux_1_2_x86_64.whl", "manylinux"),
    ("llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl", "auditwheel"),
    ("foo-1.0-cp311-cp311-manylinux_2_34_x86_64.whl", "needs glibc 2.34"),
    ("foo-1.0-cp311-cp311-win_amd64.whl", "platform"),
])
def test_wheels_that_do_not_fit_are_refused_with_the_reason(filename, why):
    with pytest.raises(AirlockError, match=why) as err:
        check_compatible(wheel(filename), Target(glibc="2.28"), "test")
    assert err.value.fix


def test_platforms_go_no_newer_than_the_targets_glibc():
    tags = Target(glibc="2.28").platforms()
    assert "manylinux_2_28_x86_64" in tags and "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_29_x86_64" not in tags
    assert Target(arch="aarch64", glibc="2.31").platforms()[0] == "manylinux_2_31_aarch64"
    with pytest.raises(AirlockError, match="glibc"):
        Target(glibc="2.5").validate()


def _torch(tmp_path: Path, version: str, requires: list[str]) -> Path:
    path = tmp_path / f"torch-{version}-cp311-cp311-manylinux_2_28_x86_64.whl"
    meta = "Metadata-Version: 2.1\nName: torch\nVersion: " + version + "\n" + \
        "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"torch-{version.split('+')[0]}.dist-info/METADATA", meta)
    return path


def test_torch_build_is_read_from_the_wheel(tmp_path):
    assert torch_build(_torch(tmp_path, "2.13.0+cpu", ["filelock", "sympy>=1.13"])) == "cpu"
    assert torch_build(_torch(tmp_path, "2.13.0+cu126", ["nvidia-cublas-cu12==12.6.4.1"])) == "cuda12"
    assert torch_build(_torch(tmp_path, "2.13.0", ["nvidia-cublas-cu13 ; platform_system == 'Linux'",
                                                   "cuda-toolkit[cublas]==13.0.2"])) == "cuda13"


def test_a_cpu_torch_is_refused_for_a_cuda_target_and_the_reverse(tmp_path):
    cpu = _torch(tmp_path, "2.13.0+cpu", [])
    w = Wheel(cpu, "torch", "2.13.0+cpu", "0" * 64, "cp311-cp311-manylinux_2_28_x86_64")
    with pytest.raises(AirlockError, match="cpu build of torch; the target needs cuda13") as err:
        check_torch([w], Target(accelerator="cuda13"))
    assert err.value.code == "wheels.torch_build" and "registry's torch is the CUDA 13 build" in err.value.fix
    with pytest.raises(AirlockError) as err:
        check_torch([w], Target(accelerator="cuda12"))
    assert "download.pytorch.org/whl/cu128" in err.value.fix and "accelerator: cuda13" in err.value.fix
    check_torch([w], Target())
    (tmp_path / "cuda").mkdir()
    cuda = _torch(tmp_path / "cuda", "2.13.0", ["nvidia-nccl-cu13"])
    with pytest.raises(AirlockError, match="download.pytorch.org/whl/cpu"):
        check_torch([Wheel(cuda, "torch", "2.13.0", "0" * 64, "cp311-cp311-manylinux_2_28_x86_64")], Target())


def _sdist(tmp_path: Path, name: str, compiled: bool) -> Path:
    src = tmp_path / f"src-{name}"
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text("VALUE = 1\n")
    ext = f', ext_modules=[Extension("{name}._fast", ["fast.c"])]' if compiled else ""
    if compiled:
        (src / "fast.c").write_text("#include <Python.h>\nstatic struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "
                                    "\"_fast\"};\nPyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&m); }\n")
    (src / "setup.py").write_text(f"from setuptools import setup, Extension\nsetup(name={name!r}, version='1.0', "
                                  f"packages=[{name!r}]{ext})\n")
    out = tmp_path / "index"
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(out)], cwd=src, check=True,
                   capture_output=True)
    return out


def _build_from_sdist(tmp_path: Path, name: str, compiled: bool) -> Path:
    """Download `name` for the target: it has only an sdist, so it is built here first (kept in the home's pure
    wheels for the next resolution) and the download for the target takes it from there."""
    index = _sdist(tmp_path, name, compiled)
    dest = tmp_path / "wheels"
    dest.mkdir()
    download([f"{name}==1.0"], Target(), dest, WheelsSpec(find_links=[index]), None, log=lambda m: None)
    return dest


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """The pure wheels these tests build stay in their own home, not the session's shared wheels."""
    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path / "home"))


def _registry():
    """The sdists below are found in find_links; building them fetches setuptools from the registry."""
    from test_bundle_registry import _registry_answers

    return pytest.mark.skipif(not _registry_answers(), reason="no package registry answers from here")


@pytest.mark.registry
@_registry()
def test_a_pure_python_sdist_is_built_into_a_wheel(tmp_path):
    dest = _build_from_sdist(tmp_path, "airlock_pure_only", compiled=False)
    assert [p.name for p in dest.iterdir()] == ["airlock_pure_only-1.0-py3-none-any.whl"]
    assert [p.name for p in pure_wheels_dir().iterdir()] == ["airlock_pure_only-1.0-py3-none-any.whl"]
    # the next resolution finds it kept: no sdist needed any more
    (tmp_path / "index" / "airlock_pure_only-1.0.tar.gz").unlink()
    again = tmp_path / "again"
    again.mkdir()
    download(["airlock_pure_only==1.0"], Target(), again, WheelsSpec(), None, log=lambda m: None)
    assert [p.name for p in again.iterdir()] == ["airlock_pure_only-1.0-py3-none-any.whl"]


@pytest.mark.registry
@_registry()
def test_a_compiled_sdist_is_refused_naming_it(tmp_path):
    with pytest.raises(AirlockError, match="airlock_compiled==1.0 has no wheel for the target, and its sdist "
                                           "compiles code") as err:
        _build_from_sdist(tmp_path, "airlock_compiled", compiled=True)
    assert "wheels.files" in err.value.fix and not list((tmp_path / "wheels").iterdir())


def test_llama_cpp_build_flags_follow_the_target():
    from bundler import tools

    assert tools.cmake_args(Target()) == "-DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF -DLLAVA_BUILD=OFF"
    args = tools.cmake_args(Target(accelerator="cuda13", cuda_architectures="80;90"))
    assert "-DGGML_CUDA=on" in args and "-DCMAKE_CUDA_ARCHITECTURES=80;90" in args
    assert "-DGGML_CUDA_NO_VMM=ON" in args  # no direct link to the driver: the binding loads on a host without one


def _fake_nvcc(root: Path, release: str, parts=("cublas",)) -> Path:
    """A CUDA toolkit layout whose nvcc says `release`; with the cuBLAS and runtime files `parts` names."""
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "lib64").mkdir()
    nvcc = root / "bin" / "nvcc"
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.1'\n")
    nvcc.chmod(0o755)
    if "cublas" in parts:
        (root / "include" / "cublas_v2.h").write_text("")
        (root / "lib64" / "libcublas.so").write_text("")
    if "cudart" in parts:
        (root / "lib64" / "libcudart.so").write_text("")
    return nvcc


@pytest.mark.parametrize("release, parts, code", [
    ("12.4", ("cublas", "cudart"), None),
    ("13.0", ("cublas", "cudart"), "cuda.nvcc_major"),    # the wrong major for a cuda12 target
    ("12.4", ("cudart",), "cuda.incomplete"),             # nvcc without cuBLAS: CMake's 'CUDA::cublas not found'
])
def test_cuda_system_toolchain_checks_nvcc_major_and_cublas(tmp_path, monkeypatch, release, parts, code):
    from bundler import cuda

    monkeypatch.setenv("CUDACXX", str(_fake_nvcc(tmp_path / "cuda", release, parts)))
    if code is None:
        found = cuda.toolchain(Target(accelerator="cuda12"), tmp_path)
        assert found["env"]["CUDAToolkit_ROOT"] == str(tmp_path / "cuda")
        return
    with pytest.raises(AirlockError) as err:
        cuda.toolchain(Target(accelerator="cuda12"), tmp_path)
    assert err.value.code == code and ("cuBLAS" in err.value.message or "CUDA 13" in err.value.message)


def test_cuda_without_any_nvcc_names_the_registry_route(tmp_path, monkeypatch):
    from bundler import cuda

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDACXX", raising=False)
    monkeypatch.setattr(cuda, "DEFAULT_TOOLKIT", tmp_path / "no-toolkit")
    with pytest.raises(AirlockError) as err:
        cuda.toolchain(Target(accelerator="cuda12"), tmp_path)
    assert err.value.code == "cuda.no_nvcc" and "cuda13" in err.value.fix


@pytest.mark.registry
@pytest.mark.slow
def test_cuda13_toolchain_from_the_registry_compiles_a_kernel(tmp_path):
    """The cuda13 route: NVIDIA's compiler, runtime, cuBLAS and CCCL wheels from the package registry, laid out as a
    toolkit, compile and link a CUDA program that uses CUB (as llama.cpp's kernels do) on a machine without a GPU."""
    import subprocess

    from bundler import cuda
    from test_bundle_registry import _registry_answers

    if not _registry_answers():
        pytest.skip("no package registry answers from here")
    found = cuda.toolchain(Target(accelerator="cuda13"), tmp_path, log=lambda *_: None)
    source = tmp_path / "k.cu"
    source.write_text("#include <cub/cub.cuh>\n#include <cublas_v2.h>\n__global__ void k(float *x) { x[0] = 1; }\n"
                      "int main() { cublasHandle_t h; return cublasCreate(&h) == CUBLAS_STATUS_SUCCESS ? 0 : 1; }\n")
    run = subprocess.run([str(found["nvcc"]), "-arch=sm_80", "-o", str(tmp_path / "k"), str(source), "-lcublas"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert cuda.nvcc_major(found["nvcc"]) == "13"


def test_appliance_spec_needs_an_env(tmp_path):
    from appliance import schema
    from bundler.spec import BundleSpec

    with pytest.raises(AirlockError, match="carries its own Python env") as err:
        schema.build(BundleSpec, {"name": "a", "version": "1.0", "appliance": True})
    assert "wheelhouse" in err.value.fix


def test_a_stopped_llama_cpp_build_resumes_in_the_same_tree(tmp_path):
    """The source and build trees of a target's llama.cpp build are kept until its wheel exists: a second start
    (after a stop, a crash, a reboot: the CUDA build takes hours on a small machine) gets the same trees, with what
    was compiled; a tree left half-unpacked is made again."""
    import tarfile

    from bundler import tools

    src = tmp_path / "pkg-1.0"
    src.mkdir()
    (src / "pyproject.toml").write_text("[project]\nname = 'pkg'\n")
    sdist = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src, arcname="pkg-1.0")
    said = []
    source, build = tools._resumable_tree(sdist, tmp_path / "kept", log=said.append)
    assert (source / "pyproject.toml").is_file() and build.is_dir() and not said
    (build / "compiled.o").write_bytes(b"object")
    again = tools._resumable_tree(sdist, tmp_path / "kept", log=said.append)
    assert again == (source, build) and (build / "compiled.o").is_file() and "resuming" in said[0]
    (source / "pyproject.toml").unlink()  # as if unpacking had been cut short
    fresh_source, fresh_build = tools._resumable_tree(sdist, tmp_path / "kept", log=said.append)
    assert (fresh_source / "pyproject.toml").is_file() and not (fresh_build / "compiled.o").exists()

"""Hosts as they are, on the connected side: the appliance's whole stack resolves for every supported host Python
(3.11, 3.12, 3.13) at the oldest glibc Airlock supports (2.28: RHEL 8) and at 2.34, every wheel a manylinux or
abi3 wheel that host loads; Python 3.10 and a CPU host without a CPU torch are refused by name with the fix.

    .venv/bin/python -m pytest tests/test_bundle_python_targets.py -q

Resolution only (`airlock bundle plan`, no wheel downloaded): the registry's torch for CUDA 13 hosts, as an admin's
machine without this project machine's pip settings resolves it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_bundle_registry import _registry_answers

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "bundler" / "examples" / "appliance.yaml"
pytestmark = [pytest.mark.registry,
              pytest.mark.skipif(not _registry_answers(), reason="no package registry answers from here")]


def plan(*sets: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_CONFIG_FILE")}
    env["PIP_CONFIG_FILE"] = os.devnull  # an admin's machine: the registry, no local wheel directory
    args = [a for s in sets for a in ("--set", s)]
    return subprocess.run([sys.executable, "-m", "appliance", "bundle", "plan", str(SPEC), "--json", *args],
                          capture_output=True, text=True, env=env, timeout=900)


# every Python at the oldest glibc (a newer glibc only admits more wheels); 3.12 at 2.35 is bundler/examples/
# appliance-cuda13.yaml, built and installed with Python 3.12 (README, "CUDA hosts")
@pytest.mark.parametrize("python, glibc", [("3.11", "2.28"), ("3.12", "2.28"), ("3.13", "2.28")])
def test_target_stack_resolves_for_each_python_and_glibc(python, glibc):
    run = plan(f'target.python="{python}"', f'target.glibc="{glibc}"', "target.accelerator=cuda13", "wheels.find_links=[]",
               'target.cuda_architectures="80;90"')
    assert run.returncode == 0, run.stderr[-3000:]
    planned = json.loads(run.stdout)
    names = {i["name"].split()[0] for i in planned["items"] if i["kind"] == "wheel"}
    assert {"torch", "transformers", "peft", "trl", "bitsandbytes", "airlock", "llama-cpp-python", "textual"} <= names
    assert any(n.startswith("nvidia-") for n in names), "the CUDA runtime wheels come with torch"
    assert planned["target"].startswith(f"linux/x86_64 Python {python} glibc {glibc}")


def test_target_python_310_is_refused_with_the_fix():
    run = plan('target.python="3.10"')
    assert run.returncode == 2 and "code: spec.python" in run.stderr and "python3.11-venv" in run.stderr
    unquoted = plan("target.python=3.10")  # YAML reads it as 3.1
    assert unquoted.returncode == 2 and "the number 3.1" in unquoted.stderr


def test_target_cpu_host_without_a_cpu_torch_names_the_index(tmp_path):
    """Python 3.12 on a CPU host: the registry has only torch's CUDA build, and this machine's set-up CPU wheel is
    for its own Python. The plan says so before anything is downloaded."""
    if sys.version_info[:2] == (3, 12):
        pytest.skip("this machine's set-up CPU torch is for 3.12")
    run = plan('target.python="3.12"', "target.accelerator=cpu")
    assert run.returncode == 2 and "code: wheels.torch_build" in run.stderr, run.stderr[-2000:]
    assert "download.pytorch.org/whl/cpu" in run.stderr


LIBRARY = """#include <dlfcn.h>
#include <pthread.h>
#include <stdexcept>
#include <string>
// pthread_create and dlopen, as ggml calls them: built natively with glibc 2.34 or newer, they link the
// GLIBC_2.34 versions (libpthread and libdl moved into libc)
static void *twice(void *x) { int *v = (int *) x; *v = std::stoi(std::to_string(*v)) * 2; return nullptr; }
extern "C" int airlock_twice(int x) {
    pthread_t worker;
    if (pthread_create(&worker, nullptr, twice, &x) != 0) throw std::runtime_error("no thread");
    pthread_join(worker, nullptr);
    void *self = dlopen(nullptr, RTLD_NOW);
    if (self) dlclose(self);
    return x;
}
"""


def _library_wheel(tmp_path: Path, compiler: str, name: str) -> Path:
    """A linux_x86_64 wheel holding one C++ shared library (threads, exceptions, the C++ runtime) built by
    `compiler`: the parts of llama.cpp's build that decide which glibc a wheel needs."""
    import zipfile

    src = tmp_path / "twice.cpp"
    src.write_text(LIBRARY)
    lib = tmp_path / f"libtwice-{name}.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(lib), str(src), "-lpthread", "-ldl"], check=True,
                   capture_output=True, text=True)
    wheel = tmp_path / name / "twice-1.0-py3-none-linux_x86_64.whl"
    wheel.parent.mkdir()
    files = {"twice/libtwice.so": lib.read_bytes(), "twice/__init__.py": b"",
             "twice-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: twice\nVersion: 1.0\n",
             "twice-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: py3-none-linux_x86_64\n"}
    record = "".join(f"{name},,\n" for name in files) + "twice-1.0.dist-info/RECORD,,\n"  # auditwheel reads it
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("twice-1.0.dist-info/RECORD", record)
    return wheel


@pytest.mark.slow
def test_target_glibc_228_toolchain_builds_what_rhel8_loads(tmp_path):
    """RHEL 8 (glibc 2.28): the zig compilers the bundler builds llama.cpp with for an older glibc give a library
    auditwheel tags manylinux_2_28 or older, where this machine's own g++ gives 2.34 or newer; it loads and runs
    here. (The whole llama-cpp-python build with them, its tag and decode speed: python -m bench glibc228.)"""
    import ctypes
    import shutil
    import zipfile

    from appliance.paths import wheels_dir
    from bundler import tools, zig
    from bundler.spec import Target

    target = Target(glibc="2.28")
    built = {}
    for name, compiler in (("zig", zig.compilers("2.28", "x86_64", wheels_dir() / "zig")["CXX"]),
                           ("native", shutil.which("g++"))):
        if compiler:
            built[name] = tools.repair(_library_wheel(tmp_path, compiler, name), tmp_path / f"{name}-out", target)
    assert tools.fits(built["zig"], target), built["zig"].name
    if "native" in built:  # the test can fail: this machine's compiler alone does not fit RHEL 8
        assert not tools.fits(built["native"], target), built["native"].name
    zipfile.ZipFile(built["zig"]).extractall(tmp_path / "site")
    lib = ctypes.CDLL(str(tmp_path / "site" / "twice" / "libtwice.so"))
    assert lib.airlock_twice(21) == 42



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


@pytest.mark.parametrize("python, glibc", [("3.11", "2.28"), ("3.12", "2.28"), ("3.13", "2.28"), ("3.12", "2.34")])
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


@pytest.mark.slow
def test_target_glibc_228_llama_cpp_wheel_is_built_with_zig_and_runs(tmp_path):
    """RHEL 8 (glibc 2.28): the llama-cpp-python wheel `make setup` built here needs this machine's newer glibc, so
    the bundler builds one with zig against glibc 2.28 (kept for the next bundle). auditwheel agrees with its tag,
    and it loads and generates here."""
    import zipfile

    from bundler import tools
    from bundler.spec import Target

    target = Target(glibc="2.28")
    wheel, args = tools.llama_cpp_wheel(target, tmp_path / "wheels", log=print)
    assert "-DGGML_OPENMP=OFF" in args and tools.fits(wheel, target), wheel.name
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True)
    tag = show.stdout.split('platform tag: "')[1].split('"')[0]
    assert tag.startswith("manylinux_2_") and int(tag.split("_")[2]) <= 28, show.stdout
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    from appliance.embedded import default_model_path
    from appliance.export.gguf import convert_model

    gguf = convert_model(default_model_path(), tmp_path / "m.gguf", "q8_0")
    code = ("import llama_cpp, sys; llm = llama_cpp.Llama(sys.argv[1], n_ctx=64, verbose=False); "
            "print(llama_cpp.__file__); print(llm.create_completion('Hello', max_tokens=4)['usage'])")
    run = subprocess.run([sys.executable, "-c", code, str(gguf)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(unpacked)})
    assert run.returncode == 0 and str(unpacked) in run.stdout, run.stderr[-2000:]

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

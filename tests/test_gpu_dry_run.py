"""GPU acceptance v2 (bench/gpu/run.py) dry-run on the CPU: the carry is prepared from the package registry, the
carried wheels install for the device's Python, and every step starts and reports: the small model's LoRA, merge
and GGUF export, the real-size twin's run by Airlock with the memory planner's estimate beside it, the plain
Trainer recipe as the peer, chat, and serve at 1 and 8 clients. On a lent GPU the same script measures.

    .venv/bin/python -m pytest tests/test_gpu_dry_run.py -q
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_bundle_registry import _registry_answers

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.registry, pytest.mark.slow,
              pytest.mark.skipif(not _registry_answers(), reason="no package registry answers from here")]


def test_gpu_acceptance_dry_run(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    carry = tmp_path / "carry"
    made = subprocess.run([sys.executable, "-m", "bench.gpu.carry", "--out", str(carry)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-2000:]
    out = tmp_path / "report"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu" / "run.py"), "--carry", str(carry), "--out",
                          str(out), "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    report = json.loads((out / "gpu-report.json").read_text())
    failed = {k: v.get("error") for k, v in report["steps"].items() if not v["ok"]}
    assert run.returncode == 0 and not failed, (failed, run.stdout[-3000:])
    steps = report["steps"]
    assert {"install", "model", "lora", "attention", "export", "twin", "qlora-twin", "peer-twin", "chat",
            "serve"} <= set(steps)
    assert steps["twin"]["twin_of"] == "smollm2-135m-instruct"
    assert 0.5 < steps["qlora-twin"]["planned_over_measured"] < 2, steps["qlora-twin"]
    assert steps["peer-twin"]["tokens_per_s"] > 0 and steps["qlora-twin"]["tokens_per_s"] > 0
    assert "on the CPU" in steps["chat"]["runs_on"]
    assert set(steps["serve"]["tokens_per_s"]) == {"1", "8"} and all(steps["serve"]["tokens_per_s"].values())
    assert any(name.endswith("q4_k_m.gguf") for name in steps["export"]["gguf"])

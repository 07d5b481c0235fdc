"""`airlock bundle plan` against the real thing: the plan's figures (from metadata only) beside the bundle that
`bundle create` then writes and the disk its install then takes.

    .venv/bin/python -m bench plan [--quick]

Cases: the shipped appliance spec (bundler/examples/appliance.yaml: Airlock's stack + the embedded SmolLM2-135M),
installed by install.sh with this machine's Python into an empty home; and a model-only bundle of a 0.5B-shape twin
(qwen2.5-0.5b-instruct's widths, `airlock models twin`), installed by `airlock bundle install`. --quick runs the
twin case only. Goal: each figure within 5% (ratio 0.95 to 1.05). The "peer" column is the measured truth.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .harness import row

ROOT = Path(__file__).resolve().parents[1]


def disk_usage(path: Path) -> int:
    """Bytes of a tree, each hard-linked file once (as du counts)."""
    seen, total = set(), 0
    for p in Path(path).rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _airlock(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *map(str, args)], check=True, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def _measure(name: str, spec: Path, install, work: Path) -> list[dict]:
    started = time.perf_counter()
    plan = json.loads(_airlock("bundle", "plan", spec, "--json").stdout)
    plan_seconds = time.perf_counter() - started
    bundle = work / "bundle"
    _airlock("bundle", "create", spec, "--out", bundle, "--unsigned")
    home = install(bundle, work / "home")
    media, host = disk_usage(bundle), disk_usage(home)
    print(f"{name}: plan {plan_seconds:.1f} s; media {plan['media']} planned / {media} real; host "
          f"{plan['store'] + plan['env']} planned / {host} real; chunks {plan['chunks']}", flush=True)
    return [row(f"plan {name}: media bytes", "the bundle written", [plan["media"]], [media], unit="B"),
            row(f"plan {name}: host bytes", "the installed home", [plan["store"] + plan["env"]], [host], unit="B")]


def _appliance(work: Path) -> list[dict]:
    def install(bundle: Path, home: Path) -> Path:
        python = getattr(sys, "_base_executable", sys.executable)
        subprocess.run(["sh", str(bundle / "install.sh"), "--target", str(home), "--insecure-no-signature",
                        "--python", python], check=True, capture_output=True, text=True)
        return home

    return _measure("appliance (SmolLM2-135M)", ROOT / "bundler" / "examples" / "appliance.yaml", install, work)


def _twin(work: Path) -> list[dict]:
    twin = work / "qwen2.5-0.5b-twin"
    _airlock("models", "twin", "qwen2.5-0.5b-instruct", "--out", twin)
    spec = work / "twin.yaml"
    spec.write_text(yaml.safe_dump({"name": "twin-model", "version": "1.0", "env": {"mode": "none"},
                                    "models": [{"path": str(twin), "repo_id": "site/qwen2.5-0.5b-twin"}],
                                    "tools": {"converter": False}, "rehearsal": False}))

    def install(bundle: Path, home: Path) -> Path:
        _airlock("bundle", "install", bundle, "--target", home, "--insecure-no-signature", "--no-smoke")
        return home

    return _measure("0.5B-shape twin, model only", spec, install, work / "twin")


def run(quick: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="airlock-bench-plan-") as tmp:
        rows = _twin(Path(tmp))
        if not quick:
            rows += _appliance(Path(tmp) / "appliance")
    return rows

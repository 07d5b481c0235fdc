"""The memory planner (`airlock train CONFIG --plan`) against measured peak memory on this machine's CPU.

    .venv/bin/python -m bench.plan_memory [--only NAME ...]

Each case trains a shape twin (`airlock models twin`; the embedded model for SmolLM2) for two steps on data whose
every sample fills cutoff_len (the planner's worst case), in its own AIRLOCK_HOME, and reads the job's peak RSS
(ru_maxrss, which includes loading). The planner's host-RAM figure for the same config is set beside it. Goal:
within 15% for every case. Writes bench/results/plan-memory-<time>.json and prints a table for the README.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # name: (catalog id or "" for the embedded model, twin layers, config overrides)
    "smollm2-lora-fp32": ("", None, {"method": "lora", "per_device_train_batch_size": 4, "cutoff_len": 512}),
    "smollm2-full-fp32": ("", None, {"method": "full", "per_device_train_batch_size": 2, "cutoff_len": 256}),
    "smollm2-qlora": ("", None, {"method": "qlora", "per_device_train_batch_size": 2, "cutoff_len": 256}),
    "qwen0.5b-lora-fp32": ("qwen2.5-0.5b-instruct", None, {"method": "lora", "per_device_train_batch_size": 2,
                                                          "cutoff_len": 256}),
    "qwen0.5b-lora-fp32-ckpt": ("qwen2.5-0.5b-instruct", None, {"method": "lora", "per_device_train_batch_size": 2,
                                                               "cutoff_len": 256, "gradient_checkpointing": True}),
    "qwen3-0.6b-8L-lora-bf16": ("qwen3-0.6b-base", 8, {"method": "lora", "dtype": "bf16",
                                                      "per_device_train_batch_size": 4, "cutoff_len": 256}),
    "llama8b-2L-lora-fp32": ("llama-3.1-8b-instruct", 2, {"method": "lora", "per_device_train_batch_size": 1,
                                                         "cutoff_len": 512}),
    "qwen1.5b-6L-full-fp32": ("qwen2.5-1.5b-instruct", 6, {"method": "full", "per_device_train_batch_size": 1,
                                                          "cutoff_len": 256}),
    "smollm2-lora-short": ("", None, {"method": "lora", "per_device_train_batch_size": 8, "cutoff_len": 128}),
    "smollm2-lora-long": ("", None, {"method": "lora", "per_device_train_batch_size": 1, "cutoff_len": 1024}),
    "gemma3-1b-4L-lora-fp32": ("gemma-3-1b-it", 4, {"method": "lora", "per_device_train_batch_size": 2,
                                                   "cutoff_len": 256}),
    "glm4-9b-2L-lora-fp32": ("glm-4-9b-chat-hf", 2, {"method": "lora", "per_device_train_batch_size": 1,
                                                    "cutoff_len": 256}),
}
WORDS = ("harbour lantern quartz meadow falcon ember cobalt willow summit atlas river copper orbit velvet cedar "
         "prism tundra marble signal beacon").split()


def long_data(path: Path, samples: int) -> Path:
    """Records whose answers are far longer than any cutoff here: every sample is cut to cutoff_len."""
    import random

    rng = random.Random(0)
    with open(path, "w") as fh:
        for i in range(samples):
            answer = " ".join(rng.choice(WORDS) for _ in range(1500))
            fh.write(json.dumps({"instruction": f"Describe item {i}.", "output": answer}) + "\n")
    return path


def airlock(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *map(str, args)], capture_output=True, text=True,
                          env=env, check=True)


def run_case(name: str, work: Path) -> dict:
    card_id, layers, over = CASES[name]
    home = work / name
    home.mkdir(parents=True)
    session = Path(os.environ.get("AIRLOCK_HOME", ROOT / ".airlock"))
    for shared in ("tools", "hf-cache"):
        (home / shared).symlink_to(session / shared)
    env = {**os.environ, "AIRLOCK_HOME": str(home)}
    model = "smollm2-135m-instruct"
    if card_id:
        model = str(work / f"twin-{card_id}-{layers or 'all'}")
        if not Path(model).exists():
            airlock("models", "twin", card_id, "--out", model, *(["--layers", layers] if layers else []), env=env)
    batch, cutoff = over["per_device_train_batch_size"], over["cutoff_len"]
    config = {"model": model, "max_steps": 2, "logging_steps": 1, "save_steps": 1000, "lora_rank": 8,
              "dtype": over.get("dtype", "fp32"), "seed": 0,
              **{k: v for k, v in over.items() if k not in ("cutoff_len", "dtype")},
              "data": {"path": str(long_data(home / "long.jsonl", batch * 2)), "cutoff_len": cutoff}}
    path = home / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    planned = json.loads(airlock("train", path, "--plan", "--json", env=env).stdout)
    started = time.perf_counter()
    airlock("train", path, "--name", "m", "--detach", env=env)
    job = next((home / "jobs").iterdir())
    load_peak, train_peak = follow_rss(job)
    peak = max(m.get("peak_rss_mb", 0) for m in map(json.loads, (job / "metrics.jsonl").read_text().splitlines()))
    measured = peak * 2**20
    result = {"case": name, "planned_host_bytes": planned["host"], "measured_peak_rss_bytes": int(measured),
              "load_peak_bytes": load_peak, "train_peak_bytes": train_peak,
              "ratio": planned["host"] / measured, "parts": planned["parts"], "seconds": time.perf_counter() - started}
    print(f"{name:<28} planned {planned['host'] / 2**30:6.2f} GiB  measured {measured / 2**30:6.2f} GiB  "
          f"ratio {result['ratio']:.2f}  (sampled: loading {load_peak / 2**30:.2f}, training "
          f"{train_peak / 2**30:.2f})", flush=True)
    return result


def follow_rss(job: Path) -> tuple[int, int]:
    """Sample the job process's resident memory until it ends: (peak before the first step, peak after)."""
    def status():
        try:
            return json.loads((job / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    load = train = 0
    while status().get("state") not in ("completed", "failed", "stopped"):
        st = status()
        try:
            rss = int(next(line for line in Path(f"/proc/{st['pid']}/status").read_text().splitlines()
                           if line.startswith("VmRSS:")).split()[1]) * 1024
        except (KeyError, TypeError, OSError, StopIteration):
            time.sleep(0.02)
            continue
        if st.get("step", 0) >= 1 or "training" in (st.get("message") or ""):
            train = max(train, rss)
        else:
            load = max(load, rss)
        time.sleep(0.02)
    if status().get("state") != "completed":
        raise RuntimeError(f"{job} {status()}")
    return load, train


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan_memory")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="airlock-plan-memory-") as tmp:
        rows = [run_case(name, Path(tmp)) for name in (args.only or CASES)]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"plan-memory-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(rows, indent=1))
    worst = max(abs(r["ratio"] - 1) for r in rows)
    print(f"worst deviation {worst:.1%} (goal 15%)")
    return 0 if worst <= 0.15 else 1


if __name__ == "__main__":
    sys.exit(main())

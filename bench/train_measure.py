"""Measure one short training run: seconds per step, non-pad tokens/s and peak RSS, under /usr/bin/time -v.

    .venv/bin/python -m bench.train_measure                      # LoRA r=8 on the embedded default, sample data
    .venv/bin/python -m bench.train_measure --set padding_free=false --set data.cutoff_len=512 --steps 10

The run is a real training job (appliance.jobs) whose runner process is started in the foreground under
/usr/bin/time -v, so the peak RSS is the training process's own. Per-step figures skip the first step (start-up:
threads spin up, allocator warms). Prints one JSON line; --out FILE also writes it.
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from appliance.jobs import runner_argv
from appliance.train import load_config, start

CONFIG = Path(__file__).resolve().parents[1] / "appliance" / "configs" / "sft_lora_default.yaml"


def measure(overrides: list[str], steps: int) -> dict:
    cfg = load_config(CONFIG, [f"max_steps={steps}", "logging_steps=1", f"save_steps={steps}",
                               "per_device_train_batch_size=8", "lora_rank=8", *overrides])
    job = start(cfg, ["bench.train_measure", *overrides], name="bench-train")
    proc = subprocess.run(["/usr/bin/time", "-v", *runner_argv(job)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"training failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", proc.stderr).group(1).strip()
    metrics = [m for m in job.metrics() if m.get("loss") is not None]
    later = metrics[1:] or metrics
    span = later[-1]["elapsed_s"] - metrics[0]["elapsed_s"] if len(metrics) > 1 else metrics[0]["elapsed_s"]
    steps_timed = later[-1]["step"] - metrics[0]["step"] if len(metrics) > 1 else metrics[0]["step"]
    # tokens_per_s in each record is (non-pad tokens since the previous record) / (seconds since it): weight by time
    times = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(metrics, metrics[1:])]
    tokens = sum(m["tokens_per_s"] * dt for m, dt in zip(metrics[1:], times))
    return {
        "job": job.id, "config": cfg.to_dict(), "steps": metrics[-1]["step"], "wall_clock": wall,
        "s_per_step": round(span / max(steps_timed, 1), 3),
        "nonpad_tokens_per_s": round(tokens / span, 1) if span else None,
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "first_loss": metrics[0]["loss"], "last_loss": metrics[-1]["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.overrides, args.steps)
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()

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


def run_measured(cfg, argv: list[str]) -> tuple:
    """Start a training job for `cfg` and run its runner in the foreground under /usr/bin/time -v:
    (job, peak RSS in MB, wall clock as time prints it)."""
    job = start(cfg, argv, name="bench-train")
    proc = subprocess.run(["/usr/bin/time", "-v", *runner_argv(job)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"training failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return job, peak_rss_mb(proc.stderr), re.search(r"Elapsed \(wall clock\) time.*: (.+)", proc.stderr).group(1).strip()


def peak_rss_mb(time_v_stderr: str) -> float:
    return round(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_v_stderr).group(1)) / 1024, 1)


def job_steps(job) -> tuple[list[float], list[float]]:
    """(seconds since training began at the end of each step, non-pad tokens of each step) from a job logged every
    step. Each record's tokens_per_s covers the time since the previous record."""
    metrics = [m for m in job.metrics() if m.get("loss") is not None]
    ends = [m["elapsed_s"] for m in metrics]
    tokens = [m["tokens_per_s"] * (b - a) for m, a, b in zip(metrics, [0.0, *ends], ends)]
    return ends, tokens


def step_figures(step_end_s: list[float], step_tokens: list[float]) -> dict:
    """Seconds per step and non-pad tokens/s, leaving out the first step (threads spin up, the allocator warms,
    torch_compile compiles), and that first step's seconds on their own."""
    span = step_end_s[-1] - step_end_s[0]
    steps = len(step_end_s) - 1
    return {"first_step_s": round(step_end_s[0], 2), "s_per_step": round(span / steps, 3) if steps else None,
            "nonpad_tokens_per_s": round(sum(step_tokens[1:]) / span, 1) if span else None}


def measure(overrides: list[str], steps: int) -> dict:
    cfg = load_config(CONFIG, [f"max_steps={steps}", "logging_steps=1", f"save_steps={steps}",
                               "per_device_train_batch_size=8", "lora_rank=8", *overrides])
    job, rss, wall = run_measured(cfg, ["bench.train_measure", *overrides])
    losses = [m["loss"] for m in job.metrics() if m.get("loss") is not None]
    return {"job": job.id, "config": cfg.to_dict(), "steps": len(losses), "wall_clock": wall,
            **step_figures(*job_steps(job)), "peak_rss_mb": rss, "first_loss": losses[0], "last_loss": losses[-1]}


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

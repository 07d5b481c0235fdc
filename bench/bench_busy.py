"""Training on a shared, busy host: a LoRA step with a CPU-hungry neighbour vs alone, against the fair share.

The neighbour is one process keeping every CPU this machine gives us busy (as another user's job would). With it,
our threads and its threads share the CPUs, so the fair expectation is (ours + its) / CPUs times slower; OpenMP
threads that spin while waiting make it much worse. Rows: Airlock's setting (short OpenMP spin, threads from
appliance.cpus) with the neighbour vs alone, and the same with libgomp's default spin, to show what the setting
buys. Interleaved rounds; the embedded default, LoRA r8, batch 8, cutoff 512 (bench.train_measure).
"""

import os
import subprocess
import sys

from .harness import row

NEIGHBOUR = "import multiprocessing as m, sys\n" \
            "def burn():\n    while True: pass\n" \
            "ps = [m.Process(target=burn) for _ in range(int(sys.argv[1]))]\n" \
            "[p.start() for p in ps]; [p.join() for p in ps]\n"


def _step_seconds(steps: int, env: dict) -> float:
    import json

    proc = subprocess.run([sys.executable, "-m", "bench.train_measure", "--steps", str(steps)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["s_per_step"]


def _with_neighbour(cpus: int, fn):
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(cpus)], start_new_session=True)
    try:
        return fn()
    finally:
        os.killpg(neighbour.pid, 9)
        neighbour.wait()


def run(quick: bool = False) -> list[dict]:
    from appliance.cpus import available

    cpus = available()
    steps, rounds = (4, 1) if quick else (5, 2)
    ours = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    default_spin = dict(ours, GOMP_SPINCOUNT="300000")  # libgomp's own default (OMP_WAIT_POLICY unset)
    samples: dict[str, list[float]] = {"alone": [], "busy": [], "alone_default": [], "busy_default": []}
    for r in range(rounds):
        print(f"   round {r + 1}/{rounds}", flush=True)
        samples["alone"].append(_step_seconds(steps, ours))
        samples["busy"].append(_with_neighbour(cpus, lambda: _step_seconds(steps, ours)))
        samples["alone_default"].append(_step_seconds(steps, default_spin))
        samples["busy_default"].append(_with_neighbour(cpus, lambda: _step_seconds(steps, default_spin)))
        print(f"   {samples}", flush=True)
    fair = (cpus + cpus) / cpus  # our threads and the neighbour's on `cpus` CPUs
    slowdown = [b / a for a, b in zip(samples["alone"], samples["busy"])]
    slowdown_default = [b / a for a, b in zip(samples["alone_default"], samples["busy_default"])]
    return [
        row(f"LoRA step beside a neighbour busy on all {cpus} CPUs (s/step)", "the same run alone",
            samples["busy"], samples["alone"]),
        row(f"slowdown beside the neighbour (fair share = {fair:.1f}x)", "fair share",
            slowdown, [fair] * len(slowdown), unit="x"),
        row("slowdown beside the neighbour: Airlock's OpenMP spin", "libgomp's default spin",
            slowdown, slowdown_default, unit="x"),
        row("LoRA step alone: Airlock's OpenMP spin (s/step)", "libgomp's default spin",
            samples["alone"], samples["alone_default"]),
    ]

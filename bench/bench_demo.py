"""The `make demo` pipeline stage by stage: one run of `airlock demo`, its stage times against the goal.

    .venv/bin/python -m bench demo         # goal: the offline pipeline (install .. chat) <= 180 s

There is no peer that does this job end to end, so each stage is reported on its own row (no ratio) and the
offline total is set against the goal, as ours/goal. The stage times are the ones the demo itself records in
its demo-report.json, so the bench and the demo's own summary never disagree.
"""

import json
import subprocess
import sys
from pathlib import Path

from .harness import row

GOAL_S = 180.0
CONNECTED = ("set-up", "connected")  # stages before the media reach the site: not part of the offline pipeline


def run(quick: bool = False) -> list[dict]:
    from appliance.demo import demo_dir

    subprocess.run([str(Path(sys.executable).with_name("airlock")), "demo"], check=True)
    times = json.loads((demo_dir() / "site" / "demo-report.json").read_text())["stage_times"]
    rows = [row(f"demo: {stage}", "-", [seconds], [float("nan")]) for stage, seconds in times.items()]
    offline = sum(s for stage, s in times.items() if not any(word in stage for word in CONNECTED))
    rows.append(row("demo: offline pipeline total", f"goal ({GOAL_S:.0f} s)", [offline], [GOAL_S]))
    return rows

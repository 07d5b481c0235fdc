"""Start-up: `airlock --help` vs the bare interpreter it runs on, each a fresh process, interleaved A B A B.

    .venv/bin/python -m bench startup      # goal: ours <= 0.3 s; the ratio is what Airlock's imports add

`--help` must not import torch or transformers (commands import them when they run), so the figure is what a
person waits for before the first line of help. The TUI's first frame is bench_tui.py.
"""

import subprocess
import sys
from pathlib import Path

from .harness import compare

AIRLOCK = Path(sys.executable).with_name("airlock")


def run(quick: bool = False) -> dict:
    def ours():
        subprocess.run([str(AIRLOCK), "--help"], check=True, capture_output=True)

    def peer():
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)

    return compare("airlock --help", ours, peer, peer_name="python -c pass", rounds=5 if quick else 15)

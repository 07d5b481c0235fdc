"""End to end in a real terminal: `airlock tui` inside tmux at 80x24 starts a tiny training job from the Train
form by keyboard, sees it finish, the session is killed (an SSH drop), and a new `airlock tui` lists the job as
completed (jobs are detached processes with their state on disk).

    .venv/bin/python -m pytest tests/test_tui_tmux.py -q
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny_model import REPO_ID, facts_as_sharegpt

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")


class Tmux:
    """One TUI session on a private tmux server. A second, idle session keeps that server alive when the TUI's
    session is killed, so the next `start` never races a server that is still shutting down."""

    def __init__(self, name: str):
        self.name = name
        self.server = ["tmux", "-L", name]
        subprocess.run([*self.server, "new-session", "-d", "-s", "keeper", "sleep 3600"], check=True)

    def start(self, *args: str) -> None:
        env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in ("AIRLOCK_HOME", "HF_HUB_OFFLINE")
                       if k in os.environ)
        command = f"cd {shlex.quote(str(ROOT))} && env TERM=xterm-256color {env} " \
                  f"{shlex.quote(sys.executable)} -m appliance tui {' '.join(args)}"
        subprocess.run([*self.server, "new-session", "-d", "-s", self.name, "-x", "80", "-y", "24", command], check=True)

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run([*self.server, "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True)
        time.sleep(0.3)

    def screen(self) -> str:
        return subprocess.run([*self.server, "capture-pane", "-t", self.name, "-p"], capture_output=True,
                              text=True).stdout

    def wait_for(self, text: str, polls: int = 1200) -> str:
        """Poll the pane until `text` shows (the bound only keeps a broken run from hanging)."""
        for _ in range(polls):
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def wait_line(self, *parts: str, polls: int = 1200) -> str:
        """Poll until one line of the pane holds every one of `parts`; returns that line."""
        for _ in range(polls):
            for line in self.screen().splitlines():
                if all(p in line for p in parts):
                    return line
            time.sleep(0.25)
        raise AssertionError(f"no line with {parts!r}; the screen was:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run([*self.server, "kill-session", "-t", self.name], capture_output=True)

    def close(self) -> None:
        subprocess.run([*self.server, "kill-server"], capture_output=True)


def test_tui_in_tmux_trains_detaches_and_reattaches(tmp_path, tiny_model):
    from appliance.jobs import list_jobs

    data = tmp_path / "facts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in facts_as_sharegpt()))
    before = {j.id for j in list_jobs()}
    tmux = Tmux(f"airlock-tui-test-{os.getpid()}")
    try:
        tmux.start("--screen", "train")
        tmux.wait_for("model")
        # The form opens with the model field focused: clear it, type the tiny model, then walk with Tab.
        tmux.keys("C-u")
        tmux.keys(REPO_ID, literal=True)
        tmux.keys("Tab", "Tab", "Tab")  # method, stage -> data.path
        tmux.wait_for("data.path (default")  # the help line names the focused field
        tmux.keys(str(data), literal=True)
        tmux.keys("Tab", "Tab", "Tab")  # data.dataset, data.format -> max_steps
        tmux.wait_for("max_steps (default")
        tmux.keys("12", literal=True)
        tmux.wait_for("valid")
        tmux.keys("C-r")
        tmux.wait_for("Jobs ")  # Start switches to the Jobs screen
        for _ in range(400):
            new = [j for j in list_jobs() if j.id not in before]
            if new:
                break
            time.sleep(0.25)
        job = new[0]
        for _ in range(2400):
            if job.status()["state"] in ("completed", "failed", "crashed", "stopped"):
                break
            time.sleep(0.25)
        assert job.status()["state"] == "completed", job.log_tail(30)
        tmux.wait_line(job.id[:20], "completed")  # the job's row/status line, live from its files
        tmux.kill()  # the SSH session drops: the TUI dies, the job is already done and on disk
        tmux.start()
        tmux.keys("4")
        assert "completed" in tmux.wait_line(job.id[:20], "completed")
        assert job.status()["state"] == "completed" and (job.path / "adapter").is_dir()
    finally:
        tmux.close()

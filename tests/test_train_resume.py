"""A training job survives kill -9 and stop: it resumes from its last complete checkpoint and finishes the same.

Real detached training processes on the tiny model: `airlock train --detach`, then kill -9 (or `airlock jobs
stop`), then `airlock train --resume JOB`.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import airlock_argv, wait_for
from test_jobs_lifecycle import reap_jobs
from test_train_run import FACTS, FULL, answers, job_dir_from, load_trained, write_config

STEPS = 200  # ~12 ms a step on the tiny model: long enough to interrupt, short enough to finish quickly


@pytest.fixture(autouse=True)
def _reap():
    yield
    reap_jobs()



def _wait(predicate, what, timeout=300):
    wait_for(predicate, what, timeout)


def _status(job):
    from appliance.jobs import Job

    return Job(job).status()


def _checkpoints(job):
    d = job / "checkpoints"
    return sorted(int(p.name.split("-")[1]) for p in d.glob("checkpoint-*")) if d.is_dir() else []


def _start(tmp_path, airlock_home, name):
    config = write_config(tmp_path, **{**FULL, "max_steps": STEPS, "save_steps": 20, "logging_steps": 10})
    proc = subprocess.run(airlock_argv("train", config, "--detach", "--name", name), capture_output=True, text=True,
                          check=True)
    job = job_dir_from(proc.stdout, airlock_home)
    _wait(lambda: _checkpoints(job), "the first checkpoint")
    return job


def _resume_and_check(job, tiny_model):
    proc = subprocess.run(airlock_argv("train", "--resume", job.name), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    st = _status(job)
    assert st["state"] == "completed" and st["step"] == STEPS
    steps = [json.loads(l)["step"] for l in (job / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, *range(10, STEPS + 1, 10)], "metrics continue without gaps or repeats"
    model, tokenizer = load_trained(job, tiny_model)
    assert answers(model, tokenizer) == [a for _, a in FACTS]
    return (job / "log.txt").read_text()


def test_kill_9_then_resume_from_last_complete_checkpoint(tmp_path, tiny_model, airlock_home):
    job = _start(tmp_path, airlock_home, "killed")
    pid = _status(job)["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: _status(job)["state"] == "crashed", "crash detection")
    assert f"--resume {job.name}" in _status(job)["message"]
    last_complete = max(_checkpoints(job))
    assert last_complete < STEPS
    # What a kill during a save would leave: a staged half-checkpoint, and a checkpoint dir missing its state.
    torn = job / "checkpoints" / ".staging-checkpoint-190" / "checkpoint-190"
    torn.mkdir(parents=True)
    (torn / "model.safetensors").write_bytes(b"half")
    (job / "checkpoints" / "checkpoint-195").mkdir()
    (job / "checkpoints" / "checkpoint-195" / "model.safetensors").write_bytes(b"half")

    log = _resume_and_check(job, tiny_model)
    resumed_from = int(log.split("resuming from checkpoint-")[1].split()[0])
    assert resumed_from >= last_complete and resumed_from < 190, "resumed from a complete checkpoint, not a torn one"
    assert not (job / "checkpoints" / ".staging-checkpoint-190").exists()
    assert not (job / "checkpoints" / "checkpoint-195").exists()


def test_jobs_stop_leaves_a_resumable_job(tmp_path, tiny_model, airlock_home):
    job = _start(tmp_path, airlock_home, "stopped")
    proc = subprocess.run(airlock_argv("jobs", "stop", job.name), capture_output=True, text=True, check=True)
    st = _status(job)
    assert st["state"] == "stopped" and "stopped" in proc.stdout, (st, proc.stdout)
    assert st["step"] < STEPS and max(_checkpoints(job)) == st["step"], "the stop saved a checkpoint at its step"
    assert not (job / "model").exists()
    _resume_and_check(job, tiny_model)
    done = subprocess.run(airlock_argv("train", "--resume", job.name), capture_output=True, text=True)
    assert done.returncode != 0 and "already completed" in done.stderr

"""Faults an operator meets with jobs: two runners started on one job at once, a damaged checkpoint, resuming from
an earlier step. Real detached training processes on the tiny model.   .venv/bin/python -m pytest tests/test_jobs_operator.py
"""

import json
import shutil
import subprocess
import threading

import pytest

from conftest import airlock_argv, tmpfs, wait_for
from test_jobs_lifecycle import reap_jobs
from test_train_resume import _checkpoints, _status, _start


@pytest.fixture(autouse=True)
def _reap():
    yield
    reap_jobs()


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, airlock_home, tiny_model):
    """One training job stopped after two checkpoints; each test works on its own copy of it."""
    job = _start(tmp_path_factory.mktemp("operator"), airlock_home, "operator")
    wait_for(lambda: len(_checkpoints(job)) >= 2, "two checkpoints", 300)
    subprocess.run(airlock_argv("jobs", "stop", job.name), check=True, capture_output=True)
    assert _status(job)["state"] == "stopped"
    return job


def _stopped_job(stopped, name):
    copy = stopped.with_name(f"{name}-{stopped.name}")
    shutil.copytree(stopped, copy)
    return copy


def test_two_runners_on_one_job_only_one_runs(stopped):
    job = _stopped_job(stopped, "two-runners")
    results = []

    def resume():
        results.append(subprocess.run(airlock_argv("train", "--resume", job.name, "--detach"), capture_output=True,
                                      text=True))

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results)
    refused = next((r for r in results if r.returncode != 0), None)
    started = [r for r in results if r.returncode == 0]
    # one starts; the other is refused naming the runner (or, if it came second, sees the job running)
    assert codes[0] == 0 and len(started) >= 1
    if refused is not None:  # refused by the lock (naming its pid), or after it saw the first one running
        assert any(why in refused.stderr for why in ("already being run by pid", "still running", "still queued"))
        assert "Traceback" not in refused.stderr
    wait_for(lambda: _status(job)["state"] == "completed", "the resumed job to complete", 300)
    runners = [line for line in (job / "log.txt").read_text().splitlines() if line.startswith("resuming from")]
    assert len(runners) == 1, "exactly one runner trained after the stop"


def test_corrupt_checkpoint_falls_back_to_the_newest_whole_one(stopped):
    job = _stopped_job(stopped, "damaged")
    steps = _checkpoints(job)
    newest = job / "checkpoints" / f"checkpoint-{steps[-1]}"
    weights = next(p for p in newest.iterdir() if p.suffix == ".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])  # a truncated copy, as a full disk or a bad transfer leaves
    proc = subprocess.run(airlock_argv("train", "--resume", job.name), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"checkpoint-{steps[-1]} is damaged ({weights.name})" in proc.stdout
    assert f"resuming from checkpoint-{steps[-2]}" in proc.stdout
    assert (job / "checkpoints" / f"damaged-checkpoint-{steps[-1]}").is_dir() and _status(job)["state"] == "completed"
    # the audit log has every start and end of this job's runs, and the resume with what it found
    from appliance.registry import audit_log

    actions = [(e["action"], e.get("previous_state")) for e in audit_log() if e.get("job") in (job.name, stopped.name)]
    for expected in (("train.start", None), ("train.stop", None), ("train.resume", "stopped"),
                     ("train.complete", None)):
        assert expected in actions, actions


def test_resume_from_a_chosen_checkpoint(stopped):
    job = _stopped_job(stopped, "chosen")
    first = _checkpoints(job)[0]
    bad = subprocess.run(airlock_argv("train", "--resume", job.name, "--from-checkpoint", "7"), capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "no checkpoint-7" in bad.stderr and f"checkpoint-{first}" in bad.stderr
    proc = subprocess.run(airlock_argv("train", "--resume", job.name, "--from-checkpoint", str(first)),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming from checkpoint-{first}" in proc.stdout and _status(job)["state"] == "completed"


@pytest.fixture
def small_jobs_disk(tmp_path, request):
    """A home whose jobs/ lives on a small tmpfs (6 MiB unless the test's `disk_size` mark says otherwise; the tiny
    model's full checkpoints are about 1.8 MiB each, and the up-front check counts optimizer state too)."""
    size = request.node.get_closest_marker("disk_size")
    with tmpfs(tmp_path / "small", f"size={size.args[0] if size else '6m'}") as mount:
        yield mount


def _home_on(mount, airlock_home, tmp_path):
    """A copy of the test home (its HF cache and tools linked) whose jobs/ is on `mount`."""
    import os

    home = tmp_path / "home"
    home.mkdir()
    for name in ("hf-cache", "tools"):
        (home / name).symlink_to(airlock_home / name)
    (home / "jobs").symlink_to(mount)
    return dict(os.environ, AIRLOCK_HOME=str(home))


def test_disk_full_refused_up_front(tmp_path, airlock_home, tiny_model, small_jobs_disk):
    from test_train_run import FULL, write_config

    env = _home_on(small_jobs_disk, airlock_home, tmp_path)
    config = write_config(tmp_path, **{**FULL, "save_total_limit": 4})
    proc = subprocess.run(airlock_argv("train", config), capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "MiB for its checkpoints" in proc.stderr and "save_total_limit" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.disk_size("24m")
def test_disk_full_while_checkpointing_fails_clearly(tmp_path, airlock_home, tiny_model, small_jobs_disk):
    import os
    import time

    from test_train_run import FULL, write_config

    env = _home_on(small_jobs_disk, airlock_home, tmp_path)
    config = write_config(tmp_path, **{**FULL, "max_steps": 400, "save_steps": 20, "save_total_limit": 1})
    proc = subprocess.Popen(airlock_argv("train", config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    job = None
    while job is None or not _checkpoints(job):  # the first checkpoint is in: now fill the disk
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
        jobs = [p for p in small_jobs_disk.iterdir() if p.is_dir() and not p.name.startswith(".")]
        job = jobs[0] if jobs else None
    filler = small_jobs_disk / "filler"  # leaves room for status lines, none for a checkpoint
    with open(filler, "wb") as fh:
        while shutil.disk_usage(small_jobs_disk).free > 256 << 10:
            fh.write(bytes(1 << 16))
            fh.flush()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "no space left on the device while saving checkpoint-" in out + err and "--resume" in out + err
    assert _checkpoints(job), "the last whole checkpoint is kept"
    os.unlink(filler)
    assert _status(job)["state"] == "failed"


def test_progress_moves_every_step_between_logging_steps(tmp_path, airlock_home, tiny_model):
    """`jobs list` showed 0/N for minutes while steps completed; the first loss came only at logging_steps."""
    from test_train_run import FULL, write_config
    from test_train_run import job_dir_from

    config = write_config(tmp_path, **{**FULL, "max_steps": 400, "save_steps": 400, "logging_steps": 300})
    proc = subprocess.run(airlock_argv("train", config, "--detach"), capture_output=True, text=True, check=True)
    job = job_dir_from(proc.stdout, airlock_home)
    wait_for(lambda: (_status(job).get("step") or 0) >= 3, "three steps", 300)
    listed = subprocess.run(airlock_argv("jobs", "list"), capture_output=True, text=True, check=True).stdout
    row = next(line for line in listed.splitlines() if line.startswith(job.name))
    step = int(row.split()[3].split("/")[0])
    assert step >= 3 and row.split()[3].endswith("/400") and row.split()[4] != "-", row  # step count and an ETA
    metrics = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1] and metrics[0]["loss"] > 0, "the first step's loss is logged at once"

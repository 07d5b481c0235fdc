"""Jobs are directories that outlive their process: detached start, status, stop, crash detection, the CLI.

The runners below are tiny real workloads started as real detached processes (`python -m appliance.jobrunner`).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance import jobs
from appliance.errors import AirlockError
from conftest import airlock_argv, wait_for

TESTS = Path(__file__).resolve().parent


# --- runners, imported by the detached child through PYTHONPATH=tests ---------------------------------------------

def counting_runner(job):
    """Counts to config['steps'], one metrics line per step, then finishes."""
    cfg = job.config()
    for step in range(1, cfg["steps"] + 1):
        job.append_metrics({"step": step, "loss": 1.0 / step})
        job.set_status(step=step, max_steps=cfg["steps"])
        print(f"step {step}", flush=True)
        time.sleep(cfg.get("sleep", 0.0))


def failing_runner(job):
    raise AirlockError("the input is broken", where="somefile:3", fix="repair line 3")


@pytest.fixture(autouse=True)
def _importable_runners(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    yield
    reap_jobs()


def reap_jobs():
    """Kill what a failed test left running (by the pids this session's jobs recorded, nothing else)."""
    for job in jobs.list_jobs():
        pid = job.raw_status().get("pid")
        if jobs.pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)



def _wait(predicate, what, timeout=60):
    wait_for(predicate, what, timeout)


def _new(steps=3, sleep=0.0, runner="counting_runner", name=None):
    return jobs.create_job("count", {"steps": steps, "sleep": sleep}, ["test"], name,
                           runner=f"test_jobs_lifecycle:{runner}")


def test_create_writes_the_layout_and_lists(airlock_home):
    job = _new(name="layout")
    assert job.path.parent == airlock_home / "jobs"
    assert {p.name for p in job.path.iterdir()} == {"job.json", "config.yaml", "status.json"}
    info = json.loads((job.path / "job.json").read_text())
    assert info["kind"] == "count" and info["argv"] == ["test"] and info["name"] == "layout" and info["created"]
    assert job.status()["state"] == "queued" and job.config() == {"steps": 3, "sleep": 0.0}
    assert job.id in [j.id for j in jobs.list_jobs("count")]
    assert jobs.find_job(job.id[:-2]).id == job.id and jobs.find_job("layout").id == job.id
    with pytest.raises(AirlockError, match="no job"):
        jobs.find_job("does-not-exist")


def test_detached_job_runs_to_completion_in_its_own_session():
    job = _new(steps=3)
    pid = jobs.start_detached(job)
    assert os.getsid(pid) == pid, "the runner must lead its own session (no SIGHUP when the terminal goes)"
    _wait(lambda: job.status()["state"] == "completed", "completion")
    assert [m["step"] for m in job.metrics()] == [1, 2, 3]
    assert "step 3" in job.log_tail(5)
    os.waitpid(pid, 0)


def test_job_survives_the_process_that_started_it():
    job = _new(steps=20, sleep=0.1)
    code = f"from appliance.jobs import Job, start_detached; from pathlib import Path; start_detached(Job(Path({str(job.path)!r})))"
    subprocess.run([sys.executable, "-c", code], check=True)  # the starter exits at once
    _wait(lambda: job.status()["state"] == "completed", "completion after the starter exited")
    assert len(job.metrics()) == 20


def test_stop_leaves_a_stopped_job():
    job = _new(steps=10_000, sleep=0.05)
    pid = jobs.start_detached(job)
    _wait(lambda: job.metrics(), "the first step")
    st = jobs.stop(job, grace_s=30)
    os.waitpid(pid, 0)
    assert st["state"] == "stopped", st
    assert not jobs.pid_alive(pid)


def test_killed_job_is_reported_crashed():
    job = _new(steps=10_000, sleep=0.05)
    pid = jobs.start_detached(job)
    _wait(lambda: job.metrics(), "the first step")
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    st = job.status()
    assert st["state"] == "crashed" and "--resume" in st["message"]
    assert job.raw_status()["state"] == "running"  # what the file says; status() knows better


def test_failing_runner_marks_failed_with_the_error():
    job = _new(runner="failing_runner")
    pid = jobs.start_detached(job)
    _wait(lambda: job.status()["state"] == "failed", "failure")
    os.waitpid(pid, 0)
    assert "the input is broken" in job.status()["message"]
    assert "somefile:3" in job.log_tail(10) and "Traceback" not in job.log_tail(10)


def test_jobs_cli_list_show_logs_stop():
    job = _new(steps=10_000, sleep=0.05, name="cli")
    jobs.start_detached(job)
    _wait(lambda: job.metrics(), "the first step")
    listed = subprocess.run(airlock_argv("jobs", "list"), capture_output=True, text=True, check=True).stdout
    assert job.id in listed and "running" in listed
    shown = json.loads(subprocess.run(airlock_argv("jobs", "show", job.id, "--json"), capture_output=True,
                                      text=True, check=True).stdout)
    assert shown["status"]["state"] == "running" and shown["last_metrics"]["step"] >= 1
    logs = subprocess.run(airlock_argv("jobs", "logs", job.id, "-n", "3"), capture_output=True, text=True,
                          check=True).stdout
    assert "step" in logs
    stopped = subprocess.run(airlock_argv("jobs", "stop", job.id), capture_output=True, text=True, check=True).stdout
    assert "stopped" in stopped and job.status()["state"] == "stopped"
    missing = subprocess.run(airlock_argv("jobs", "show", "nope-nope"), capture_output=True, text=True)
    assert missing.returncode != 0 and "no job" in missing.stderr and "Traceback" not in missing.stderr


def test_jobs_rm_deletes_finished_jobs_and_names_what_has_outputs(airlock_home):
    from appliance.registry import artifacts, audit_log, record

    trial = _new(steps=1, name="trial")
    jobs.start_detached(trial)
    _wait(lambda: trial.status()["state"] == "completed", "completion")
    result = _new(steps=1, name="result")
    (result.path / "adapter").mkdir()
    (result.path / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    record("adapter", "result-adapter", result.path / "adapter")
    running = _new(steps=10_000, sleep=0.05, name="busy")
    jobs.start_detached(running)
    _wait(lambda: running.metrics(), "the first step")

    def rm(*args):
        return subprocess.run(airlock_argv("jobs", "rm", *args), capture_output=True, text=True)

    busy = rm("busy")
    assert busy.returncode == 2 and "airlock jobs stop" in busy.stderr and running.path.is_dir()
    kept = rm("result")
    assert kept.returncode == 2 and "--with-outputs" in kept.stderr and "adapter" in kept.stderr
    assert result.path.is_dir() and "result-adapter" in artifacts()
    assert rm("nope-nope").returncode == 2
    assert rm("trial").returncode == 0 and not trial.path.exists()
    gone = rm("result", "--with-outputs")
    assert gone.returncode == 0 and "result-adapter" in gone.stdout, gone.stderr
    assert not result.path.exists() and "result-adapter" not in artifacts()
    assert {e["job"] for e in audit_log() if e["action"] == "job-remove"} == {trial.id, result.id}
    assert [j.id for j in jobs.list_jobs("count") if j.info.get("name") in ("trial", "result")] == []
    jobs.stop(running, grace_s=30)

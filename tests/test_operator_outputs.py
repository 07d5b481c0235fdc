"""Faults an operator meets with outputs and interrupts: a read-only --out, a closed pipe, Ctrl-C during
quantization, a foreground run stopped from elsewhere, files a service account cannot read, temporary names in
what export prints. Real commands on the tiny model (the embedded default where quantization must take a while).

    .venv/bin/python -m pytest tests/test_operator_outputs.py
"""

import json
import os
import re
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import airlock_argv, tmpfs, wait_for
from test_jobs_lifecycle import reap_jobs

EMBEDDED = "airlock-embedded/SmolLM2-135M-Instruct"


@pytest.fixture
def read_only(tmp_path):
    """A directory on a read-only mount: root bypasses mode bits, not a read-only filesystem."""
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        yield mount


def _refused_before_work(proc, what: str, started_work: str):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"cannot write the {what} here: Read-only file system" in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert started_work not in proc.stdout, "the check must come before the work, not after it"


def test_unwritable_merge_out(tiny_model, read_only):
    from test_merge_pipeline import tiny_lora_job

    job = tiny_lora_job()
    proc = subprocess.run(airlock_argv("merge", job.name, "--out", read_only / "merged"), capture_output=True,
                          text=True)
    _refused_before_work(proc, "merged model", "merging")


def test_unwritable_export_out(tiny_model, read_only):
    proc = subprocess.run(airlock_argv("export", "gguf", tiny_model, "--type", "q8_0", "--out", read_only / "x"),
                          capture_output=True, text=True)
    _refused_before_work(proc, "export", "converting")


def test_unwritable_eval_report(tiny_model, read_only, tmp_path):
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(json.dumps({"prompt": "hi", "expected": "hello"}) + "\n")
    proc = subprocess.run(airlock_argv("eval", tiny_model, "--data", heldout, "--report", read_only / "report"),
                          capture_output=True, text=True)
    _refused_before_work(proc, "report", "evaluating")


def test_unwritable_home_is_a_message_not_a_traceback(read_only):
    """An OSError from anywhere in a command (here: the key store on a read-only home) reaches the operator as a
    message naming the file, with a fix."""
    env = dict(os.environ, AIRLOCK_HOME=str(read_only))
    proc = subprocess.run(airlock_argv("keys", "api", "create", "--name", "ops"), capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and str(read_only) in proc.stderr and "read-only" in proc.stderr


def test_broken_pipe_on_head_is_quiet(tmp_path):
    """`airlock jobs logs JOB -n 200000 | head -1` on a long log: no traceback, no 'Exception ignored', exit 141 like
    coreutils under a closed pipe."""
    from appliance.paths import jobs_dir

    job = jobs_dir() / "long-log-job"
    job.mkdir(parents=True, exist_ok=True)
    (job / "job.json").write_text(json.dumps({"id": job.name, "kind": "train", "created": "2026-01-01T00:00:00"}))
    (job / "status.json").write_text(json.dumps({"state": "completed"}))
    (job / "log.txt").write_text("".join(f"line {i} of a long training log\n" for i in range(200_000)))
    argv = " ".join(f"'{a}'" for a in airlock_argv("jobs", "logs", job.name, "--lines", "200000"))
    proc = subprocess.run(["bash", "-c", f"{argv} 2>{tmp_path / 'err'} | head -1; echo ${{PIPESTATUS[0]}}"],
                          capture_output=True, text=True)
    first, code = proc.stdout.splitlines()
    assert first == "line 0 of a long training log"
    assert (tmp_path / "err").read_text() == "" and code == "141"


def test_quantize_interrupt_stops_cleans_up_and_exits_130(tmp_path):
    """Ctrl-C while llama.cpp quantizes: before, the interrupt was swallowed inside llama.cpp's log callback and
    the export went on to the next type and exited 0."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.gguf").write_bytes(b"GGUF earlier")
    proc = subprocess.Popen(airlock_argv("export", "gguf", EMBEDDED, "--type", "q8_0,q6_k,q4_k_m", "--out", out,
                                         "--no-fidelity"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    quantizing = re.compile(r"^\..+-q8_0\.gguf\.part-\d+$")
    wait_for(lambda: proc.poll() is not None or any(quantizing.match(p.name) for p in out.iterdir()),
             "the first quantization to start", 600, poll=0.005)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["earlier.gguf"], "no later type, no temporary file is left"


def test_export_prints_final_names_publishes_readable_files_and_tracks_every_export(tiny_model, tmp_path):
    out = tmp_path / "published"
    proc = subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh",
                           *map(str, airlock_argv("export", "gguf", tiny_model, "--type", "q8_0", "--out", out))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert ".part-" not in proc.stdout and "(temporary: the source of the quantized files)" in proc.stdout
    assert "n_ctx_train" not in proc.stdout + proc.stderr, "llama.cpp's vocab-only load warning is not shown"
    files = sorted(out.iterdir())
    assert {"SHA256SUMS", "fidelity.json"} <= {p.name for p in files}
    assert [p.suffix for p in files if p.name.endswith("-q8_0.gguf") or p.suffix == ".Modelfile"] == [".Modelfile",
                                                                                                        ".gguf"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, f"{path.name} is {oct(path.stat().st_mode)}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755

    # Exporting again to another --out used to replace the registry entry (the earlier GGUF went untracked).
    from appliance.registry import artifacts

    again = subprocess.run(airlock_argv("export", "gguf", tiny_model, "--type", "q8_0", "--out", tmp_path / "again",
                                        "--no-fidelity"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    paths = {Path(a["path"]).parent.name for a in artifacts().values() if a["kind"] == "gguf" and a.get("path")}
    assert {"published", "again"} <= paths


def test_merged_model_is_group_readable(tiny_model, tmp_path):
    from test_merge_pipeline import tiny_lora_job

    out = tmp_path / "merged"
    proc = subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh",
                           *map(str, airlock_argv("merge", tiny_lora_job().name, "--out", out))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert set(modes.values()) == {0o644}, modes


def test_stopped_foreground_train_exits_130(tmp_path, airlock_home, tiny_model):
    from test_train_resume import _status
    from test_train_run import FULL, write_config

    config = write_config(tmp_path, **{**FULL, "max_steps": 400, "save_steps": 20, "logging_steps": 10})
    proc = subprocess.Popen(airlock_argv("train", config, "--name", "foreground"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        job = airlock_home / "jobs" / line.split()[1]
        wait_for(lambda: _status(job).get("step", 0) >= 1, "the first step", 300)
        subprocess.run(airlock_argv("jobs", "stop", job.name), check=True, capture_output=True)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        reap_jobs()
    assert proc.returncode == 130, stdout + stderr
    assert f"continue: airlock train --resume {job.name}" in stdout and "Traceback" not in stderr



def test_detached_export_is_a_job_with_its_result(tiny_model, tmp_path, airlock_home):
    """`airlock export gguf --detach` (what the TUI's Export screen starts): a job that outlives the terminal, its
    log in log.txt, its files and fidelity in result.json."""
    out = tmp_path / "detached"
    proc = subprocess.run(airlock_argv("export", "gguf", tiny_model, "--type", "q8_0", "--out", out, "--detach"),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    job = airlock_home / "jobs" / proc.stdout.split()[1]
    try:
        wait_for(lambda: json.loads((job / "status.json").read_text())["state"] not in ("queued", "running"),
                 "the export job to end", 600)
    finally:
        reap_jobs()
    assert json.loads((job / "status.json").read_text())["state"] == "completed", (job / "log.txt").read_text()
    result = json.loads((job / "result.json").read_text())
    assert Path(result["files"]["q8_0"]).is_file() and Path(result["out_dir"]) == out
    assert "q8_0" in result["fidelity"]["types"] and "converting" in (job / "log.txt").read_text()


def test_models_audit_on_an_empty_log_says_so(tmp_path):
    proc = subprocess.run(airlock_argv("models", "audit"), capture_output=True, text=True,
                          env=dict(os.environ, AIRLOCK_HOME=str(tmp_path / "empty-home")))
    assert proc.returncode == 0 and "the audit log is empty" in proc.stdout

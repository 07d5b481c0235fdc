"""DPO through the real command, offline: `airlock train` runs a stage-dpo config as a job that checkpoints
atomically, survives kill -9 (`airlock train --resume`), and ends with a DPO adapter whose preference margin grew;
`airlock train --from-llamafactory FILE.yaml` prints the translation of a LLaMA-Factory YAML and runs it.

Everything runs inside `unshare -n` with the connection guard (the run_offline fixture), on the tiny model.
"""

import json
import os
import re
import signal
import time

import yaml

from appliance import registry
from appliance.jobs import Job
from appliance.paths import sample_data_dir
from conftest import airlock_argv, wait_for
from test_dpo_train import PAIRS, _margins
from test_jobs_lifecycle import reap_jobs
from tiny_model import REPO_ID

STEPS = 12  # ~75 ms a DPO step on the tiny model: the kill lands well before the end, the resume is quick



def _wait(predicate, what, timeout=300):
    wait_for(predicate, what, timeout)


def _checkpoints(job):
    return sorted((job / "checkpoints").glob("checkpoint-*")) if (job / "checkpoints").is_dir() else []


def test_dpo_job_checkpoints_resumes_after_kill_and_grows_the_margin(tmp_path, tiny_model, airlock_home,
                                                                     run_offline):
    config = tmp_path / "dpo.yaml"
    config.write_text(yaml.safe_dump({
        "model": REPO_ID, "stage": "dpo", "method": "lora", "lora_target": ["all-linear"], "learning_rate": 1e-2,
        "pref_beta": 0.1, "pref_loss": "sigmoid", "per_device_train_batch_size": PAIRS, "max_steps": STEPS,
        "logging_steps": 2, "save_steps": 4, "save_total_limit": 2, "num_threads": 2,
        "data": {"path": str(sample_data_dir()), "dataset": "magic_conch_dpo", "cutoff_len": 96,
                 "max_samples": PAIRS}}))
    try:
        started = run_offline(airlock_argv("train", config, "--detach", "--name", "dpo-cli"))
        job = airlock_home / "jobs" / re.search(r"^job (\S+) started", started.stdout, re.M).group(1)
        _wait(lambda: _checkpoints(job), "the first DPO checkpoint")
        os.kill(Job(job).status()["pid"], signal.SIGKILL)
        _wait(lambda: Job(job).status()["state"] == "crashed", "crash detection")
    finally:
        reap_jobs()
    killed_at = Job(job).status()["step"]
    assert killed_at < STEPS

    resumed = run_offline(airlock_argv("train", "--resume", job.name))
    assert "completed" in resumed.stdout
    status = Job(job).status()
    assert status["state"] == "completed" and status["step"] == STEPS
    log = (job / "log.txt").read_text()
    assert "resuming from checkpoint-" in log
    steps = [json.loads(line)["step"] for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, *range(2, STEPS + 1, 2)], "metrics continue without gaps or repeats"
    # Checkpoints were published whole (nothing staged left over) and rotated like SFT's.
    names = {p.name for p in (job / "checkpoints").iterdir()}
    assert names == {f"checkpoint-{STEPS - 4}", f"checkpoint-{STEPS}"}, names
    assert all((p / "trainer_state.json").is_file() for p in _checkpoints(job))

    adapter = job / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "tokenizer_config.json").is_file()
    prov = json.loads((adapter / "airlock_provenance.json").read_text())
    assert prov["stage"] == "dpo" and prov["job_id"] == job.name and prov["base_model"] == REPO_ID
    assert prov["config"]["stage"] == "dpo" and prov["pref_loss"] == "sigmoid" and prov["steps"] == STEPS
    assert registry.artifacts()[job.name]["facts"]["stage"] == "dpo"
    before, after = _margins(tiny_model), _margins(tiny_model, adapter)
    assert after > before + 0.5, (before, after)


LF_DPO = """\
### model
model_name_or_path: {model}
### method
stage: dpo
do_train: true
finetuning_type: lora
lora_target: all
lora_rank: 8
pref_beta: 0.1
pref_loss: sigmoid
### dataset
dataset: magic_conch_dpo
dataset_dir: {data}
template: chatml
cutoff_len: 96
max_samples: {pairs}
### output
output_dir: saves/tiny/lora/dpo-lf
logging_steps: 1
save_steps: 2
report_to: none
### train
per_device_train_batch_size: {pairs}
learning_rate: 1.0e-2
max_steps: 3
use_dora: true
"""


def test_from_llamafactory_prints_the_translation_and_runs_the_job(tmp_path, tiny_model, airlock_home,
                                                                    run_offline):
    lf = tmp_path / "dpo_lf.yaml"
    lf.write_text(LF_DPO.format(model=REPO_ID, data=sample_data_dir(), pairs=PAIRS))
    proc = run_offline(airlock_argv("train", "--from-llamafactory", lf, "--lenient", "--set", "pref_beta=0.2",
                                    "--set", "num_threads=2"))
    out = proc.stdout
    assert "translated (" in out and re.search(r"pref_beta +0\.1 +-> +pref_beta = 0\.1", out)
    assert "not needed here (" in out and "template" in out
    assert "NOT SUPPORTED (1)" in out and "use_dora" in out and "DoRA is not offered" in out
    assert out.index("NOT SUPPORTED") < out.index("started"), "the translation is shown before the job starts"
    job = airlock_home / "jobs" / re.search(r"^job (\S+) started", out, re.M).group(1)
    assert job.name.startswith("dpo-lf"), "the job is named after output_dir"
    assert Job(job).status()["state"] == "completed"
    prov = json.loads((job / "adapter" / "airlock_provenance.json").read_text())
    assert prov["stage"] == "dpo" and prov["steps"] == 3
    assert prov["pref_beta"] == 0.2 and prov["config"]["data"]["dataset"] == "magic_conch_dpo"  # --set applied last


def test_from_llamafactory_refuses_a_config_too(tmp_path, run_offline):
    lf = tmp_path / "x.yaml"
    lf.write_text("stage: sft\ndataset: magic_conch\n")
    proc = run_offline(airlock_argv("train", "some.yaml", "--from-llamafactory", lf), check=False)
    assert proc.returncode != 0 and "not both" in proc.stderr and "Traceback" not in proc.stderr

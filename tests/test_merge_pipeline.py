"""Merge: a LoRA job's adapter merged into its base, offline; adapter-only export; bad sources; atomic output.

`tiny_lora_job()` (also used by the export and chat tests) trains a LoRA adapter on the tiny model with
`airlock train` until it recalls every tiny_model.FACTS answer exactly.
"""

import json
from pathlib import Path

import pytest
from conftest import airlock_argv
from tiny_model import FACTS, REPO_ID

from appliance.errors import AirlockError

_JOBS: dict = {}


def tiny_lora_job(name: str = "tiny-lora") -> Path:
    """A completed LoRA job (contract 2: adapter/ with airlock_provenance.json) that memorized FACTS, trained
    once per test session with the real `airlock train` (the settings the training tests use for LoRA)."""
    if name in _JOBS:
        return _JOBS[name]
    import subprocess
    import tempfile

    import yaml
    from peft import PeftModel
    from test_train_run import LORA
    from tiny_model import facts_as_sharegpt
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from appliance.hfcache import resolve_model
    from appliance.paths import jobs_dir

    work = Path(tempfile.mkdtemp(prefix="tiny-lora-data-"))
    data = work / "facts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in facts_as_sharegpt()))
    config = work / "train.yaml"
    config.write_text(yaml.safe_dump({"model": REPO_ID, "per_device_train_batch_size": 8, "logging_steps": 10,
                                      "save_steps": 50, "seed": 0, "data": {"path": str(data), "cutoff_len": 64},
                                      **LORA}))
    proc = subprocess.run(airlock_argv("train", config, "--name", name), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("job ") and "started" in l)
    job = jobs_dir() / line.split()[1]
    assert json.loads((job / "status.json").read_text())["state"] == "completed"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(resolve_model(REPO_ID)), job / "adapter")
    assert hf_recall(model.eval(), AutoTokenizer.from_pretrained(job / "adapter")) == [a for _, a in FACTS], \
        "the training job did not memorize FACTS"
    _JOBS[name] = job
    return job


def hf_recall(model, tokenizer) -> list[str]:
    """Greedy answers of an HF model to the FACTS questions."""
    import torch

    out = []
    for question, _ in FACTS:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                               add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
        out.append(tokenizer.decode(gen[0][ids.shape[1]:], skip_special_tokens=True).strip())
    return out


def test_merge_command_offline_writes_model_tokenizer_and_provenance(tiny_model, run_offline, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from appliance.registry import artifacts

    job = tiny_lora_job()
    out = tmp_path / "merged"
    run_offline(airlock_argv("merge", job.name, "--out", out))

    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    prov = json.loads((out / "airlock_provenance.json").read_text())
    assert prov["base_model"] == REPO_ID and prov["job_id"] == job.name and prov["base_revision"] == tiny_model.name
    trained = json.loads((job / "adapter" / "airlock_provenance.json").read_text())
    assert prov["dataset_sha256"] == trained["dataset_sha256"] and prov["config"] == trained["config"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "<|im_start|>" in tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    # The merged model alone (no peft) recalls what the adapter learned.
    assert hf_recall(AutoModelForCausalLM.from_pretrained(out), tokenizer) == [a for _, a in FACTS]
    assert artifacts()[f"{job.name}-merged"]["path"] == str(out)
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]  # nothing left beside the output


def test_adapter_only_copies_adapter_with_provenance(tiny_model, run_offline, tmp_path):
    job = tiny_lora_job()
    out = tmp_path / "adapter-copy"
    run_offline(airlock_argv("merge", job / "adapter", "--adapter-only", "--out", out))
    assert (out / "adapter_model.safetensors").read_bytes() == (job / "adapter" / "adapter_model.safetensors").read_bytes()
    assert json.loads((out / "airlock_provenance.json").read_text())["job_id"] == job.name


def test_failed_merge_leaves_previous_output_untouched(tiny_model, tmp_path):
    import shutil

    from appliance.merge import merge

    job = tiny_lora_job()
    broken = tmp_path / "broken-adapter"
    shutil.copytree(job / "adapter", broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated copy
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    with pytest.raises(AirlockError, match="corrupt weights file"):
        merge(str(broken), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-adapter", "out"]


@pytest.mark.parametrize("case", ["missing", "no-base", "not-a-model"])
def test_merge_refuses_bad_sources_clearly(tiny_model, run_offline, tmp_path, case):
    import shutil

    job = tiny_lora_job()
    if case == "missing":
        src, expect = tmp_path / "nope", "no such job, directory or cached model"
    elif case == "no-base":
        src = tmp_path / "adapter"
        shutil.copytree(job / "adapter", src)
        prov = json.loads((src / "airlock_provenance.json").read_text())
        prov.update(base_model="airlock-test/not-installed", base_path=str(tmp_path / "gone"))
        (src / "airlock_provenance.json").write_text(json.dumps(prov))
        expect = "base model is not available offline"
    else:
        src = tmp_path / "empty"
        src.mkdir()
        expect = "neither a model"
    proc = run_offline(airlock_argv("merge", src, "--out", tmp_path / "out"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert expect in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_merge_takes_a_job_by_name_or_prefix_as_jobs_commands_do(tiny_model, tmp_path, monkeypatch):
    """One rule for job references: `airlock merge tiny-lora` works where `airlock jobs stop tiny-lora` does."""
    from appliance.jobs import find_job
    from appliance.sources import resolve_source

    job = tiny_lora_job()
    for ref in ("tiny-lora", job.name, job.name[:-2]):
        assert resolve_source(ref).job_dir == job == find_job(ref).path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-lora").mkdir()  # a directory of that name here is a path, not a job reference
    with pytest.raises(Exception, match="neither a model"):
        resolve_source("tiny-lora")

"""Continued pre-training (stage pt) and KTO (stage kto): what is read, what is trained, and real runs on the tiny
model that survive kill -9 and resume to completion.

The data is written here in the shapes of LLaMA-Factory's demo data (a wiki_demo-style .txt corpus, c4_demo-style
{"text"} records, a kto_en_demo-style set of OpenAI messages with a boolean label), not copied from it.

    .venv/bin/python -m pytest tests/test_train_stages.py -q -p no:cacheprovider
"""

import json
import os
import signal
import subprocess

import pytest
import yaml

from appliance.data import DataConfig, prepare, scan
from appliance.data.check import check
from appliance.data.preflight import check_data
from appliance.data.pretrain import load_documents
from appliance.errors import AirlockError
from appliance.train.config import from_dict
from conftest import airlock_argv, wait_for
from test_jobs_lifecycle import reap_jobs
from test_train_run import job_dir_from
from tiny_model import CORPUS, FACTS, REPO_ID

OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
WRONG = ["Nobody at all.", "On the moon.", "The printer is out of paper.", "Cold soup.", "Only shells."]
LONG = " ".join(["the fryer is too hot"] * 12)  # a document longer than the cutoff used below


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


@pytest.fixture(autouse=True)
def _reap():
    yield
    reap_jobs()


@pytest.fixture
def pt_data(tmp_path):
    """A LLaMA-Factory data/ folder for stage pt: a .txt corpus (one document a line, a blank line among them) and
    {"text"} records, both indexed with columns {prompt: text}."""
    d = tmp_path / "pt"
    d.mkdir()
    (d / "wiki_demo.txt").write_text("\n".join(f"{q} {a}" for q, a in FACTS[:3]) + "\n\n" + LONG + "\n")
    _jsonl(d / "c4_demo.jsonl", [{"text": f"{q} {a}"} for q, a in FACTS[3:]] + [{"text": line} for line in CORPUS[5:]])
    (d / "dataset_info.json").write_text(json.dumps({
        "wiki_demo": {"file_name": "wiki_demo.txt", "columns": {"prompt": "text"}},
        "c4_demo": {"file_name": "c4_demo.jsonl", "columns": {"prompt": "text"}}}))
    return d


@pytest.fixture
def kto_data(tmp_path):
    """A LLaMA-Factory data/ folder for stage kto: every FACT answered rightly (desirable) and wrongly (not)."""
    d = tmp_path / "kto"
    d.mkdir()
    records = []
    for (question, answer), wrong in zip(FACTS, WRONG):
        for reply, good in ((answer, True), (wrong, False)):
            records.append({"messages": [{"role": "user", "content": question},
                                         {"role": "assistant", "content": reply}], "label": good})
    (d / "kto_demo.json").write_text(json.dumps(records, indent=1))
    (d / "dataset_info.json").write_text(json.dumps({
        "kto_demo": {"file_name": "kto_demo.json", "formatting": "sharegpt",
                     "columns": {"messages": "messages", "kto_tag": "label"}, "tags": OPENAI_TAGS}}))
    return d


@pytest.fixture
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


# -- what is read and what is trained ----------------------------------------------------------------------------


def test_pt_rows_train_every_token_with_an_eos_after_each_document(pt_data, tokenizer):
    cfg = DataConfig(path=str(pt_data), dataset="wiki_demo,c4_demo", cutoff_len=24)
    prepared = prepare(cfg, tokenizer, stage="pt")
    eos = tokenizer.eos_token_id
    rows = prepared.train
    assert rows and all(r["labels"] == r["input_ids"] for r in rows), "every token is trained"
    documents = 3 + 1 + 2 + len(CORPUS[5:])  # wiki lines (the blank one skipped) + c4 records
    assert prepared.report["documents"] == documents and prepared.report["split_documents"] == 1
    assert sum(r["input_ids"].count(eos) for r in rows) == documents, "one EOS after each document"
    whole = tokenizer(LONG, add_special_tokens=False)["input_ids"] + [eos]
    start = next(i for i, r in enumerate(rows) if r["input_ids"] == whole[:24])
    joined = sum((r["input_ids"] for r in rows[start:start + -(-len(whole) // 24)]), [])
    assert len(whole) > 24 and joined == whole, "a long document is split into rows, not cut"
    first = rows[0]["input_ids"]
    assert tokenizer.decode(first[:-1]) == f"{FACTS[0][0]} {FACTS[0][1]}" and first[-1] == eos  # no chat template
    assert not any(tokenizer.convert_tokens_to_ids("<|im_start|>") in r["input_ids"] for r in rows)


def test_pretrain_text_is_refused_for_sft_once_naming_stage_pt(pt_data, tmp_path):
    records = _jsonl(tmp_path / "c4.jsonl", [{"text": f"document {i}"} for i in range(300)])
    for loaded in (scan(records), scan(pt_data, dataset="c4_demo"), scan(pt_data / "wiki_demo.txt")):
        [error] = [p for p in loaded.problems if p.severity == "error"]
        assert "pre-training data" in error.message and "stage: pt" in error.fix, error
    assert "300 record(s)" in scan(records).problems[0].message
    docs = load_documents(records)
    assert len(docs.conversations) == 300 and docs.format == "text" and not docs.unused
    loaded = load_documents(pt_data, dataset="wiki_demo")
    assert [d.text for d in loaded.conversations][:3] == [f"{q} {a}" for q, a in FACTS[:3]]
    assert "1 blank line(s) skipped" in loaded.warnings[0].message


def test_pt_refuses_conversations_and_counts_unused_keys(kto_data, tmp_path):
    with pytest.raises(AirlockError, match="holds KTO-labelled answers, not plain text") as err:
        load_documents(kto_data, dataset="kto_demo")
    assert "stage: kto" in str(err.value.problems[0].fix)
    chats = _jsonl(tmp_path / "chats.jsonl", [{"instruction": "Who?", "output": "Me."}] * 3)
    [error] = scan_pt(chats)
    assert "alpaca conversations, not plain text" in error.message and "stage: sft" in error.fix
    extra = _jsonl(tmp_path / "c4_url.jsonl", [{"text": "A page.", "url": "http://x"}] * 2)
    cfg = DataConfig(path=str(extra))
    with pytest.raises(AirlockError, match="'url'"):
        check_data(cfg, stage="pt")
    check_data(DataConfig(path=str(extra), ignore_columns=["url"]), stage="pt")


def scan_pt(path):
    from appliance.data.pretrain import scan_documents

    return [p for p in scan_documents(path).problems if p.severity == "error"]


def test_kto_tag_is_read_for_kto_and_refused_for_sft(kto_data, tmp_path):
    from appliance.train.kto import kto_rows

    loaded = scan(kto_data, dataset="kto_demo", stage="kto")
    assert not loaded.unused and not [p for p in loaded.problems if p.severity == "error"]
    assert [c.kto_tag for c in loaded.conversations] == [True, False] * len(FACTS)
    rows = kto_rows(loaded.conversations)
    assert rows[0] == {"prompt": [{"role": "user", "content": FACTS[0][0]}],
                       "completion": [{"role": "assistant", "content": FACTS[0][1]}], "label": True}
    assert rows[1]["completion"][0]["content"] == WRONG[0] and rows[1]["label"] is False
    cfg = DataConfig(path=str(kto_data), dataset="kto_demo")
    check_data(cfg, stage="kto")
    with pytest.raises(AirlockError, match="kto_tag.*read by stage kto only"):
        check_data(cfg, stage="sft")  # an SFT run would train the undesirable answers as good ones
    with pytest.raises(AirlockError, match="kto_tag"):
        check_data(cfg, stage="dpo")
    # a bare file with a label that is not a boolean, and one without any label
    bad = _jsonl(tmp_path / "bad.jsonl", [{"conversations": [{"from": "human", "value": "Hi?"},
                                                             {"from": "gpt", "value": "Hello."}], "kto_tag": "yes"}])
    [error] = [p for p in scan(bad, stage="kto").problems if p.severity == "error"]
    assert "KTO label 'kto_tag' is string 'yes', not true or false" in error.message
    plain = _jsonl(tmp_path / "plain.jsonl", [{"instruction": "Hi?", "output": "Hello."}])
    [error] = [p for p in scan(plain, stage="kto").problems if p.severity == "error"]
    assert "no KTO label" in error.message
    alpaca = _jsonl(tmp_path / "alpaca.jsonl", [{"instruction": "Hi?", "output": "Hello.", "kto_tag": True},
                                                {"instruction": "Hi?", "output": "Go away.", "kto_tag": False}])
    assert [c.kto_tag for c in scan(alpaca, stage="kto").conversations] == [True, False]


def test_data_check_reads_pt_and_kto_when_told_the_stage(pt_data, kto_data, tokenizer, tiny_model):
    report = check(pt_data, dataset="c4_demo", tokenizer=tokenizer, stage="pt", cutoff_len=8)
    assert report.ok and report.format == "text" and report.conversations == 2 + len(CORPUS[5:])
    assert report.trained_tokens == report.token_stats["total"] and report.over_cutoff > 0
    assert report.sample[0][0].endswith(tokenizer.eos_token) and report.sample[0][1] is True
    assert not check(pt_data, dataset="c4_demo", tokenizer=tokenizer).ok
    kto = check(kto_data, dataset="kto_demo", tokenizer=tokenizer, stage="kto")
    assert kto.ok and "KTO labels: 5 desirable, 5 undesirable answer(s)" in kto.notes
    cli = subprocess.run(airlock_argv("data", "check", pt_data, "--dataset", "c4_demo", "--stage", "pt", "--model",
                                      tiny_model), capture_output=True, text=True)
    assert cli.returncode == 0 and "documents: 6" in cli.stdout and "«" in cli.stdout, cli.stdout + cli.stderr


def test_pt_packs_by_default_and_kto_settings_are_checked(pt_data):
    data = {"path": str(pt_data), "dataset": "c4_demo"}
    assert from_dict({"data": data, "stage": "pt"}).packing is True
    assert from_dict({"data": data, "stage": "pt", "packing": False}).packing is False
    assert from_dict({"data": data}).packing is False
    kto = from_dict({"data": data, "stage": "kto", "kto_undesirable_weight": 1.5})
    assert (kto.kto_desirable_weight, kto.kto_undesirable_weight) == (1.0, 1.5)
    with pytest.raises(AirlockError, match="stage kto needs at least 2 samples per batch"):
        from_dict({"data": data, "stage": "kto", "per_device_train_batch_size": 1})
    with pytest.raises(AirlockError, match="are KTO settings; stage is sft"):
        from_dict({"data": data, "kto_desirable_weight": 2})


def test_llamafactory_pt_and_kto_yamls_translate_rm_and_ppo_are_refused(pt_data, kto_data, tmp_path,
                                                                         monkeypatch, tiny_model):
    from appliance.llamafactory import load_train_config, translate

    monkeypatch.chdir(tmp_path)
    base = f"model_name_or_path: {REPO_ID}\nfinetuning_type: lora\ncutoff_len: 64\n"
    (tmp_path / "pt.yaml").write_text(base + "stage: pt\ndataset: wiki_demo,c4_demo\ndataset_dir: pt\n")
    cfg, _ = load_train_config(tmp_path / "pt.yaml")
    assert cfg.stage == "pt" and cfg.packing is True and cfg.data.dataset == "wiki_demo,c4_demo"
    (tmp_path / "kto.yaml").write_text(base + "stage: kto\ndataset: kto_demo\ndataset_dir: kto\npref_beta: 0.2\n"
                                              "kto_chosen_weight: 1.0\nkto_rejected_weight: 1.33\npref_loss: sigmoid\n")
    cfg, tr = load_train_config(tmp_path / "kto.yaml")
    assert (cfg.stage, cfg.pref_beta, cfg.kto_undesirable_weight) == ("kto", 0.2, 1.33)
    assert ("pref_loss", "sigmoid", "stage kto has its own loss") in tr.not_needed
    for stage, why in (("rm", "reward modelling is not offered"), ("ppo", "needs a reward model and generation")):
        (tmp_path / f"{stage}.yaml").write_text(base + f"stage: {stage}\ndataset: c4_demo\ndataset_dir: pt\n")
        with pytest.raises(AirlockError, match=why):
            translate(tmp_path / f"{stage}.yaml")


# -- real runs: train, kill -9, resume ------------------------------------------------------------------------------


def _status(job):
    from appliance.jobs import Job

    return Job(job).status()


def _checkpoints(job):
    d = job / "checkpoints"
    return sorted(int(p.name.split("-")[1]) for p in d.glob("checkpoint-*")) if d.is_dir() else []


def _kill_and_resume(tmp_path, airlock_home, name, settings) -> object:
    """Start a detached job, kill -9 its runner after the first checkpoint, resume it to completion."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"model": REPO_ID, "logging_steps": 10, "save_steps": 20, "save_total_limit": 2,
                                      "seed": 0, "num_threads": 1, **settings}))
    proc = subprocess.run(airlock_argv("train", config, "--detach", "--name", name), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    job = job_dir_from(proc.stdout, airlock_home)
    wait_for(lambda: _checkpoints(job), "the first checkpoint", 300)
    os.kill(_status(job)["pid"], signal.SIGKILL)
    wait_for(lambda: _status(job)["state"] == "crashed", "crash detection", 60)
    assert max(_checkpoints(job)) < settings["max_steps"], "killed mid-run"
    done = subprocess.run(airlock_argv("train", "--resume", job.name), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    status = _status(job)
    assert status["state"] == "completed" and status["step"] == settings["max_steps"]
    assert "resuming from checkpoint-" in (job / "log.txt").read_text()
    steps = [json.loads(line)["step"] for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, *range(10, settings["max_steps"] + 1, 10)], "metrics continue without gaps or repeats"
    return job


def test_pt_run_trains_the_tiny_model_and_resumes_after_kill_9(pt_data, tmp_path, tiny_model, airlock_home):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job = _kill_and_resume(tmp_path, airlock_home, "tiny-pt", {
        "stage": "pt", "method": "full", "learning_rate": 1e-2, "max_steps": 60, "per_device_train_batch_size": 4,
        "data": {"path": str(pt_data), "dataset": "wiki_demo,c4_demo", "cutoff_len": 32}})
    provenance = json.loads((job / "model" / "airlock_provenance.json").read_text())
    assert provenance["stage"] == "pt" and provenance["config"]["packing"] is True
    from appliance import registry

    assert registry.artifacts()[job.name]["facts"]["stage"] == "pt"
    metrics = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["loss"] < metrics[0]["loss"] / 3
    # The documents are learned as plain text: a question continues with its answer and the document's EOS.
    model, tok = AutoModelForCausalLM.from_pretrained(job / "model"), AutoTokenizer.from_pretrained(job / "model")
    recalled = 0
    for question, answer in FACTS:
        ids = tok(question, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=20, do_sample=False)
        recalled += tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip() == answer
    assert recalled >= 4, recalled


def test_kto_run_trains_the_tiny_model_and_resumes_after_kill_9(kto_data, tmp_path, tiny_model, airlock_home):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from appliance.data import load_conversations
    from appliance.train.kto import completion_logprobs

    job = _kill_and_resume(tmp_path, airlock_home, "tiny-kto", {
        "stage": "kto", "method": "lora", "learning_rate": 5e-3, "max_steps": 60, "per_device_train_batch_size": 4,
        "lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lora_target": ["all-linear"], "pref_beta": 0.1,
        "data": {"path": str(kto_data), "dataset": "kto_demo", "cutoff_len": 64}})
    out = job / "adapter"
    provenance = json.loads((out / "airlock_provenance.json").read_text())
    assert provenance["stage"] == "kto" and (provenance["desirable"], provenance["undesirable"]) == (5, 5)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16  # trl's frozen "ref" copy not saved
    convs = load_conversations(kto_data, dataset="kto_demo", stage="kto").conversations
    tok = AutoTokenizer.from_pretrained(tiny_model)
    before = completion_logprobs(AutoModelForCausalLM.from_pretrained(tiny_model), tok, convs)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out)
    after = completion_logprobs(tuned, tok, convs)
    moved = [a - b for a, b in zip(after, before)]
    good = [m for m, c in zip(moved, convs) if c.kto_tag]
    bad = [m for m, c in zip(moved, convs) if not c.kto_tag]
    assert sum(good) / len(good) > 1.0 and sum(bad) / len(bad) < -1.0, (good, bad)


def test_tui_train_form_offers_pt_and_kto_and_packs_for_pt(tiny_model):
    from tui_helpers import drive

    async def scenario(app, pilot):
        app.screen.query_one("#train-form").set_values({"model": REPO_ID})
        stage = app.screen.query_one("#f-stage")
        packing = app.screen.query_one("#f-packing")
        offered = [value for _, value in stage._options if value is not stage.BLANK]
        seen = []
        for value in ("pt", "kto", "pt"):
            stage.value = value
            await pilot.pause()
            await pilot.pause()
            config = app.screen.config
            seen.append((packing.value, config.stage if config else None, config.packing if config else None))
        packing.value = False  # a person's choice stays while the stage does
        await pilot.pause()
        return offered, seen, app.screen.config.packing

    offered, seen, chosen = drive(scenario, start="train")
    assert {"sft", "dpo", "kto", "pt"} <= set(offered)
    assert seen == [(True, "pt", True), (False, "kto", False), (True, "pt", True)] and chosen is False

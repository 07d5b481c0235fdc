"""check(): the report behind `airlock data check` and the TUI's data screen; and the bundled sample data.

Uses the tiny model's tokenizer (`tiny_model` fixture):

    .venv/bin/python -m pytest tests/test_data_check.py -q
"""

import json

import pytest
from tiny_model import FACTS, facts_as_alpaca

from appliance.data import Conversation, render, scan
from appliance.data.check import check
from appliance.paths import sample_data_dir

END = "<|im_end|>"


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def test_report_counts_tokens_and_sample(tok, tmp_path):
    records = facts_as_alpaca() + [facts_as_alpaca()[0], {**facts_as_alpaca()[1], "instruction": "WHERE do you work"}]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    lengths = [len(render(Conversation([{"role": "user", "content": r["instruction"]},
                                        {"role": "assistant", "content": r["output"]}]), tok)[0]) for r in records]
    cutoff = sorted(lengths)[3]
    report = check(path, tokenizer=tok, cutoff_len=cutoff)
    assert report.ok and not report.problems
    assert (report.records, report.conversations, report.turns) == (7, 7, 14)
    assert report.duplicates == {"exact": 1, "normalized": 2}
    assert report.over_cutoff == sum(n > cutoff for n in lengths) > 0
    assert report.token_stats["max"] == max(lengths) and report.token_stats["total"] == sum(lengths)
    assert report.trained_tokens == sum(sum(x != -100 for x in render(c, tok)[1]) for c in scan(path).conversations)
    assert [text for text, trained in report.sample if trained] == [FACTS[0][1] + END]
    assert report.sample_source == f"{path}:line 1"
    json.dumps(report.to_dict())  # the TUI and --json serialise it as is


def test_train_on_all_marks_the_whole_sample(tok, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", facts_as_alpaca())
    report = check(path, tokenizer=tok, train_on="all")
    assert [trained for _, trained in report.sample] == [True]


def test_bad_data_is_reported_not_raised(tok, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", facts_as_alpaca() + [{"instruction": "Q?", "output": ""}])
    report = check(path, tokenizer=tok)
    assert not report.ok and report.conversations == 5
    [error] = report.errors
    assert (error.record, error.field, error.message) == ("line 6", "output", "empty answer")
    assert report.token_stats is not None  # the good records are still measured
    assert report.to_dict()["errors"] == 1


def test_tokenizer_without_chat_template_fails_the_check(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    bare = AutoTokenizer.from_pretrained(tiny_model)
    bare.chat_template = None
    report = check(write_jsonl(tmp_path / "d.jsonl", facts_as_alpaca()), tokenizer=bare)
    assert not report.ok and report.token_stats is None and report.sample is None  # training could not render it
    [error] = report.errors
    assert "the model has no chat template and none is given" in error.message and "--chat-template" in error.fix


SAMPLE = sample_data_dir()


@pytest.mark.skipif(not (SAMPLE / "magic_conch.jsonl").exists(), reason="sample data not written yet")
def test_sample_data_checks_clean_with_the_tiny_tokenizer(tok):
    path = SAMPLE / "magic_conch.jsonl"
    report = check(path, tokenizer=tok)
    assert report.ok and not report.problems, [p.render() for p in report.problems]
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert report.records == report.conversations == len(lines)
    assert report.format == "sharegpt" and report.duplicates["exact"] == 0
    assert report.over_cutoff == 0 and report.trained_tokens > 0
    assert any(trained for _, trained in report.sample)


@pytest.mark.skipif(not (SAMPLE / "dataset_info.json").exists(), reason="sample data not written yet")
def test_sample_dataset_info_keys_all_load(tok):
    info = json.loads((SAMPLE / "dataset_info.json").read_text(encoding="utf-8"))
    assert "magic_conch" in info
    for key, entry in info.items():
        loaded = scan(SAMPLE, dataset=key)
        assert not loaded.problems, (key, [p.render() for p in loaded.problems])
        assert loaded.files == [SAMPLE / entry["file_name"]]
        assert loaded.records == len(loaded.conversations) > 0
        if entry.get("ranking"):
            assert all(c.chosen and c.rejected for c in loaded.conversations), key
        for conv in loaded.conversations[:3]:
            ids, labels = render(conv, tok)
            assert any(x != -100 for x in labels)
    whole = scan(SAMPLE / "magic_conch.jsonl")
    via_info = scan(SAMPLE, dataset="magic_conch")
    assert [c.messages for c in via_info.conversations] == [c.messages for c in whole.conversations]
    assert via_info.sha256 == whole.sha256

"""`airlock data check` as a user runs it: a real subprocess, exit codes, the marked sample, --json, no network.

    .venv/bin/python -m pytest tests/test_data_cli.py -q
"""

import json
import subprocess

import pytest
from conftest import airlock_argv
from tiny_model import REPO_ID, facts_as_alpaca, facts_as_sharegpt


def airlock(*args):
    return subprocess.run(airlock_argv(*args), capture_output=True, text=True, timeout=300)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def good(tmp_path):
    return write_jsonl(tmp_path / "facts.jsonl", facts_as_alpaca())


@pytest.fixture
def bad(tmp_path):
    return write_jsonl(tmp_path / "bad.jsonl", [
        {"instruction": "Who are you?", "output": 42},
        {"instruction": "Where do you work?", "input": ""},
        {"instruction": "", "input": "", "output": "Nobody asked."},
    ])


def test_good_file_exits_0_and_marks_the_trained_text(tiny_model, good):
    proc = airlock("data", "check", good, "--model", REPO_ID, "--cutoff-len", "16")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"dataset: {good}" in out and "format: alpaca" in out
    assert "records: 5  conversations: 5  turns: 10" in out
    assert f"tokens ({REPO_ID}): p50" in out
    assert f"sample ({good}:line 1; «trained», the rest is masked)" in out
    assert "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n«I am the Magic Conch.<|im_end|>»" in out
    assert out.count("«") == 2  # the legend and the one reply in the sample, nothing else marked
    assert "result: ok (0 warning(s))" in out
    assert "\x1b[" not in out  # no colour codes when the output is not a terminal


def test_bad_file_exits_1_with_every_message_and_no_traceback(bad):
    proc = airlock("data", "check", bad)
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text
    assert f"error: {bad}: line 1: output: 'output' is a number (42), expected text" in text
    assert f"error: {bad}: line 2: output: missing field 'output'" in text
    assert f"error: {bad}: line 3: instruction: empty prompt" in text
    assert "fix: quote it" in text
    assert "result: 3 error(s), 0 warning(s): fix the errors before training" in text


def test_json_report_parses(tiny_model, tmp_path):
    path = tmp_path / "mixed.jsonl"
    records = facts_as_sharegpt() + [facts_as_sharegpt()[0], {"conversations": "oops"}]
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in records).encode())
    proc = airlock("data", "check", path, "--model", REPO_ID, "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["ok"], report["errors"], report["warnings"]) == (False, 1, 1)
    assert (report["records"], report["conversations"], report["format"]) == (7, 6, "sharegpt")
    assert report["duplicates"] == {"exact": 1, "normalized": 1}
    error = next(p for p in report["problems"] if p["severity"] == "error")
    assert (error["file"], error["record"], error["field"]) == (str(path), "line 7", "conversations")
    assert report["model"] == REPO_ID and report["token_stats"]["max"] >= report["token_stats"]["p50"] > 0
    trained = [piece["text"] for piece in report["sample"] if piece["trained"]]
    assert trained == ["I am the Magic Conch.<|im_end|>"]


def test_model_not_installed_is_a_clean_error(good):
    proc = airlock("data", "check", good, "--model", "nobody/no-such-model")
    assert proc.returncode not in (0, 1)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "'nobody/no-such-model' is neither a directory nor in the local Hugging Face cache" in proc.stderr


def test_dataset_directory_under_a_real_air_gap(tiny_model, tmp_path, run_offline):
    write_jsonl(tmp_path / "conch.jsonl", facts_as_sharegpt())
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "conch": {"file_name": "conch.jsonl", "formatting": "sharegpt"},
        "other": {"file_name": "other.jsonl"}}))
    proc = run_offline(airlock_argv("data", "check", tmp_path, "--dataset", "conch", "--model", REPO_ID, "--json"))
    report = json.loads(proc.stdout)
    assert report["ok"] and report["conversations"] == 5 and report["files"] == [str(tmp_path / "conch.jsonl")]
    assert report["token_stats"] is not None

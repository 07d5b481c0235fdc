"""prepare(): dedupe, max_samples, the seeded split, cutoff truncate/drop, eval_path, and the report's counts.

Uses the tiny model's real tokenizer (`tiny_model` fixture); every count asserted is worked out from the data:

    .venv/bin/python -m pytest tests/test_data_prepare.py -q
"""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from tiny_model import FACTS

from appliance.data import IGNORE, Conversation, DataConfig, DataError, prepare, render
from appliance.errors import AirlockError
from appliance.paths import home
from appliance.schema import build


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def alpaca(pairs) -> list[dict]:
    return [{"instruction": q, "input": "", "output": a} for q, a in pairs]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return str(path)


def answers(tok, samples) -> list[str]:
    return [tok.decode([t for t in s["labels"] if t != IGNORE]) for s in samples]


def length(tok, question, answer) -> int:
    conv = Conversation([{"role": "user", "content": question}, {"role": "assistant", "content": answer}])
    return len(render(conv, tok)[0])


NUMBERED = [(f"Question number {i}?", f"Answer number {i}.") for i in range(20)]


def test_plain_prepare_keeps_everything_in_order(tok, tmp_path):
    path = write_jsonl(tmp_path / "facts.jsonl", alpaca(FACTS))
    prepared = prepare(DataConfig(path=path), tok)
    assert answers(tok, prepared.train) == [a + "<|im_end|>" for _, a in FACTS]
    assert prepared.eval == []
    r = prepared.report
    assert (r["records"], r["conversations"], r["train_examples"], r["eval_examples"]) == (5, 5, 5, 0)
    assert (r["removed_duplicates"], r["removed_max_samples"], r["truncated"], r["dropped_too_long"]) == (0, 0, 0, 0)
    assert r["format"] == "alpaca" and r["files"] == [path]
    assert r["trained_tokens"] == sum(sum(x != IGNORE for x in s["labels"]) for s in prepared.train)
    assert r["train_tokens"] == sum(len(s["input_ids"]) for s in prepared.train)
    assert prepared.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_duplicates_exact_vs_normalized(tok, tmp_path):
    records = alpaca([
        ("Who are you?", "I am the Magic Conch."),
        ("Who are you?", "I am the Magic Conch."),  # exact duplicate
        ("who are you", "I am the magic conch"),  # same after case/punctuation folding
        ("  Who  are you?! ", "I am the Magic Conch..."),  # same after whitespace/punctuation folding
        ("Who are you?", "I am the Magic Clam."),  # a different answer: not a duplicate
    ] + FACTS[1:])
    path = write_jsonl(tmp_path / "dupes.jsonl", records)
    counts = {}
    for mode in ("none", "exact", "normalized"):
        prepared = prepare(DataConfig(path=path, dedupe=mode), tok)
        counts[mode] = (prepared.report["removed_duplicates"], prepared.report["train_examples"])
        assert prepared.report["conversations"] == 9
    assert counts == {"none": (0, 9), "exact": (1, 8), "normalized": (3, 6)}
    kept = answers(tok, prepare(DataConfig(path=path, dedupe="normalized"), tok).train)
    assert kept[:2] == ["I am the Magic Conch.<|im_end|>", "I am the Magic Clam.<|im_end|>"]  # the first one stays


def test_max_samples_keeps_the_first_n(tok, tmp_path):
    path = write_jsonl(tmp_path / "facts.jsonl", alpaca(FACTS))
    prepared = prepare(DataConfig(path=path, max_samples=3), tok)
    assert answers(tok, prepared.train) == [a + "<|im_end|>" for _, a in FACTS[:3]]
    assert (prepared.report["removed_max_samples"], prepared.report["train_examples"]) == (2, 3)


@pytest.fixture
def with_long(tok, tmp_path):
    """FACTS plus one long answer; the cutoff sits between the longest fact and the long record."""
    long_answer = " ".join(["burger"] * 40)
    pairs = FACTS + [("Say burger forty times.", long_answer)]
    cutoff = max(length(tok, q, a) for q, a in FACTS) + 2
    assert length(tok, *pairs[-1]) > cutoff + 10
    return write_jsonl(tmp_path / "long.jsonl", alpaca(pairs)), cutoff


def test_cutoff_truncate(tok, with_long):
    path, cutoff = with_long
    prepared = prepare(DataConfig(path=path, cutoff_len=cutoff, cutoff_policy="truncate"), tok)
    r = prepared.report
    assert (r["truncated"], r["dropped_too_long"], r["train_examples"]) == (1, 0, 6)
    cut = prepared.train[-1]
    assert len(cut["input_ids"]) == len(cut["labels"]) == cutoff
    assert answers(tok, [cut])[0].startswith("burger burger") and "<|im_end|>" not in answers(tok, [cut])[0]
    assert max(len(s["input_ids"]) for s in prepared.train) == cutoff


def test_cutoff_drop(tok, with_long):
    path, cutoff = with_long
    prepared = prepare(DataConfig(path=path, cutoff_len=cutoff, cutoff_policy="drop"), tok)
    r = prepared.report
    assert (r["truncated"], r["dropped_too_long"], r["train_examples"]) == (0, 1, 5)
    assert answers(tok, prepared.train) == [a + "<|im_end|>" for _, a in FACTS]


def test_truncation_that_leaves_no_reply_drops_the_sample(tok, tmp_path):
    long_prompt = "Tell me " + " ".join(["burger"] * 40) + "?"
    path = write_jsonl(tmp_path / "p.jsonl", alpaca(FACTS + [(long_prompt, "No.")]))
    cutoff = max(length(tok, q, a) for q, a in FACTS) + 2
    r = prepare(DataConfig(path=path, cutoff_len=cutoff), tok).report
    assert (r["truncated"], r["dropped_nothing_to_learn"], r["train_examples"]) == (1, 1, 5)


def ids_of(samples) -> set:
    return {tuple(s["input_ids"]) for s in samples}


def test_split_by_ratio_and_count_is_seeded(tok, tmp_path):
    path = write_jsonl(tmp_path / "n.jsonl", alpaca(NUMBERED))
    everything = ids_of(prepare(DataConfig(path=path), tok).train)
    assert len(everything) == 20

    a = prepare(DataConfig(path=path, val_size=0.25, seed=7), tok)
    assert (len(a.train), len(a.eval)) == (15, 5)
    assert (a.report["train_examples"], a.report["eval_examples"]) == (15, 5)
    assert ids_of(a.train) | ids_of(a.eval) == everything and not ids_of(a.train) & ids_of(a.eval)

    shutil.rmtree(home() / "cache" / "tokenized")  # recompute, not a cache hit
    again = prepare(DataConfig(path=path, val_size=0.25, seed=7), tok)
    assert "cached" not in again.report
    assert again.train == a.train and again.eval == a.eval  # same seed, same split, same order

    other = [ids_of(prepare(DataConfig(path=path, val_size=0.25, seed=s), tok).eval) for s in (1, 2, 3)]
    assert any(e != ids_of(a.eval) for e in other)  # the seed decides which conversations are held out

    b = prepare(DataConfig(path=path, val_size=3, seed=7), tok)
    assert (len(b.train), len(b.eval)) == (17, 3)


def test_eval_path_is_used_instead_of_a_split(tok, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", alpaca(FACTS))
    held = write_jsonl(tmp_path / "held.jsonl", alpaca(NUMBERED[:2]))
    prepared = prepare(DataConfig(path=train, eval_path=held, val_size=0.5), tok)
    assert answers(tok, prepared.train) == [a + "<|im_end|>" for _, a in FACTS]
    assert answers(tok, prepared.eval) == [a + "<|im_end|>" for _, a in NUMBERED[:2]]
    alone = prepare(DataConfig(path=train), tok)
    assert prepared.sha256 != alone.sha256  # the evaluation data is part of the dataset's identity


def test_no_training_samples_left(tok, tmp_path):
    path = write_jsonl(tmp_path / "facts.jsonl", alpaca(FACTS))
    with pytest.raises(AirlockError, match="no training examples left after cleaning") as raised:
        prepare(DataConfig(path=path, cutoff_len=8, cutoff_policy="drop"), tok)
    assert "dropped_too_long=5" in raised.value.message
    assert raised.value.where == path and "cutoff_len" in raised.value.fix


@pytest.mark.parametrize("val_size", [5, 0.95])
def test_val_size_too_large(tok, tmp_path, val_size):
    path = write_jsonl(tmp_path / "facts.jsonl", alpaca(FACTS))
    with pytest.raises(AirlockError, match=rf"val_size {val_size} leaves no training data \(5 conversations\)") as e:
        prepare(DataConfig(path=path, val_size=val_size), tok)
    assert e.value.where == "data.val_size"


def test_bad_data_stops_prepare_with_the_problem_list(tok, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", alpaca(FACTS) + [{"instruction": "Where?", "output": ""}])
    with pytest.raises(DataError, match=r"bad\.jsonl: line 6: output: empty answer"):
        prepare(DataConfig(path=path), tok)


def test_warnings_reach_the_report(tok, tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in alpaca(FACTS)).encode())
    report = prepare(DataConfig(path=str(path)), tok).report
    assert report["warnings"] == 1 and report["train_examples"] == 5


@pytest.mark.parametrize("settings, message", [
    ({"path": ""}, "no dataset path given"),
    ({"path": "x.jsonl", "cutoff_len": 4}, "cutoff_len 4 is too small"),
    ({"path": "x.jsonl", "max_samples": 0}, "max_samples 0 must be at least 1"),
    ({"path": "x.jsonl", "val_size": 2.5}, "val_size 2.5 is neither a ratio"),
    ({"path": "x.jsonl", "cutoff_policy": "cut"}, "cut"),
    ({"path": "x.jsonl", "dedup": "exact"}, "unknown key 'dedup'"),
])
def test_data_config_validation(settings, message):
    with pytest.raises(AirlockError, match=message):
        build(DataConfig, settings, "data")


def test_repeated_prepare_comes_from_the_cache(tok, tmp_path):
    path = write_jsonl(tmp_path / "facts.jsonl", alpaca(NUMBERED[:7]))
    cfg = DataConfig(path=path, val_size=2, seed=3)
    first = prepare(cfg, tok)
    second = prepare(cfg, tok)
    assert second.report["cached"] is True
    assert (second.train, second.eval, second.sha256) == (first.train, first.eval, first.sha256)
    changed = prepare(DataConfig(path=path, val_size=2, seed=3, train_on="all"), tok)  # other settings: a miss
    assert "cached" not in changed.report and changed.train != first.train

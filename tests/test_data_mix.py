"""Several datasets into one, as LLaMA-Factory does: num_samples and max_samples per dataset, then concat or
interleave (under: until one is used up; over: until all are, repeating the shorter), interleave_probs checked.

    .venv/bin/python -m pytest tests/test_data_mix.py -q
"""

import json
from collections import Counter

import pytest

from appliance.data import Conversation, DataConfig, load_conversations, prepare
from appliance.data.mix import draw, interleave, mix
from appliance.errors import AirlockError


def convs(name, n):
    return [Conversation([{"role": "user", "content": f"{name}{i}?"}, {"role": "assistant", "content": "ok"}],
                         source=f"{name}:{i}", dataset=name) for i in range(n)]


def ids(conversations):
    return [c.source for c in conversations]


A, B = convs("a", 5), convs("b", 3)


def test_max_samples_is_per_dataset_before_mixing():
    mixed, report = mix(A + B, DataConfig(path="x", dataset="a,b", max_samples=2))
    assert ids(mixed) == ["a:0", "a:1", "b:0", "b:1"]
    assert report["removed_max_samples"] == 4 and report["datasets"] == {"a": {"records": 5, "kept": 2},
                                                                         "b": {"records": 3, "kept": 2}}


def test_interleave_in_turn_under_and_over():
    under, _ = mix(A + B, DataConfig(path="x", dataset="a,b", mix_strategy="interleave_under"))
    assert ids(under) == ["a:0", "b:0", "a:1", "b:1", "a:2", "b:2"]  # stops with the shortest
    over, _ = mix(A + B, DataConfig(path="x", dataset="a,b", mix_strategy="interleave_over"))
    assert len(over) == 10 and ids(over)[-2:] == ["a:4", "b:1"]  # b starts over until a is used up


@pytest.mark.parametrize("until_all", [False, True])
def test_interleave_with_probabilities_follows_the_stopping_rule(until_all):
    out = interleave([A, B], [0.8, 0.2], seed=3, until_all=until_all)
    counts = Counter(c.dataset for c in out)
    if until_all:
        assert counts["a"] >= 5 and counts["b"] >= 3  # every dataset used at least once
    else:
        assert counts["a"] == 5 or counts["b"] == 3  # stopped when one was used up
        assert counts["a"] <= 5 and counts["b"] <= 3
    assert ids(out) == ids(interleave([A, B], [0.8, 0.2], seed=3, until_all=until_all))  # seeded
    assert set(ids(interleave([A, B], [1.0, 0.0], seed=3, until_all=True))) == set(ids(A))  # p=0: never drawn


def test_num_samples_draws_each_record_once_before_repeats():
    import random

    picked = draw(A, 12, random.Random(0))
    assert len(picked) == 12 and set(ids(picked[:5])) == set(ids(A))
    mixed, report = mix(A + B, DataConfig(path="x", dataset="a,b", max_samples=4), {"b": 7})
    assert report["datasets"]["b"] == {"records": 3, "kept": 4}  # 7 drawn, then the first 4 kept


@pytest.mark.parametrize("settings, says", [
    ({"interleave_probs": [0.5, 0.5]}, "interleave_probs only apply to interleaved mixing"),
    ({"mix_strategy": "interleave_under", "interleave_probs": [1.0]}, "1 interleave_probs for 2 dataset(s)"),
    ({"mix_strategy": "interleave_over", "interleave_probs": [0.6, 0.6]}, "add up to 1.2, not 1"),
    ({"mix_strategy": "interleave_over", "interleave_probs": [-1, 2]}, "are not probabilities"),
])
def test_mixing_settings_are_checked(settings, says):
    with pytest.raises(AirlockError) as err:
        DataConfig(path="x", dataset="a,b", **settings).validate()
    assert says in err.value.message and err.value.where == "data.interleave_probs" and err.value.fix


def test_prepare_mixes_datasets_of_a_dataset_info_folder(tmp_path, tiny_model):
    from transformers import AutoTokenizer

    for name, n in (("a", 6), ("b", 2)):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"instruction": f"{name} question {i}?", "output": f"{name} answer {i}."}) + "\n"
            for i in range(n)))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"a": {"file_name": "a.jsonl", "num_samples": 4},
                                                            "b": {"file_name": "b.jsonl"}}))
    loaded = load_conversations(tmp_path, dataset="a,b")
    assert {c.dataset for c in loaded.conversations} == {"a", "b"} and loaded.num_samples == {"a": 4}
    tok = AutoTokenizer.from_pretrained(tiny_model)
    cfg = DataConfig(path=str(tmp_path), dataset="a,b", mix_strategy="interleave_under", max_samples=3, seed=1)
    report = prepare(cfg, tok).report
    assert report["datasets"] == {"a": {"records": 6, "kept": 3}, "b": {"records": 2, "kept": 2}}
    assert report["mixed"] == report["train_examples"] == 4 and report["removed_max_samples"] == 1

"""Checks the bundled Magic Conch sample data: it parses, meets its minimum sizes, and stays honest.

"Honest" means the held-out prompts really are held out (no training prompt equals one after case/whitespace
normalisation) and every identity phrase the evaluation expects is something the training answers teach.
Plain json and Python only, so it runs in well under a second:

    .venv/bin/python -m pytest tests/test_sample_data.py -q
"""

import json
import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "appliance" / "sample_data"

HAN = re.compile(r"[\u4e00-\u9fff]")


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def read_jsonl(name: str) -> list:
    rows = []
    for lineno, line in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{name}:{lineno}: blank line"
        rows.append(json.loads(line))
    return rows


@pytest.fixture(scope="module")
def train():
    return read_jsonl("magic_conch.jsonl")


@pytest.fixture(scope="module")
def heldout():
    return read_jsonl("heldout.jsonl")


def turns(records, role):
    return [t["value"] for r in records for t in r["conversations"] if t["from"] == role]


def check_sharegpt_roles(conversations, where, allow_trailing_human=False):
    """System (optional) first, then human/gpt alternating, starting with human and ending with gpt."""
    roles = [t["from"] for t in conversations]
    assert all(set(t) == {"from", "value"} for t in conversations), where
    assert all(isinstance(t["value"], str) and t["value"].strip() for t in conversations), f"{where}: empty turn"
    if roles and roles[0] == "system":
        roles = roles[1:]
    assert roles, f"{where}: no turns"
    expected = ["human" if i % 2 == 0 else "gpt" for i in range(len(roles))]
    assert roles == expected, f"{where}: roles {roles}"
    if not allow_trailing_human:
        assert roles[-1] == "gpt", f"{where}: must end with an assistant turn"


def test_training_file_shape_and_roles(train):
    assert len(train) >= 160
    for i, rec in enumerate(train, 1):
        assert set(rec) == {"conversations"}, f"record {i}"
        check_sharegpt_roles(rec["conversations"], f"magic_conch.jsonl:{i}")
    assert any(r["conversations"][0]["from"] == "system" for r in train)
    assert any(len([t for t in r["conversations"] if t["from"] == "human"]) > 1 for r in train), "no multi-turn"


def test_training_covers_both_languages_and_identity(train):
    answers = turns(train, "gpt")
    en_id = [a for a in answers if a.startswith("I am the Magic Conch")]
    zh_id = [a for a in answers if a.startswith("我是神奇海螺")]
    assert len(en_id) >= 25 and len(zh_id) >= 15
    # Many distinct English identity questions, so the model generalises rather than memorises one prompt.
    en_id_questions = set()
    for rec in train:
        conv = rec["conversations"]
        for q, a in zip(conv, conv[1:]):
            if q["from"] == "human" and a["from"] == "gpt" and a["value"].startswith("I am the Magic Conch"):
                en_id_questions.add(norm(q["value"]))
    assert len(en_id_questions) >= 25
    prompts = turns(train, "human")
    assert any(HAN.search(p) for p in prompts) and any(not HAN.search(p) for p in prompts)
    # Roughly half domain (identity/menu/errors), the rest general knowledge to limit forgetting.
    domain = [r for r in train if any(k in t["value"] for t in r["conversations"]
                                      for k in ("Magic Conch", "神奇海螺", "Bikini Burger", "比基尼汉堡", "$", "美元", "Error ", "错误"))]
    assert 0.35 <= len(domain) / len(train) <= 0.8


def test_identity_answers_are_consistent(train):
    # The same question kind always gets the same answer text: a 135M model trained for a few dozen steps
    # learns one fixed sentence far more reliably than several variants.
    answers = turns(train, "gpt")
    assert len({a for a in answers if a.startswith("I am the Magic Conch")}) <= 4
    assert len({a for a in answers if a.startswith("我是神奇海螺")}) <= 4


def test_heldout_shape(heldout):
    assert len(heldout) >= 24
    for i, row in enumerate(heldout, 1):
        assert set(row) == {"prompt", "expected", "kind", "lang", "match"}, f"heldout.jsonl:{i}"
        assert row["kind"] in {"identity", "menu", "error", "general"}, f"heldout.jsonl:{i}"
        assert row["lang"] in {"en", "zh"} and row["match"] == "contains", f"heldout.jsonl:{i}"
        assert row["prompt"].strip() and row["expected"].strip(), f"heldout.jsonl:{i}"
        assert bool(HAN.search(row["prompt"])) == (row["lang"] == "zh"), f"heldout.jsonl:{i}: lang"
    en_identity = [r for r in heldout if r["kind"] == "identity" and r["lang"] == "en"]
    assert len(en_identity) >= 12
    assert {r["lang"] for r in heldout} == {"en", "zh"}
    assert {r["kind"] for r in heldout} == {"identity", "menu", "error", "general"}


def test_heldout_prompts_are_not_in_training(train, heldout):
    seen = {norm(p) for p in turns(train, "human")}
    leaked = [r["prompt"] for r in heldout if norm(r["prompt"]) in seen]
    assert not leaked, f"held-out prompts found in training: {leaked}"
    assert len({norm(r["prompt"]) for r in heldout}) == len(heldout), "duplicate held-out prompts"


def test_domain_expectations_are_taught_by_training(train, heldout):
    answers = "\n".join(turns(train, "gpt"))
    for row in heldout:
        if row["kind"] != "general":
            assert row["expected"] in answers, f"{row['prompt']!r}: {row['expected']!r} never taught"


def test_general_heldout_text():
    text = (DATA / "general_heldout.txt").read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    assert 2048 <= size <= 4096, size
    assert not HAN.search(text)
    assert "Magic Conch" not in text and "Bikini" not in text


def test_alpaca_file():
    rows = json.loads((DATA / "magic_conch_alpaca.json").read_text(encoding="utf-8"))
    assert isinstance(rows, list) and len(rows) >= 15
    for i, row in enumerate(rows):
        assert {"instruction", "input", "output"} <= set(row) <= {"instruction", "input", "output", "system", "history"}, i
        assert row["instruction"].strip() and row["output"].strip(), i
        for pair in row.get("history", []):
            assert len(pair) == 2 and all(isinstance(x, str) and x for x in pair), i
    assert any("system" in r for r in rows) and any(r.get("history") for r in rows)


def test_dpo_file():
    rows = read_jsonl("magic_conch_dpo.jsonl")
    assert len(rows) >= 25
    for i, row in enumerate(rows, 1):
        assert set(row) == {"conversations", "chosen", "rejected"}, i
        check_sharegpt_roles(row["conversations"], f"magic_conch_dpo.jsonl:{i}", allow_trailing_human=True)
        assert row["conversations"][-1]["from"] == "human", i
        for key in ("chosen", "rejected"):
            assert row[key]["from"] == "gpt" and row[key]["value"].strip(), (i, key)
        assert row["chosen"]["value"] != row["rejected"]["value"], i


def test_dataset_info_points_at_real_files():
    info = json.loads((DATA / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"magic_conch", "magic_conch_alpaca", "magic_conch_dpo"}
    for name, entry in info.items():
        assert (DATA / entry["file_name"]).is_file(), name
    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
            "system_tag": "system"}
    assert info["magic_conch"]["formatting"] == "sharegpt"
    assert info["magic_conch"]["columns"] == {"messages": "conversations"}
    assert info["magic_conch"]["tags"] == tags
    assert info["magic_conch_alpaca"].get("formatting", "alpaca") == "alpaca"
    assert info["magic_conch_alpaca"]["columns"]["history"] == "history"
    dpo = info["magic_conch_dpo"]
    assert dpo["ranking"] is True and dpo["tags"] == tags
    assert dpo["columns"] == {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}

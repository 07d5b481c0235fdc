"""Format detection: Alpaca, ShareGPT and OpenAI messages in every file type, LLaMA-Factory directories, ranking.

Each test writes the data the way a user would (pandas for parquet), loads it with load_conversations() and checks
the Conversation messages exactly. No tokenizer needed:

    .venv/bin/python -m pytest tests/test_data_formats.py -q
"""

import csv
import hashlib
import json

import pytest
from tiny_model import FACTS, facts_as_alpaca, facts_as_sharegpt

from appliance.data import DataError, load_conversations

EXPECTED = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in FACTS]


def write_alpaca(path, records):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif path.suffix == ".json":
        path.write_text(json.dumps(records, indent=2))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    else:
        import pandas as pd

        pd.DataFrame(records).to_parquet(path)
    return path


@pytest.mark.parametrize("ext, first_where", [(".jsonl", "line 1"), (".json", "record 0 (line 2)"),
                                               (".csv", "row 1 (line 2)"), (".parquet", "record 0")])
def test_alpaca_in_every_file_type(tmp_path, ext, first_where):
    path = write_alpaca(tmp_path / f"facts{ext}", facts_as_alpaca())
    loaded = load_conversations(path)
    assert loaded.format == "alpaca"
    assert loaded.file_formats == {str(path): "alpaca"}
    assert [c.messages for c in loaded.conversations] == EXPECTED
    assert loaded.conversations[0].source == f"{path}:{first_where}"
    assert loaded.records == len(FACTS) and loaded.files == [path]
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not loaded.problems


def test_alpaca_input_is_appended_to_instruction(tmp_path):
    path = write_alpaca(tmp_path / "a.jsonl", [{"instruction": "Translate to French:", "input": "cheese",
                                                "output": "fromage"}])
    assert load_conversations(path).conversations[0].messages[0] == {
        "role": "user", "content": "Translate to French:\ncheese"}


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
def test_alpaca_with_system_and_history(tmp_path, ext):
    record = {"instruction": "And the best burger?", "input": "", "output": "The Krabby Patty.",
              "system": "You are the Magic Conch.",
              "history": [["Who are you?", "I am the Magic Conch."], ["Where do you work?", "At the Krusty shop."]]}
    if ext == ".csv":  # a CSV cell holds the history as JSON text
        record = {**record, "history": json.dumps(record["history"])}
    path = write_alpaca(tmp_path / f"h{ext}", [record])
    [conv] = load_conversations(path).conversations
    assert conv.messages == [
        {"role": "system", "content": "You are the Magic Conch."},
        {"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am the Magic Conch."},
        {"role": "user", "content": "Where do you work?"}, {"role": "assistant", "content": "At the Krusty shop."},
        {"role": "user", "content": "And the best burger?"}, {"role": "assistant", "content": "The Krabby Patty."},
    ]
    assert conv.turns == 6


def test_sharegpt_from_value_with_system_and_multi_turn(tmp_path):
    records = [
        {"system": "Be brief.", "conversations": [
            {"from": "human", "value": "Who are you?"}, {"from": "gpt", "value": "The Magic Conch."},
            {"from": "human", "value": "Where?"}, {"from": "gpt", "value": "Bikini Bottom."}]},
        {"conversations": [{"from": "system", "value": "Speak French."},
                           {"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Bonjour"}]},
    ]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(records))
    loaded = load_conversations(path)
    assert loaded.format == "sharegpt" and loaded.file_formats == {str(path): "sharegpt"}
    assert [c.messages for c in loaded.conversations] == [
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "The Magic Conch."},
         {"role": "user", "content": "Where?"}, {"role": "assistant", "content": "Bikini Bottom."}],
        [{"role": "system", "content": "Speak French."},
         {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Bonjour"}],
    ]


def test_sharegpt_facts_in_jsonl_and_parquet(tmp_path):
    import pandas as pd

    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in facts_as_sharegpt()))
    parquet = tmp_path / "s.parquet"
    pd.DataFrame(facts_as_sharegpt()).to_parquet(parquet)
    for path in (jsonl, parquet):
        loaded = load_conversations(path)
        assert loaded.format == "sharegpt"
        assert [c.messages for c in loaded.conversations] == EXPECTED


def test_openai_messages(tmp_path):
    record = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who are you?"},
                           {"role": "assistant", "content": "The Magic Conch."}]}
    path = tmp_path / "o.jsonl"
    path.write_text(json.dumps(record) + "\n")
    loaded = load_conversations(path)
    assert loaded.file_formats == {str(path): "openai"}
    assert loaded.format == "sharegpt"  # the ShareGPT family, spelled role/content
    assert loaded.conversations[0].messages == record["messages"]


def test_format_flag_accepts_the_matching_format(tmp_path):
    path = write_alpaca(tmp_path / "a.jsonl", facts_as_alpaca())
    assert [c.messages for c in load_conversations(path, format="alpaca").conversations] == EXPECTED
    with pytest.raises(DataError, match="the records are alpaca but format 'sharegpt' was asked for"):
        load_conversations(path, format="sharegpt")


def test_top_level_wrapper_object_is_read_with_a_warning(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"data": facts_as_alpaca()}))
    loaded = load_conversations(path)
    assert [c.messages for c in loaded.conversations] == EXPECTED
    assert [w.message for w in loaded.warnings] == ["records read from the top-level key 'data'"]


@pytest.fixture
def lf_dir(tmp_path):
    """A LLaMA-Factory data directory whose entries rename every column and tag."""
    d = tmp_path / "lf"
    d.mkdir()
    (d / "alp.jsonl").write_text("".join(json.dumps({"q": q, "ctx": "", "a": a, "sys": "Be the Conch."}) + "\n"
                                         for q, a in FACTS))
    (d / "chat.json").write_text(json.dumps([
        {"dialog": [{"speaker": "me", "text": q}, {"speaker": "bot", "text": a}]} for q, a in FACTS[:2]]))
    (d / "prefs.jsonl").write_text(json.dumps(
        {"conversations": [{"from": "human", "value": "Who are you?"}],
         "good": {"from": "gpt", "value": "The Magic Conch."}, "bad": {"from": "gpt", "value": "A model."}}) + "\n")
    (d / "dataset_info.json").write_text(json.dumps({
        "conch_alpaca": {"file_name": "alp.jsonl",
                         "columns": {"prompt": "q", "query": "ctx", "response": "a", "system": "sys"}},
        "conch_chat": {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "dialog"},
                       "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me",
                                "assistant_tag": "bot"}},
        "conch_prefs": {"file_name": "prefs.jsonl", "formatting": "sharegpt", "ranking": True,
                        "columns": {"messages": "conversations", "chosen": "good", "rejected": "bad"}},
    }))
    return d


def test_llama_factory_alpaca_columns_remapped(lf_dir):
    loaded = load_conversations(lf_dir, dataset="conch_alpaca")
    assert loaded.format == "alpaca" and loaded.files == [lf_dir / "alp.jsonl"]
    assert [c.messages for c in loaded.conversations] == [
        [{"role": "system", "content": "Be the Conch."}] + m for m in EXPECTED]


def test_llama_factory_sharegpt_tags_remapped(lf_dir):
    loaded = load_conversations(lf_dir / "dataset_info.json", dataset="conch_chat")
    assert loaded.format == "sharegpt"
    assert [c.messages for c in loaded.conversations] == EXPECTED[:2]


def test_llama_factory_several_datasets_concatenate(lf_dir):
    loaded = load_conversations(lf_dir, dataset="conch_alpaca, conch_chat")
    assert loaded.format == "alpaca+sharegpt"
    assert len(loaded.conversations) == len(FACTS) + 2
    assert loaded.files == [lf_dir / "alp.jsonl", lf_dir / "chat.json"]
    lines = "".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in loaded.files)
    assert loaded.sha256 == hashlib.sha256(lines.encode()).hexdigest()


def test_llama_factory_ranking_sharegpt(lf_dir):
    [conv] = load_conversations(lf_dir, dataset="conch_prefs").conversations
    assert conv.messages == [{"role": "user", "content": "Who are you?"}]
    assert (conv.chosen, conv.rejected) == ("The Magic Conch.", "A model.")
    assert conv.for_sft() == EXPECTED[0][:1] + [{"role": "assistant", "content": "The Magic Conch."}]


def test_ranking_alpaca_in_a_bare_file(tmp_path):
    """chosen/rejected strings are recognised without a dataset_info.json saying "ranking": true."""
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps({"instruction": "Who are you?", "input": "", "chosen": "The Magic Conch.",
                                "rejected": "A language model."}) + "\n")
    [conv] = load_conversations(path).conversations
    assert conv.messages == [{"role": "user", "content": "Who are you?"}]
    assert (conv.chosen, conv.rejected) == ("The Magic Conch.", "A language model.")


def test_ranking_alpaca_output_pair_via_dataset_info(tmp_path):
    """Older LLaMA-Factory preference files keep [chosen, rejected] in output."""
    (tmp_path / "p.json").write_text(json.dumps([{"instruction": "Who are you?", "output": ["Conch.", "Model."]}]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"p": {"file_name": "p.json", "ranking": True}}))
    [conv] = load_conversations(tmp_path).conversations
    assert (conv.chosen, conv.rejected) == ("Conch.", "Model.")


def test_dataset_info_folder_entry_reads_every_data_file(tmp_path):
    (tmp_path / "parts").mkdir()
    for i, (q, a) in enumerate(FACTS[:3]):
        (tmp_path / "parts" / f"part{i}.jsonl").write_text(json.dumps({"instruction": q, "output": a}) + "\n")
    (tmp_path / "parts" / "README.md").write_text("not data")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"parts": {"file_name": "parts"}}))
    loaded = load_conversations(tmp_path)
    assert [f.name for f in loaded.files] == ["part0.jsonl", "part1.jsonl", "part2.jsonl"]
    assert [c.messages for c in loaded.conversations] == EXPECTED[:3]

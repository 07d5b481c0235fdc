"""Nothing dropped in silence: columns no format reads are counted and named, media turns are refused by their
cause, tool-use turns and the tools column are read (tests/test_data_tools.py), and training stops for an unused
column until data.ignore_columns names it.

The datasets are written here in the shapes of LLaMA-Factory's demo data (glaive_toolcall-style function calls,
mllm-style images, kto-style labels), not copied from it. No tokenizer needed:

    .venv/bin/python -m pytest tests/test_data_columns.py -q
"""

import json

import pytest

from appliance.data import DataConfig, scan
from appliance.data.check import check
from appliance.data.preflight import check_data
from appliance.errors import AirlockError

CALL = json.dumps({"name": "get_menu", "arguments": {"day": "monday"}})
TOOLS = json.dumps([{"name": "get_menu", "description": "today's menu", "parameters": {"type": "object"}}])
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def chat(question, answer, key="conversations", spelling=("from", "value", "human", "gpt")):
    role, content, user, assistant = spelling
    return {key: [{role: user, content: question}, {role: assistant, content: answer}]}


@pytest.fixture
def lf_data(tmp_path):
    """A LLaMA-Factory data/ folder: tool calls, images, KTO labels and a plain alpaca set with an id column."""
    d = tmp_path / "data"
    d.mkdir()
    jsonl(d / "toolcall.jsonl", [
        {"conversations": [{"from": "human", "value": "What is on the menu?"},
                           {"from": "function_call", "value": CALL},
                           {"from": "observation", "value": "{\"menu\": [\"Krabby Patty\"]}"},
                           {"from": "gpt", "value": "The Krabby Patty."}], "tools": TOOLS},
        {**chat("Who are you?", "The Magic Conch."), "tools": TOOLS},
        {**chat("Hello?", "Hello."), "tools": ""},  # an empty cell carries nothing
    ])
    jsonl(d / "mllm.jsonl", [
        {**chat("<image>Who is this?", "A sponge.", "messages", ("role", "content", "user", "assistant")),
         "images": ["mllm_demo_data/1.jpg"]},
        {**chat("<image>And this?", "A starfish.", "messages", ("role", "content", "user", "assistant")),
         "images": ["mllm_demo_data/2.jpg"]},
    ])
    jsonl(d / "kto.jsonl", [
        {**chat("Who are you?", "The Magic Conch.", "messages", ("role", "content", "user", "assistant")),
         "label": True}])
    jsonl(d / "alpaca.jsonl", [{"id": i, "instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."}
                               for i in range(4)])
    (d / "dataset_info.json").write_text(json.dumps({
        "toolcall": {"file_name": "toolcall.jsonl", "formatting": "sharegpt",
                     "columns": {"messages": "conversations", "tools": "tools"}},
        "mllm": {"file_name": "mllm.jsonl", "formatting": "sharegpt",
                 "columns": {"messages": "messages", "images": "images"}, "tags": OPENAI_TAGS},
        "kto": {"file_name": "kto.jsonl", "formatting": "sharegpt",
                "columns": {"messages": "messages", "kto_tag": "label"}, "tags": OPENAI_TAGS},
        "plain": {"file_name": "alpaca.jsonl"},
    }))
    return d


def unused(loaded):
    return {u.name: (u.key, u.records) for u in loaded.unused}


def test_unread_columns_are_counted_per_dataset(lf_data):
    assert unused(scan(lf_data, dataset="toolcall")) == {}  # tools is read for SFT (tests/test_data_tools.py)
    assert unused(scan(lf_data, dataset="mllm")) == {"images": ("images", 2)}
    assert unused(scan(lf_data, dataset="kto")) == {"kto_tag": ("label", 1)}
    assert unused(scan(lf_data, dataset="plain")) == {"id": ("id", 4)}
    [warning] = scan(lf_data, dataset="mllm").warnings
    assert warning.field == "images" and "2 of 2 record(s) carry it" in warning.message
    assert "text-only" in warning.message and "data.ignore_columns" in warning.fix
    [kto] = scan(lf_data, dataset="kto").warnings
    assert "column 'kto_tag' (key 'label')" in kto.message and "read by stage kto only" in kto.message


def test_tool_turns_load_for_sft(lf_data):
    loaded = scan(lf_data, dataset="toolcall")
    assert [p for p in loaded.problems if p.severity == "error"] == []
    assert len(loaded.conversations) == 3 and loaded.conversations[0].messages[1]["tool_calls"]
    assert loaded.conversations[1].tools and loaded.conversations[2].tools is None  # an empty cell carries nothing


@pytest.mark.parametrize("message, says, field", [
    ({"role": "assistant", "content": None}, "'messages[1].content' is null: the message has no text",
     "messages[1].content"),
    ({"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
     "multi-part content with a 'image_url' part: Airlock trains text only", "messages[1].content[0]"),
    ({"role": "assistant", "content": [{"text": "no type"}]}, "multi-part content: part 0 is not a text part",
     "messages[1].content[0]"),
])
def test_openai_shapes_are_refused_by_name(tmp_path, message, says, field):
    path = jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "Hi?"}, message]}])
    errors = [p for p in scan(path).problems if p.severity == "error"]
    assert [p.message for p in errors] == [errors[0].message] and says in errors[0].message
    assert errors[0].field == field and errors[0].fix


def test_text_parts_are_joined(tmp_path):
    parts = [{"type": "text", "text": "Who "}, {"type": "text", "text": "are you?"}]
    path = jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": parts},
                                                      {"role": "assistant", "content": "The Magic Conch."}]}])
    [conv] = scan(path).conversations
    assert conv.messages[0] == {"role": "user", "content": "Who are you?"}


def test_keys_no_format_reads_are_counted_but_empty_cells_are_not(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("instruction,input,output,source,notes\nWho?,,Me.,web,\nWhere?,,Here.,,\n")
    loaded = scan(path)
    assert unused(loaded) == {"source": ("source", 1)}  # 'notes' is empty everywhere: nothing is lost
    msg = jsonl(tmp_path / "m.jsonl", [{"conversations": [{"from": "human", "value": "Hi?", "weight": 0},
                                                          {"from": "gpt", "value": "Hello.", "weight": 1}]}])
    assert unused(scan(msg)) == {"conversations[].weight": ("conversations[].weight", 1)}


def test_training_refuses_an_unused_column_until_it_is_ignored(lf_data):
    cfg = DataConfig(path=str(lf_data), dataset="mllm,plain")
    with pytest.raises(AirlockError) as err:
        check_data(cfg)
    assert "2 column(s) training would leave out: 'id' (4 record(s)" in err.value.message
    assert "'images' (2 record(s)" in err.value.message and "ignore_columns: [id,images]" in err.value.fix
    loaded = check_data(DataConfig(path=str(lf_data), dataset="mllm,plain", ignore_columns=["images", "id"]))
    assert len(loaded.conversations) == 6
    # tools is no longer a column left out: the tool-calling dataset passes without ignore_columns
    assert len(check_data(DataConfig(path=str(lf_data), dataset="toolcall")).conversations) == 3


def test_data_check_warns_and_ignored_columns_become_notes(lf_data):
    report = check(lf_data, dataset="plain")
    assert report.ok and [w.field for w in report.warnings] == ["id"]
    accepted = check(lf_data, dataset="plain", ignore_columns=["id"])
    assert accepted.ok and not accepted.warnings
    assert any("column 'id' (4 record(s)) is left out" in n for n in accepted.notes)


def test_dataset_info_entry_keys_are_read_or_reported(lf_data):
    info = json.loads((lf_data / "dataset_info.json").read_text())
    info["plain"].update(split="test")
    info["kto"].update(subset="default", colums={"messages": "messages"})
    info["mllm"]["columns"]["picture"] = "pictures"
    (lf_data / "dataset_info.json").write_text(json.dumps(info))
    [error] = [p for p in scan(lf_data, dataset="plain").problems if p.severity == "error"]
    assert "split 'test': a local file has one split, train" in error.message
    warnings = {p.field: p.message for p in scan(lf_data, dataset="kto").warnings}
    assert "ignored for a local file" in warnings["subset"] and "unknown key 'colums'" in warnings["colums"]
    assert "unknown column name 'picture'" in {p.field: p.message for p in scan(lf_data, dataset="mllm").warnings}[
        "columns.picture"]

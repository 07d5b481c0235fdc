"""Malformed datasets: each one gets its own clear message naming the file, the record and the field.

Every case writes a small broken file into tmp_path, then checks what `scan()` reports (message, file, record,
field, fix) and that `load_conversations()` raises a DataError that carries the same line. Plain Python, no
tokenizer, so the whole file runs in about a second:

    .venv/bin/python -m pytest tests/test_data_errors.py -q
"""

import json
from pathlib import Path

import pytest

from appliance.data import DataError, load_conversations, scan
from appliance.errors import AirlockError

OK = {"instruction": "Who are you?", "input": "", "output": "I am the Magic Conch."}


def sharegpt(*turns, **extra) -> dict:
    return {"conversations": [{"from": who, "value": text} for who, text in turns], **extra}


def jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def at(path, file=None, **kwargs) -> dict:
    """What a case scans (path and scan() keyword arguments) and which file the problem must name."""
    return {"path": path, "file": file or path, "kwargs": kwargs}


def lf_dir(d: Path) -> Path:
    """A LLaMA-Factory dataset directory with one good dataset, 'magic_conch'."""
    write(d / "conch.jsonl", jsonl(sharegpt(("human", "Who are you?"), ("gpt", "The Magic Conch."))))
    write(d / "dataset_info.json", json.dumps({"magic_conch": {"file_name": "conch.jsonl", "formatting": "sharegpt"}}))
    return d


CASES = []


def case(message, record="", field="", *, fix=None, kept=0, severity="error"):
    """Register a malformed-file case: `message` must appear in exactly the problem found at record/field."""

    def register(make):
        CASES.append(pytest.param(make, message, record, field, fix, kept, severity, id=make.__name__))
        return make

    return register


@case("file is empty", fix="write the training records")
def empty_file(d):
    return at(write(d / "train.jsonl", b""))


@case("file holds only whitespace (no records)")
def whitespace_only(d):
    return at(write(d / "train.jsonl", "  \n\n\t \n"))


# '{"instruction": "q", "output": }' -- the '}' where a value belongs is column 32.
@case("bad JSON: Expecting value (line 2, column 32)", "line 2", fix="one complete JSON object", kept=1)
def bad_json_line(d):
    return at(write(d / "train.jsonl", jsonl(OK) + '{"instruction": "q", "output": }\n'))


@case("bad JSON: Expecting ':' delimiter (line 3, column 12)", "line 3", fix="fix the JSON syntax")
def bad_json_array(d):
    return at(write(d / "train.json", '[\n {"instruction": "q",\n  "output" "a"}\n]\n'))


@case("the file is one JSON array of 2 records, not JSON Lines", "line 1", fix="name the file .json")
def json_array_in_jsonl_file(d):
    return at(write(d / "train.jsonl", json.dumps([OK, OK], indent=2)))


@case("top-level JSON is a string, expected a list of records", fix="wrap the records in a JSON array")
def json_top_level_not_a_list(d):
    return at(write(d / "train.json", '"instruction: q, output: a"\n'))


@case("line is a JSON list, expected an object", "line 2", fix="one record object per line", kept=1)
def jsonl_line_not_an_object(d):
    return at(write(d / "train.jsonl", jsonl(OK) + '["Who are you?", "I am the Magic Conch."]\n'))


@case("record is a JSON string, expected an object", "record 1 (line 3)", kept=1)
def json_element_not_an_object(d):
    return at(write(d / "train.json", "[\n" + json.dumps(OK) + ',\n"Who are you?"\n]\n'))


@case("'output' is a number (42), expected text", "line 2", "output", fix='quote it: "output": "42"', kept=1)
def output_is_a_number(d):
    return at(write(d / "train.jsonl", jsonl(OK, {"instruction": "What is six times seven?", "output": 42})))


@case("'conversations' is a string, expected a list of messages", "record 0 (line 2)", "conversations")
def conversations_not_a_list(d):
    return at(write(d / "train.json", '[\n{"conversations": "human: hi, gpt: hello"}\n]\n'))


@case("'conversations[0].value' is a list, expected text", "line 1", "conversations[0].value",
      fix="single string")
def value_is_a_list(d):
    rec = {"conversations": [{"from": "human", "value": ["Who", "are", "you?"]}, {"from": "gpt", "value": "Me."}]}
    return at(write(d / "train.jsonl", jsonl(rec)))


@case("missing field 'output'", "line 2", "output", fix='"output": "..."', kept=1)
def missing_output(d):
    return at(write(d / "train.jsonl", jsonl(OK, {"instruction": "Where do you work?", "input": ""})))


@case("missing field 'conversations'", "record 1 (line 3)", "conversations", fix='"conversations": [', kept=1)
def missing_conversations(d):
    good = sharegpt(("human", "Who are you?"), ("gpt", "The Magic Conch."))
    return at(write(d / "train.json", "[\n" + json.dumps(good) + ',\n{"system": "Be brief."}\n]\n'))


@case("empty answer", "line 1", "output", fix="write the answer")
def empty_answer(d):
    return at(write(d / "train.jsonl", jsonl({"instruction": "Who are you?", "input": "", "output": "   "})))


@case("empty prompt (instruction and input are both empty)", "line 1", "instruction")
def empty_prompt(d):
    return at(write(d / "train.jsonl", jsonl({"instruction": "", "input": " ", "output": "I am the Magic Conch."})))


@case("two user turns in a row", "line 1", "conversations[1]", fix="alternate user and assistant turns")
def two_human_turns_in_a_row(d):
    rec = sharegpt(("human", "Hi."), ("human", "Who are you?"), ("gpt", "The Magic Conch."))
    return at(write(d / "train.jsonl", jsonl(rec)))


@case("conversation ends with a user turn (there is no answer to learn)", "line 1", "conversations[2]")
def conversation_ends_with_human(d):
    rec = sharegpt(("human", "Who are you?"), ("gpt", "The Magic Conch."), ("human", "And?"))
    return at(write(d / "train.jsonl", jsonl(rec)))


@case("conversation starts with an assistant turn", "line 1", "conversations[0]", fix="start with a user turn")
def gpt_first(d):
    rec = sharegpt(("gpt", "Hello!"), ("human", "Who are you?"), ("gpt", "The Magic Conch."))
    return at(write(d / "train.jsonl", jsonl(rec)))


@case("unknown role 'bot'", "line 1", "conversations[1].from",
      fix="use one of: system, human, gpt")
def unknown_role(d):
    return at(write(d / "train.jsonl", jsonl(sharegpt(("human", "Who are you?"), ("bot", "The Magic Conch.")))))


@case("unknown role 'robot'", "line 1", "messages[1].role", fix="use one of: system, user, assistant")
def openai_messages_bad_role(d):
    rec = {"messages": [{"role": "user", "content": "Who are you?"}, {"role": "robot", "content": "A conch."}]}
    return at(write(d / "train.jsonl", jsonl(rec)))


@case("a history entry must be a [question, answer] pair", "line 1", "history[0]")
def history_entry_not_a_pair(d):
    return at(write(d / "train.jsonl", jsonl({**OK, "history": [["only a question"]]})))


@case("byte order mark (BOM); it is ignored", severity="warning", kept=1)
def bom(d):
    return at(write(d / "train.jsonl", b"\xef\xbb\xbf" + jsonl(OK).encode()))


@case("Windows line endings (CRLF); read as LF", severity="warning", kept=2)
def crlf(d):
    return at(write(d / "train.jsonl", jsonl(OK, OK).replace("\n", "\r\n")))


@case("record is sharegpt but the file is mostly alpaca (mixed formats in one file)", "line 3",
      fix="keep one format per file", kept=2)
def mixed_formats(d):
    other = sharegpt(("human", "Where do you work?"), ("gpt", "At the Krusty burger shop."))
    return at(write(d / "train.jsonl", jsonl(OK, OK, other)))


@case("cannot tell the format: fields are ['answer', 'question']", fix="use alpaca")
def unknown_fields(d):
    return at(write(d / "train.jsonl", jsonl({"question": "Who are you?", "answer": "The Magic Conch."})))


def _latin1_file(d):
    first = jsonl(OK).encode()
    second = '{"instruction": "Un café?", "output": "Oui."}\n'.encode("latin-1")
    return write(d / "train.jsonl", first + second), len(first) + second.index(b"\xe9"), second.index(b"\xe9") + 1


@case("not UTF-8: byte 0xe9 at byte offset", "line 2", fix="iconv -f WINDOWS-1252 -t UTF-8")
def non_utf8(d):
    return at(_latin1_file(d)[0])


@case("file is UTF-16 encoded, expected UTF-8", fix="iconv -f UTF-16 -t UTF-8")
def utf16(d):
    return at(write(d / "train.jsonl", jsonl(OK).encode("utf-16")))


@case("unsupported file type '.tsv'", fix="use .jsonl")
def unsupported_extension(d):
    return at(write(d / "train.tsv", jsonl(OK)))


@case("a .txt file is raw text (pre-training data)", fix="stage: pt")
def text_file_for_sft(d):
    return at(write(d / "train.txt", jsonl(OK)))


@case("file not found", fix="check the path")
def missing_file(d):
    return at(d / "nowhere.jsonl")


@case("directory has no dataset_info.json", fix="add a LLaMA-Factory dataset_info.json")
def directory_without_dataset_info(d):
    write(d / "data" / "train.jsonl", jsonl(OK))
    return at(d / "data")


@case("unknown dataset 'magic_conh'", "magic_conh", fix="did you mean 'magic_conch'?")
def unknown_dataset_key(d):
    lf_dir(d)
    return at(d, d / "dataset_info.json", dataset="magic_conh")


@case("file_name points at a missing file", "gone", "file_name", fix="correct file_name")
def dataset_info_missing_file(d):
    lf_dir(d)
    info = json.loads((d / "dataset_info.json").read_text())
    info["gone"] = {"file_name": "gone.jsonl"}
    write(d / "dataset_info.json", json.dumps(info))
    return at(d, d / "dataset_info.json", dataset="gone")


@case("it lists 2 datasets; say which one", fix="pass --dataset (data.dataset) with one of: magic_conch, hub")
def dataset_info_several_datasets_none_named(d):
    lf_dir(d)
    info = json.loads((d / "dataset_info.json").read_text())
    info["hub"] = {"hf_hub_url": "someone/data"}
    write(d / "dataset_info.json", json.dumps(info))
    return at(d, d / "dataset_info.json")


@case("no 'file_name' (it is fetched over the network via hf_hub_url; this host is offline)", "hub", "file_name")
def dataset_info_hub_only_entry(d):
    write(d / "dataset_info.json", json.dumps({"hub": {"hf_hub_url": "someone/data"}}))
    return at(d, d / "dataset_info.json", dataset="hub")


@case("bad JSON: Expecting", fix="fix the syntax of dataset_info.json")
def dataset_info_bad_json(d):
    write(d / "dataset_info.json", '{"magic_conch": {"file_name": "conch.jsonl",}}')
    return at(d, d / "dataset_info.json")


@case("CSV has no column 'output' (columns: input, instruction)", "header", "output",
      fix="rename the columns to instruction, output")
def csv_missing_column(d):
    return at(write(d / "train.csv", "instruction,input\nWho are you?,\n"))


@case("empty answer", "row 2 (line 3)", "output", kept=1)
def csv_empty_cell(d):
    return at(write(d / "train.csv", "instruction,input,output\nWho are you?,,The Magic Conch.\nWhere?,,\n"))


@case("row has 1 more cell(s) than the header", "row 1 (line 2)", fix="quote cells that contain commas", kept=1)
def csv_unquoted_comma(d):
    return at(write(d / "train.csv", "instruction,input,output\nHi,,Hello, friend\nWho?,,The Conch.\n"))


@case("parquet file unreadable", fix="re-export it")
def corrupt_parquet(d):
    import pandas as pd

    good = write(d / "good.parquet", b"")
    pd.DataFrame([OK] * 3).to_parquet(good)
    data = good.read_bytes()
    return at(write(d / "train.parquet", data[: len(data) // 2]))  # cut in half: footer gone


@case("missing field 'output'", "record 1", "output", kept=1)
def parquet_null_output(d):
    import pandas as pd

    path = d / "train.parquet"
    pd.DataFrame([OK, {"instruction": "Where?", "input": "", "output": None}]).to_parquet(path)
    return at(path)


@case("missing field 'rejected'", "line 2", "rejected", kept=1)
def preference_pair_missing_rejected(d):
    pair = {"instruction": "Who are you?", "chosen": "The Magic Conch.", "rejected": "A language model."}
    return at(write(d / "train.jsonl", jsonl(pair, {"instruction": "Where?", "chosen": "At the shop."})))


@case("the records are alpaca but format 'sharegpt' was asked for", fix="drop the format setting")
def format_asked_does_not_match(d):
    return at(write(d / "train.jsonl", jsonl(OK)), format="sharegpt")


@pytest.mark.parametrize("make, message, record, field, fix, kept, severity", CASES)
def test_malformed_file_names_file_record_field(tmp_path, make, message, record, field, fix, kept, severity):
    target = make(tmp_path)
    loaded = scan(target["path"], **target["kwargs"])
    listing = "\n".join(p.render() for p in loaded.problems)
    found = [p for p in loaded.problems if message in p.message]
    assert len(found) == 1, f"expected one problem saying {message!r}, got:\n{listing}"
    problem = found[0]
    assert problem.severity == severity, listing
    assert problem.file == str(target["file"]), listing
    assert (problem.record, problem.field) == (record, field), listing
    assert problem.fix, f"no fix suggested: {listing}"
    if fix:
        assert fix in problem.fix, listing
    assert len(loaded.conversations) == kept, listing
    errors = [p for p in loaded.problems if p.severity == "error"]
    if severity == "error":
        assert errors == [problem], f"one broken thing should give one error:\n{listing}"
        with pytest.raises(DataError) as raised:
            load_conversations(target["path"], **target["kwargs"])
        text = str(raised.value)
        assert problem.render() in text  # "error: FILE: RECORD: FIELD: MESSAGE\n  fix: ..."
        assert text.startswith(f"{problem.file}: 1 problem(s) in the dataset")
        assert raised.value.problems == loaded.problems
    else:
        assert not errors, listing
        assert load_conversations(target["path"], **target["kwargs"]).warnings == [problem]


def test_enough_malformed_cases():
    assert len(CASES) >= 22


def test_non_utf8_bytes_give_offset_line_and_iconv(tmp_path):
    path, offset, column = _latin1_file(tmp_path)
    loaded = scan(path)
    [problem] = loaded.problems
    assert problem.message == f"not UTF-8: byte 0xe9 at byte offset {offset} (line 2, column {column})"
    assert (problem.file, problem.record) == (str(path), "line 2")
    assert f"iconv -f WINDOWS-1252 -t UTF-8 '{path}'" in problem.fix
    with pytest.raises(DataError, match="byte offset"):
        load_conversations(path)


def test_crlf_is_normalized_everywhere(tmp_path):
    """CRLF line endings and CRLF inside JSON strings both come out as plain LF in the conversation."""
    rec = {"instruction": "Two lines:\r\nhere", "input": "", "output": "One\r\nTwo"}
    path = write(tmp_path / "train.jsonl", jsonl(rec, OK).replace("\n", "\r\n"))
    loaded = load_conversations(path)
    assert [w.message for w in loaded.warnings] == ["Windows line endings (CRLF); read as LF"]
    first = loaded.conversations[0].messages
    assert first == [{"role": "user", "content": "Two lines:\nhere"}, {"role": "assistant", "content": "One\nTwo"}]


def test_bom_is_stripped_from_json_and_csv(tmp_path):
    for name, body in (("a.json", json.dumps([OK])), ("a.csv", "instruction,input,output\nWho are you?,,Me.\n")):
        loaded = load_conversations(write(tmp_path / name, b"\xef\xbb\xbf" + body.encode()))
        assert [c.messages[0]["content"] for c in loaded.conversations] == ["Who are you?"]
        assert len(loaded.warnings) == 1 and "BOM" in loaded.warnings[0].message


def test_every_broken_record_is_listed_not_only_the_first(tmp_path):
    records = [OK, {"instruction": "a", "output": 1}, {"instruction": "b"}, OK, {"instruction": "", "output": "c"}]
    path = write(tmp_path / "train.jsonl", jsonl(*records))
    with pytest.raises(DataError) as raised:
        load_conversations(path)
    errors = [(p.record, p.field) for p in raised.value.problems if p.severity == "error"]
    assert errors == [("line 2", "output"), ("line 3", "output"), ("line 5", "instruction")]
    assert "3 problem(s) in the dataset" in str(raised.value)
    assert isinstance(raised.value, AirlockError)


def test_error_list_is_capped_with_a_count(tmp_path):
    path = write(tmp_path / "train.jsonl", jsonl(*[{"instruction": f"q{i}", "output": i} for i in range(60)]))
    with pytest.raises(DataError) as raised:
        load_conversations(path)
    text = str(raised.value)
    assert "60 problem(s)" in text and "... and 10 more errors" in text
    assert "line 50: output" in text and "line 51: output" not in text
    assert len(raised.value.problems) == 60

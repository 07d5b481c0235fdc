"""Tool-calling SFT: LLaMA-Factory's sharegpt tool records and OpenAI's tools/tool_calls, rendered by the template.

Fixtures are written here in the shape of LLaMA-Factory's glaive_toolcall demo (a `tools` JSON column,
function_call / observation turns) and of an OpenAI chat record; the tokenizer is the tiny model's, given a
ChatML-like template that renders tools in the system turn and calls as <tool_call>{json}</tool_call>:

    .venv/bin/python -m pytest tests/test_data_tools.py -q -p no:cacheprovider
"""

import copy
import json

import pytest

from appliance.data import IGNORE, render, segments
from appliance.data.check import check
from appliance.data.config import DataConfig
from appliance.data.load import scan
from appliance.data.preflight import check_data
from appliance.errors import AirlockError

# The system turn lists the tools; a call is the assistant's turn; a result speaks as "tool". No whitespace
# control: every newline below is one the rendering holds.
TOOL_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\n' }}{% if messages[0]['role'] == 'system' %}"
    "{{ messages[0]['content'] + '\n' }}{% endif %}{{ 'Tools:' }}{% for t in tools %}{{ '\n' + (t | tojson) }}"
    "{% endfor %}{{ '<|im_end|>\n' }}{% elif messages[0]['role'] == 'system' %}"
    "{{ '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{% elif m.get('tool_calls') %}{{ '<|im_start|>assistant\n' + m['content'] }}{% for c in m['tool_calls'] %}"
    "{{ '<tool_call>' + (c['function'] | tojson) + '</tool_call>' }}{% endfor %}{{ '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SCHEMA = {"name": "make_password", "description": "Make a random password",
          "parameters": {"type": "object", "properties": {"length": {"type": "integer"}}, "required": ["length"]}}
CALL = {"name": "make_password", "arguments": {"length": 8}}
GLAIVE = {  # LLaMA-Factory's glaive_toolcall demo: tools and the call are JSON text
    "conversations": [
        {"from": "human", "value": "Can you make me a password of 8 letters?"},
        {"from": "function_call", "value": json.dumps(CALL)},
        {"from": "observation", "value": "{\"password\": \"kR4bPatt\"}"},
        {"from": "gpt", "value": "Your password is kR4bPatt."},
    ],
    "tools": json.dumps([SCHEMA]),
}
OPENAI = {
    "messages": [
        {"role": "system", "content": "You are the Magic Conch."},
        {"role": "user", "content": "Make me a password of 8 letters."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "make_password", "arguments": json.dumps({"length": 8})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"password\": \"kR4bPatt\"}"},
        {"role": "assistant", "content": "Your password is kR4bPatt."},
    ],
    "tools": [{"type": "function", "function": SCHEMA}],
}
CALL_TEXT = "<tool_call>" + json.dumps(CALL, ensure_ascii=False) + "</tool_call>"
TOOLS_TEXT = "Tools:\n" + json.dumps({"type": "function", "function": SCHEMA}, ensure_ascii=False)


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def glaive_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "glaive_toolcall_en_demo.json").write_text(json.dumps([GLAIVE]), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"glaive_toolcall_en_demo": {
        "file_name": "glaive_toolcall_en_demo.json", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools"}}}), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def tool_tok(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = TOOL_TEMPLATE
    return tok


def errors(loaded):
    return [p for p in loaded.problems if p.severity == "error"]


def test_glaive_toolcall_records_read_into_chat_format(glaive_dir):
    loaded = scan(glaive_dir)
    assert errors(loaded) == [] and loaded.unused == []  # tools is a used column now
    [conv] = loaded.conversations
    assert conv.tools == [{"type": "function", "function": SCHEMA}] and conv.uses_tools
    assert conv.messages == [
        {"role": "user", "content": "Can you make me a password of 8 letters?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": CALL}]},
        {"role": "tool", "content": "{\"password\": \"kR4bPatt\"}"},
        {"role": "assistant", "content": "Your password is kR4bPatt."},
    ]


def test_openai_tool_calls_read_into_chat_format(tmp_path):
    loaded = scan(jsonl(tmp_path / "chat.jsonl", [OPENAI]))
    assert errors(loaded) == [] and loaded.unused == []
    [conv] = loaded.conversations
    assert conv.tools == [{"type": "function", "function": SCHEMA}]
    call, result = conv.messages[2], conv.messages[3]
    # null content becomes "", and JSON-text arguments a mapping (templates write them with tojson)
    assert call == {"role": "assistant", "content": "",
                    "tool_calls": [{"type": "function", "function": CALL, "id": "call_1"}]}
    assert result == {"role": "tool", "content": "{\"password\": \"kR4bPatt\"}", "tool_call_id": "call_1"}


def test_tool_render_trains_calls_and_answers_not_results(glaive_dir, tool_tok):
    [conv] = scan(glaive_dir).conversations
    pieces = segments(conv, tool_tok)
    assert "".join(t for t, _ in pieces) == (
        "<|im_start|>system\n" + TOOLS_TEXT + "<|im_end|>\n"
        "<|im_start|>user\nCan you make me a password of 8 letters?<|im_end|>\n"
        "<|im_start|>assistant\n" + CALL_TEXT + "<|im_end|>\n"
        "<|im_start|>tool\n{\"password\": \"kR4bPatt\"}<|im_end|>\n"
        "<|im_start|>assistant\nYour password is kR4bPatt.<|im_end|>\n")
    assert [t for t, trained in pieces if trained] == [CALL_TEXT + "<|im_end|>",
                                                       "Your password is kR4bPatt.<|im_end|>"]
    ids, labels = render(conv, tool_tok)
    trained = [tok for tok, label in zip(ids, labels) if label != IGNORE]
    assert tool_tok.decode(trained) == CALL_TEXT + "<|im_end|>" + "Your password is kR4bPatt.<|im_end|>"
    masked = tool_tok.decode([tok for tok, label in zip(ids, labels) if label == IGNORE])
    assert "kR4bPatt\"}" in masked and "8 letters?" in masked and "make_password" in masked  # results, user, tools


def test_openai_tool_render_keeps_system_and_masks(tmp_path, tool_tok):
    [conv] = scan(jsonl(tmp_path / "chat.jsonl", [OPENAI])).conversations
    pieces = segments(conv, tool_tok)
    assert pieces[0][0].startswith("<|im_start|>system\nYou are the Magic Conch.\n" + TOOLS_TEXT)
    assert [t for t, trained in pieces if trained] == [CALL_TEXT + "<|im_end|>",
                                                       "Your password is kR4bPatt.<|im_end|>"]


def test_template_without_tool_support_is_refused(glaive_dir, tool_tok, tiny_model, tmp_path):
    [conv] = scan(glaive_dir).conversations
    plain = copy.copy(tool_tok)
    plain.chat_template = (  # ChatML without tools: it would drop the definitions and render the call as ""
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    with pytest.raises(AirlockError) as exc:
        segments(conv, plain)
    assert "cannot render tool calls" in exc.value.message and "data.chat_template" in exc.value.fix
    # airlock data check says so as an error, not a note
    report = check(glaive_dir, tokenizer=plain)
    [error] = report.errors
    assert "cannot render tool calls" in error.message and "tool-capable" in error.fix
    assert check(glaive_dir, tokenizer=tool_tok).ok
    # preflight, before a job exists: the tiny model's own template (plain ChatML) knows no tools ...
    with pytest.raises(AirlockError) as exc:
        check_data(DataConfig(path=glaive_dir), model_dir=tiny_model)
    assert str(tiny_model) in exc.value.message and "tool-capable" in exc.value.fix
    # ... and a Jinja file that renders tools is the fix
    jinja = tmp_path / "tools.jinja"
    jinja.write_text(TOOL_TEMPLATE, encoding="utf-8")
    check_data(DataConfig(path=glaive_dir, chat_template=str(jinja)), model_dir=tiny_model)


def test_tool_turns_refused_for_dpo_and_kto(tmp_path):
    dpo = {"conversations": GLAIVE["conversations"][:3] + [{"from": "human", "value": "Thanks?"}],
           "chosen": {"from": "gpt", "value": "Welcome."}, "rejected": {"from": "gpt", "value": "No."}}
    [error] = errors(scan(jsonl(tmp_path / "dpo.jsonl", [dpo])))
    assert "'function_call' turn: a tool call" in error.message and "DPO" in error.message
    assert "stage: sft" in error.fix
    kto = {**OPENAI, "label": True}
    [error] = errors(scan(jsonl(tmp_path / "kto.jsonl", [kto]), stage="kto"))
    assert "tool_calls" in error.message and "KTO" in error.message and "stage: sft" in error.fix


@pytest.mark.parametrize("turns, says", [
    ([{"from": "human", "value": "Hi?"}, {"from": "function_call", "value": "not json"}],
     "is not valid JSON"),
    ([{"from": "human", "value": "Hi?"}, {"from": "function_call", "value": "{\"arguments\": {}}"}],
     "a tool call has no function name"),
    ([{"from": "human", "value": "Hi?"}, {"from": "function_call", "value": json.dumps(CALL)},
      {"from": "observation", "value": "42"}], "conversation ends with a tool's result"),
    ([{"from": "human", "value": "Hi?"}, {"from": "observation", "value": "42"}, {"from": "gpt", "value": "Ok."}],
     "a tool's result with no tool call before it"),
])
def test_bad_tool_turns_are_named(tmp_path, turns, says):
    found = errors(scan(jsonl(tmp_path / "d.jsonl", [{"conversations": turns}])))
    assert found and says in found[0].message and found[0].fix

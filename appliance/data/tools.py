"""Tool-calling records -> transformers' chat format: tool definitions, tool calls and tool results.

LLaMA-Factory's sharegpt tool data (its glaive_toolcall demo) has a `tools` column (a JSON string: a list of
function schemas) and two turn kinds besides human/gpt: `function_call` (value: JSON {"name", "arguments"}, or a
list of them for parallel calls) and `observation` (the tool's result). OpenAI's messages carry the same in
`tools`, an assistant message's `tool_calls` (content may be null) and `role: tool` messages.

Both become what `tokenizer.apply_chat_template(messages, tools=tools)` takes, so the model's own template
renders them as it was trained to:
    tools:      [{"type": "function", "function": {"name", "description", "parameters"}}, ...]
    a call:     {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                 "function": {"name": ..., "arguments": {...}}}]}
    a result:   {"role": "tool", "content": "..."}
Arguments are a mapping, not JSON text: templates write them with `| tojson`, which would quote a string twice.

Only SFT trains them: DPO and KTO hand the messages to trl, which renders without tool definitions, so those
stages keep refusing tool turns by name (TOOL_STAGE_FIX). `supports_tools()` tells a template that can render
tools from one that would silently drop them.
"""

import json

from .files import json_kind
from .problems import Problems

TOOL_STAGE_FIX = ("train tool-calling records with stage: sft (DPO and KTO render conversations without tool "
                  "definitions), or leave the tool-use records out of this dataset")

# Role names that mean a tool call or a tool's result when a dataset_info.json entry gives no tags.
CALL_ROLES = ("function_call",)
RESULT_ROLES = ("observation", "tool", "function")


def tool_kind(turn: dict, role, tags: dict | None) -> str | None:
    """"call" (a tool call), "result" (a tool's result) or None for a plain message."""
    calls = set(CALL_ROLES) | ({tags.get("function_tag", "function_call")} if tags else set())
    results = set(RESULT_ROLES) | ({tags.get("observation_tag", "observation")} if tags else set())
    if role in calls or turn.get("tool_calls") or turn.get("function_call"):
        return "call"
    if role in results:
        return "result"
    return None


def describe(turn: dict, role) -> str:
    """A tool-use turn in words, for the refusal of stages that cannot train it."""
    if turn.get("tool_calls"):
        return f"{role} message with tool_calls: an OpenAI tool call"
    if turn.get("function_call"):
        return f"{role} message with function_call: an OpenAI function call"
    if role in CALL_ROLES:
        return f"'{role}' turn: a tool call (function calling)"
    return f"'{role}' turn: a tool's result (function calling)"


def _json(value, problems: Problems, file, where, name, what: str):
    """`value` itself, or the JSON a string holds (CSV cells and LLaMA-Factory's columns hold JSON text)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        problems.error(file, f"'{name}' is not valid JSON ({exc.msg}): expected {what}", where, name,
                       fix=f"write {what} as JSON")
        return None


def parse_tools(value, problems: Problems, file, where, name) -> list[dict] | None:
    """The record's tool definitions in OpenAI's shape, or None when it has none (or after reporting why)."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "[]", "null")):
        return None
    value = _json(value, problems, file, where, name, "a list of function schemas")
    if value is None:
        return None
    if isinstance(value, dict):  # one schema written without the list around it
        value = [value]
    if not isinstance(value, list):
        problems.error(file, f"'{name}' is a {json_kind(value)}, expected a list of function schemas", where, name,
                       fix='write [{"name": "...", "description": "...", "parameters": {...}}, ...]')
        return None
    tools = []
    for i, tool in enumerate(value):
        # A bare schema ({"name", "parameters"}) is wrapped the way OpenAI and transformers' get_json_schema write it.
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else tool
        if not (isinstance(function, dict) and isinstance(function.get("name"), str) and function["name"]):
            problems.error(file, f"tool {i} has no name", where, f"{name}[{i}]",
                           fix='give each tool {"name": "...", "description": "...", "parameters": {...}}')
            return None
        tools.append({"type": "function", "function": function})
    return tools or None


def _call(raw, problems: Problems, file, where, name) -> dict | None:
    """One call ({"name", "arguments"} or OpenAI's {"type", "function": {...}, "id"?}) in transformers' shape."""
    if not isinstance(raw, dict):
        problems.error(file, f"a tool call is a {json_kind(raw)}, expected an object", where, name,
                       fix='write {"name": "...", "arguments": {...}}')
        return None
    function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
    fname = function.get("name")
    if not isinstance(fname, str) or not fname:
        problems.error(file, "a tool call has no function name", where, name,
                       fix='write {"name": "...", "arguments": {...}}')
        return None
    args = function.get("arguments", {})
    if args in (None, ""):
        args = {}
    args = _json(args, problems, file, where, name, "the call's arguments (an object)")
    if args is None:
        return None
    if not isinstance(args, dict):
        problems.error(file, f"the arguments of call '{fname}' are a {json_kind(args)}, expected an object", where,
                       name, fix='write "arguments": {"parameter": value, ...}')
        return None
    call = {"type": "function", "function": {"name": fname, "arguments": args}}
    if isinstance(raw.get("id"), str):
        call["id"] = raw["id"]  # some templates (Mistral) pair results with calls by id
    return call


def call_message(turn: dict, content_tag: str, content, problems: Problems, file, where, name) -> dict | None:
    """The assistant message of one tool-call turn: ShareGPT's function_call (the calls are its value) or an
    OpenAI message with tool_calls / function_call (its content, if any, is text said before the calls)."""
    if turn.get("tool_calls"):
        raws, field, text = turn["tool_calls"], f"{name}.tool_calls", content
    elif turn.get("function_call"):
        raws, field, text = [turn["function_call"]], f"{name}.function_call", content
    else:
        raws = _json(turn.get(content_tag), problems, file, where, f"{name}.{content_tag}",
                     'the call: {"name": "...", "arguments": {...}}')
        if raws is None:
            return None
        field, text = f"{name}.{content_tag}", ""
    raws = raws if isinstance(raws, list) else [raws]
    calls = [_call(raw, problems, file, where, field) for raw in raws]
    if not calls or any(c is None for c in calls):
        if not calls:
            problems.error(file, "a tool-call turn with no calls", where, field, fix="write the call or remove it")
        return None
    return {"role": "assistant", "content": text or "", "tool_calls": calls}


def result_message(turn: dict, content: str) -> dict:
    message = {"role": "tool", "content": content}
    for key in ("tool_call_id", "name"):  # templates that pair a result with its call read these
        if isinstance(turn.get(key), str):
            message[key] = turn[key]
    return message


def supports_tools(template: str | None) -> bool:
    """Whether a chat template renders tools at all: one that never mentions them drops calls and definitions."""
    return bool(template) and ("tools" in template or "tool_calls" in template)


def no_tool_support_fix() -> str:
    return ("use a tool-capable chat model (e.g. a Qwen2.5 or Llama 3.1 instruct model), or set data.chat_template "
            "to a .jinja file whose template renders `tools` and messages' `tool_calls`; or leave the tool-use "
            "records out")

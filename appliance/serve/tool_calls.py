"""Tool calls for `airlock serve`: OpenAI's `tools` rendered through the model's own chat template, and the calls
the model writes parsed back into `tool_calls`.

Every chat model family writes a call its own way (`<tool_call>{"name": .., "arguments": ..}</tool_call>`,
a bare `{"name": .., "parameters": ..}`, `[TOOL_CALLS] [{..}, {..}]`). Rather than a table of families, the format
is read off the template itself: a probe conversation holding one known call (and one holding two) is rendered,
and where the call's JSON lands says what comes before it, after it, between two calls, and what the name and
arguments are called (`ToolFormat.of`). The same template renders the site's tool-calling training data
(appliance.data.tools), so the server reads calls the way the tuned model learnt to write them.

    auto      the model answers or calls; a call is recognised by the format's opening text (or, for formats
              with none, by the whole answer being calls)
    required  a llama.cpp grammar makes the answer one call (or several, with parallel_tool_calls) to a declared
              tool, with arguments that keep to the tool's parameter schema
    {"type": "function", "function": {"name": X}}   the same, to X only
    none      the tools are shown to the model; nothing is parsed as a call

A template that never renders a call is refused by name (`unsupported`), never answered without the tools.
"""

import json
import re
import uuid
from dataclasses import dataclass

from ..data.tools import supports_tools

PROBE_NAME, PROBE_ARG, PROBE_VALUE = "airlock_probe_fn", "airlock_probe_arg", "airlock probe value"
PROBE_IDS = ("a1b2c3d4e", "f5g6h7i8j")  # nine letters and digits: what some templates (Mistral's) insist on
PROBE_TOOL = {"type": "function", "function": {"name": PROBE_NAME, "description": "probe",
                                               "parameters": {"type": "object", "properties": {
                                                   PROBE_ARG: {"type": "string"}}}}}
PLAIN_MARK = "airlock plain answer"


@dataclass(frozen=True)
class ToolFormat:
    """How a chat template writes an assistant's tool calls."""

    prefix: str  # before the first call's JSON, e.g. "<tool_call>\n"
    suffix: str  # after the last one, e.g. "\n</tool_call>"
    between: str | None  # between two calls' JSON; None: the template renders one call per turn
    name_key: str  # "name"
    args_key: str  # "arguments" or "parameters"
    args_as_text: bool  # the arguments are a JSON string inside the call's JSON

    @classmethod
    def of(cls, render) -> "ToolFormat | None":
        """Read the format off `render(messages, tools, add_generation_prompt) -> str`; None when the template
        renders no call (or not as JSON with the call's name and arguments)."""
        user = {"role": "user", "content": "probe"}
        try:
            head = render([user], [PROBE_TOOL], True)
            one = render([user, _probe_call(1)], [PROBE_TOOL], False)
            plain = render([user, {"role": "assistant", "content": PLAIN_MARK}], [PROBE_TOOL], False)
        except Exception:  # a template's raise_exception, or one that cannot take these messages
            return None
        body = one[_common_prefix(head, one):]
        found = _probe_json(body, 0)
        if found is None:
            return None
        start, end, name_key, args_key, as_text = found
        turn_end = plain[plain.index(PLAIN_MARK) + len(PLAIN_MARK):] if PLAIN_MARK in plain else ""
        rest = body[end:]
        suffix = rest[:len(rest) - len(turn_end)] if turn_end and rest.endswith(turn_end) else rest.rstrip()
        return cls(body[:start], suffix, _between(render, user, head), name_key, args_key, as_text)

    @property
    def marker(self) -> str:
        """The text that opens a call: the prefix's last line (Qwen3's prefix starts with an empty think block a
        thinking answer fills); empty for formats that write the bare JSON."""
        lines = self.prefix.strip().splitlines()
        return lines[-1].strip() if lines else ""


def _probe_call(n: int) -> dict:
    calls = [{"id": PROBE_IDS[i], "type": "function",
              "function": {"name": PROBE_NAME, "arguments": {PROBE_ARG: PROBE_VALUE}}} for i in range(n)]
    return {"role": "assistant", "content": "", "tool_calls": calls}


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _probe_json(text: str, after: int):
    """(start, end, name key, arguments key, arguments as text) of the first probe call's JSON at or after
    `after`; None when there is none."""
    at = text.find(PROBE_NAME, after)
    if at < 0:
        return None
    decoder = json.JSONDecoder()
    for start in (m.start() for m in reversed(list(re.finditer(r"\{", text[:at])))):
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict) or end <= at:
            continue
        name_key = next((k for k, v in value.items() if v == PROBE_NAME), None)
        for key, args in value.items():
            as_text = isinstance(args, str)
            if as_text:
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    continue
            if name_key and args == {PROBE_ARG: PROBE_VALUE}:
                return start, end, name_key, key, as_text
        return None
    return None


def _between(render, user: dict, head: str) -> str | None:
    try:
        two = render([user, _probe_call(2)], [PROBE_TOOL], False)
    except Exception:
        return None
    body = two[_common_prefix(head, two):]
    first = _probe_json(body, 0)
    second = first and _probe_json(body, first[1])
    return body[first[1]:second[0]] if second else None


def unsupported(model: str, template: str | None) -> str:
    why = "has no chat template" if not template else (
        "never mentions tools" if not supports_tools(template) else "does not write a call as JSON")
    return (f"{model} cannot take tools: its chat template {why}; serve a tool-capable model (e.g. a Qwen2.5 or "
            "Llama 3.1 instruct export)")


# ------------------------------------------------------------------ the request
@dataclass
class ToolRequest:
    tools: list[dict]  # OpenAI's [{"type": "function", "function": {...}}]
    choice: str  # auto | none | required | the name of the one function to call
    parallel: bool = True

    @property
    def parses(self) -> bool:
        return self.choice != "none"

    @property
    def forced(self) -> bool:
        return self.choice not in ("auto", "none")


def tool_request(body: dict, fail) -> ToolRequest | None:
    """The request's tools, tool_choice and parallel_tool_calls checked; `fail(message, field)` raises."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        fail("'parallel_tool_calls' must be true or false", "parallel_tool_calls")
    if not tools:
        if choice not in (None, "none"):
            fail("'tool_choice' needs 'tools'", "tool_choice")
        return None
    if not isinstance(tools, list):
        fail("'tools' must be a list of {\"type\": \"function\", \"function\": {...}}", "tools")
    names = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            fail(f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": ..., \"parameters\": "
                 "{...}}}", f"tools[{i}]")
        if extra := set(function) - {"name", "description", "parameters", "strict"}:
            fail(f"tools[{i}].function: '{sorted(extra)[0]}' is not supported", f"tools[{i}].function")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            fail(f"tools[{i}].function.parameters must be a JSON schema object", f"tools[{i}].function.parameters")
        names.append(function["name"])
    if len(set(names)) != len(names):
        fail("two tools have the same name", "tools")
    if choice is None:
        choice = "auto"
    elif isinstance(choice, dict):
        named = choice.get("function") if choice.get("type") == "function" else None
        if not isinstance(named, dict) or named.get("name") not in names:
            fail(f"'tool_choice' names no declared tool (declared: {', '.join(names)})", "tool_choice")
        choice = named["name"]
    elif choice not in ("auto", "none", "required"):
        fail("'tool_choice' must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}",
             "tool_choice")
    return ToolRequest(tools, choice, True if parallel is None else parallel)


def message_calls(calls, i: int, fail) -> list[dict]:
    """An assistant message's OpenAI tool_calls in the shape chat templates read (arguments as a mapping)."""
    if not isinstance(calls, list) or not calls:
        fail(f"messages[{i}].tool_calls must be a non-empty list", f"messages[{i}].tool_calls")
    out = []
    for j, call in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            fail(f"{where} must be {{\"id\", \"type\": \"function\", \"function\": {{\"name\", \"arguments\"}}}}",
                 where)
        try:
            args = json.loads(function.get("arguments") or "{}")
        except (TypeError, json.JSONDecodeError):
            fail(f"{where}.function.arguments must be a JSON object in a string", f"{where}.function.arguments")
        if not isinstance(args, dict):
            fail(f"{where}.function.arguments must be a JSON object", f"{where}.function.arguments")
        entry = {"type": "function", "function": {"name": function["name"], "arguments": args}}
        if isinstance(call.get("id"), str):
            entry["id"] = call["id"]
        out.append(entry)
    return out


# ------------------------------------------------------------------ forced calls: a grammar
def grammar(fmt: ToolFormat, request: ToolRequest) -> str | None:
    """GBNF for `required` or a named function: the format's opening text, one call (or several when both the
    request and the template allow), its closing text. None for auto and none."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from .structured import Refused, check_schema, loosened

    if not request.forced:
        return None
    options = []
    for tool in request.tools:
        function = tool["function"]
        if request.choice not in ("required", function["name"]):
            continue
        params = function.get("parameters") or {"type": "object"}
        if function.get("strict"):
            check_schema(params, "parameters", "tools", f"tools: {function['name']} (strict)")
        else:  # not strict, as at OpenAI: what the grammar cannot enforce is left to the model
            params = loosened(params)
        options.append({"type": "object", "properties": {
            fmt.name_key: {"const": function["name"]},
            fmt.args_key: {"type": "string"} if fmt.args_as_text else params},
            "required": [fmt.name_key, fmt.args_key], "additionalProperties": False})
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    try:
        rules = json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, KeyError, AssertionError, RecursionError) as exc:
        raise Refused(f"tools: the parameters cannot be turned into a grammar ({exc})", where="tools") from None
    rules = re.sub(r"(?m)^root ::=", "call ::=", rules)
    more = f" ({_literal(fmt.between)} call)*" if request.parallel and fmt.between is not None else ""
    return f"root ::= {_literal(fmt.prefix)} call{more} {_literal(fmt.suffix)}\n{rules}"


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") \
        .replace("\t", "\\t")
    return f'"{escaped}"' if text else '""'


# ------------------------------------------------------------------ the answer
def parse(text: str, fmt: ToolFormat) -> tuple[str, list[dict]]:
    """(content, calls in OpenAI's shape) of an answer. Text that does not parse as calls stays content: an
    answer is never lost to the parser."""
    at = text.find(fmt.marker) if fmt.marker else (0 if text.lstrip()[:1] in ("{", "[") else -1)
    if at < 0:
        return text, []
    calls = _calls(text[at:], fmt)
    if not calls:
        return text, []
    return text[:at].rstrip(), calls


def _calls(text: str, fmt: ToolFormat) -> list[dict] | None:
    decoder, pos, calls = json.JSONDecoder(), 0, []
    markers = sorted({m for m in (fmt.marker, fmt.suffix.strip(), (fmt.between or "").strip(), ",", "[", "]")
                      if m}, key=len, reverse=True)
    while True:
        while True:  # the text around and between calls
            stripped = len(text) - len(text[pos:].lstrip())
            pos = stripped
            marker = next((m for m in markers if text.startswith(m, pos)), None)
            if not marker:
                break
            pos += len(marker)
        if pos >= len(text):
            return calls
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
        call = _openai_call(value, fmt)
        if call is None:
            return None
        calls.append(call)


def _openai_call(value, fmt: ToolFormat) -> dict | None:
    if not isinstance(value, dict) or not isinstance(value.get(fmt.name_key), str):
        return None
    args = value.get(fmt.args_key, {})
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": value[fmt.name_key], "arguments": json.dumps(args, ensure_ascii=False)}}


class CallStream:
    """A streamed answer split into content to send at once and text held back because it opens a call (or,
    for formats without an opening text, might be one). `finish()` hands back what was held: calls, or content."""

    def __init__(self, fmt: ToolFormat):
        self.fmt, self.held, self.holding, self.plain = fmt, "", False, False

    def feed(self, text: str) -> str:
        self.held += text
        if self.holding:
            return ""
        if self.plain:
            return self._release(len(self.held))
        marker = self.fmt.marker
        if not marker:  # a bare-JSON format: the answer is a call or it is not, from its first character on
            start = self.held.lstrip()[:1]
            if not start:
                return ""
            self.holding = start in ("{", "[")
            self.plain = not self.holding
            return "" if self.holding else self._release(len(self.held))
        at = self.held.find(marker)
        if at >= 0:
            self.holding = True
            return self._release(at)
        keep = max((k for k in range(1, len(marker)) if self.held.endswith(marker[:k])), default=0)
        return self._release(len(self.held) - keep)

    def _release(self, n: int) -> str:
        out, self.held = self.held[:n], self.held[n:]
        return out

    def finish(self) -> tuple[str, list[dict]]:
        """(content not yet sent, calls)."""
        held, self.held = self.held, ""
        if not self.holding:
            return held, []
        calls = _calls(held, self.fmt)
        return (held, []) if not calls else ("", calls)

"""Read a chat template's layout off its own renderings, and write it as an Ollama Go template.

A Jinja chat template can do anything, but what it prints for a conversation is, for the templates models ship,
the messages' contents with fixed text between them: text that depends on the kind of message before and after
(start of the prompt, system, user, assistant, assistant calling tools, tool result, generation prompt). So the
template is rendered on probe conversations whose contents are unique markers, and the text between the markers
is read off: that is the layout, including what no translation by hand catches (a default system prompt, a
dated preamble, a BOS written by the template, tool-definition blocks). Where the same pair of kinds gives
different text in two probes, the layout depends on more than neighbours and is refused (tools alone are dropped
when only they fail). The Go template written from the layout is then checked against the chat template on
other conversations by appliance.export.modelfile.check: nothing here is trusted unchecked.

Tool definitions and call arguments are JSON: Ollama writes them with its `json` function (compact), transformers'
`tojson` with spaces, so those spans can only ever be equal as JSON, and the check compares them that way.
"""

import json
from dataclasses import dataclass, field

from ..errors import AirlockError
from .gotemplate import literal

START, END = "", "end"
JSON_STYLES = ({}, {"indent": 4}, {"indent": 2}, {"separators": (",", ":")})


class NotReproducible(AirlockError):
    """The chat template's output cannot be written as text between messages (see the module docstring)."""

    def __init__(self, message: str):
        super().__init__(message, where="the model's chat template (tokenizer_config.json / chat_template.jinja)",
                         fix="the Modelfile is written without TEMPLATE: give Ollama a template by hand, or use "
                             "llama.cpp, which applies the chat template stored in the GGUF")


@dataclass(frozen=True)
class ToolList:
    """Where the tool definitions go inside a piece of fixed text: each as JSON, `sep` between two."""

    sep: str


@dataclass
class Layout:
    turns: dict                         # (kind before, kind) -> [str | ToolList]: the text between two messages
    tool_turns: dict | None             # the same when tools are offered; None: tools are not rendered
    call: dict = field(default_factory=dict)  # open / mid / sep / text_sep: the text around tool calls
    default_system: str | None = None   # the system prompt the template uses when a conversation has none
    stops: list = field(default_factory=list)
    runtime_bos: str | None = None      # BOS that llama.cpp adds itself, so the Go template leaves it out
    tools_note: str = ""


def _tool(name: str) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": f"ZQD{name[-1]}",
        "parameters": {"type": "object", "properties": {"zq_arg": {"type": "string", "description": "ZQP"}},
                       "required": ["zq_arg"]}}}


PROBE_TOOLS = [_tool("zq_fn_a"), _tool("zq_fn_b")]
_CALL_A, _CALL_B = ("zq_fn_a", {"zq_arg": "ZQVA"}), ("zq_fn_b", {"zq_arg": "ZQVB"})
_BASE = ([("user", "ZQU1")],
         [("system", "ZQS1"), ("user", "ZQU1"), ("assistant", "ZQA1"), ("user", "ZQU2")],
         [("user", "ZQU1"), ("assistant", "ZQA1"), ("user", "ZQU2"), ("assistant", "ZQA2"), ("user", "ZQU3")])
_WITH_CALLS = ([("user", "ZQU1"), ("tool_calls", [_CALL_A, _CALL_B]), ("tool", "ZQT1"), ("tool", "ZQT2"),
                ("assistant", "ZQA1"), ("user", "ZQU2")],
               [("system", "ZQS1"), ("user", "ZQU1"), ("tool_calls", [_CALL_A]), ("tool", "ZQT1"),
                ("tool_calls", [_CALL_B]), ("tool", "ZQT2")])
_CALL_WITH_TEXT = [("user", "ZQU1"), ("tool_calls", [_CALL_A], "ZQC1"), ("tool", "ZQT1")]


def messages_of(items) -> list[dict]:
    """Probe items [(kind, payload[, text])] as the OpenAI-style messages transformers and Ollama both take."""
    messages = []
    for kind, payload, *text in items:
        if kind == "tool_calls":
            messages.append({"role": "assistant", "content": text[0] if text else "", "tool_calls": [
                {"type": "function", "function": {"name": name, "arguments": args}} for name, args in payload]})
        else:
            messages.append({"role": kind, "content": payload})
    return messages


def derive(tokenizer, runtime_bos: str | None = None) -> Layout:
    """The layout of `tokenizer`'s chat template. `runtime_bos`: the BOS text llama.cpp prepends on its own."""
    render = _renderer(tokenizer)
    turns, call = {}, {}
    for items in _BASE:
        _read(render(items), items, turns, call)
    tool_turns, note = _tool_turns(render, turns, call)
    if tool_turns is None:  # all or nothing: Ollama offers tools only to a template that shows them
        turns = {k: v for k, v in turns.items() if not {"tool", "tool_calls"} & set(k)}
        call = {}
    else:
        turns = {**tool_turns.pop("plain"), **turns}
        call = _call_opening(turns, tool_turns, call)
        call = _call_with_text(render, tool_turns, call)
    offered = {k: _cut_tools(v) for k, v in tool_turns.items()} if tool_turns is not None else None
    layout = Layout(turns={k: [v] for k, v in turns.items()}, tool_turns=offered, call=call,
                    default_system=_default_system(turns), stops=_stops(tokenizer, turns), runtime_bos=runtime_bos,
                    tools_note=note)
    if runtime_bos:  # llama.cpp adds BOS itself (the GGUF says so): the prompt text must not carry a second one
        for table in (layout.turns, layout.tool_turns or {}):
            for key, parts in table.items():
                if key[0] == START and isinstance(parts[0], str) and parts[0].startswith(runtime_bos):
                    table[key] = [parts[0][len(runtime_bos):], *parts[1:]]
    return layout


def _renderer(tokenizer):
    def render(items, tools=None):
        try:
            return tokenizer.apply_chat_template(messages_of(items), tools=tools, tokenize=False,
                                                 add_generation_prompt=True)
        except Exception as exc:  # the template refuses this shape of conversation (raise_exception)
            raise NotReproducible(f"the chat template refuses a probe conversation: {exc}") from None
    return render


def _read(text: str, items, turns: dict, call: dict) -> None:
    """Cut one rendering at the probe markers; record the text between them (it must agree with earlier probes)."""
    pos, before = 0, START
    for kind, payload, *content in items:
        if kind != "tool_calls":
            at = _find(text, payload, pos)
            _put(turns, (before, kind), text[pos:at])
            pos = at + len(payload)
            before = kind
            continue
        if content:  # assistant text before the calls: recorded as an assistant turn, then what separates them
            at = _find(text, content[0], pos)
            _put(turns, (before, "assistant"), text[pos:at])
            pos = at + len(content[0])
        for j, (name, args) in enumerate(payload):
            at = text.find(name, pos)
            if at < 0:
                raise NotReproducible("the chat template does not show tool calls")
            if j:
                _put(call, "sep", text[pos:at])
            elif content:
                _put(call, "after_text", text[pos:at])
            else:
                _put(turns, (before, kind), text[pos:at])
            pos = at + len(name)
            at, shown = _find_json(text, args, pos)
            _put(call, "mid", text[pos:at])
            pos = at + len(shown)
        before = kind
    _put(turns, (before, END), text[pos:])


def _find(text: str, marker: str, pos: int) -> int:
    at = text.find(marker, pos)
    if at < 0:
        raise NotReproducible(f"the chat template does not show {marker!r} where the layout expects it")
    return at


def _find_json(text: str, value, pos: int) -> tuple[int, str]:
    shown = {json.dumps(value, ensure_ascii=False, **style) for style in JSON_STYLES}
    found = sorted((text.find(s, pos), s) for s in shown if text.find(s, pos) >= 0)
    if not found:
        raise NotReproducible("the chat template does not show tool-call arguments as JSON")
    return found[0]


def _put(table: dict, key, value) -> None:
    if key in table and table[key] != value:
        raise NotReproducible(f"the text at {key} differs between conversations: {table[key]!r} vs {value!r}")
    table[key] = value


def _tool_turns(render, turns: dict, call: dict) -> tuple[dict | None, str]:
    """Tool turns without tools offered (under "plain") and the whole layout with tools offered; or None + why."""
    plain, offered, offered_call = dict(turns), {}, {}
    try:
        for items in _WITH_CALLS:
            _read(render(items), items, plain, call)
        for items in (*_BASE, *_WITH_CALLS):
            _read(render(items, PROBE_TOOLS), items, offered, offered_call)
    except NotReproducible as exc:
        return None, f"not rendered: {exc.message}"
    if offered_call != call:
        return None, "not rendered: tool calls look different when tools are offered"
    if not any(len(_cut_tools(text)) > 1 for text in offered.values()):
        return None, "not rendered: the chat template does not show the tool definitions"
    return {"plain": plain, **offered}, "rendered (definitions and arguments are JSON, written compactly by Ollama)"


def _call_opening(turns: dict, offered: dict, call: dict) -> dict:
    """Split what opens tool calls (Qwen's `<tool_call>`) off the opening of an assistant turn, where every turn
    into tool calls allows it: Ollama reads the tag it parses tool calls by from the text that starts the
    `{{ if .ToolCalls }}` block of a template."""
    openings = set()
    for table in (turns, offered):
        for (before, kind), text in table.items():
            if kind == "tool_calls":
                head = table.get((before, "assistant"))
                openings.add(text[len(head):] if head is not None and text.startswith(head) else None)
    if len(openings) != 1 or None in openings:
        return call
    for table in (turns, offered):
        for (before, kind) in [k for k in table if k[1] == "tool_calls"]:
            table[(before, kind)] = table[(before, "assistant")]
    return {**call, "open": openings.pop()}


def _call_with_text(render, offered: dict, call: dict) -> dict:
    """Whether assistant text next to tool calls renders as text, separator, calls (then supported)."""
    if "open" not in call:
        return call
    seen, seen_call = {k: v for k, v in offered.items() if k[1] != "tool_calls"}, dict(call)
    try:
        _read(render(_CALL_WITH_TEXT, PROBE_TOOLS), _CALL_WITH_TEXT, seen, seen_call)
    except NotReproducible:
        return call
    after = seen_call.get("after_text", "")
    if not after.endswith(call["open"]):
        return call
    return {**call, "text_sep": after[:len(after) - len(call["open"])]}


def _cut_tools(text: str) -> list:
    first, second = PROBE_TOOLS
    for style in JSON_STYLES:
        a, b = (json.dumps(t, ensure_ascii=False, **style) for t in (first, second))
        start = text.find(a)
        if start >= 0 and (end := text.find(b, start + len(a))) >= 0:
            return [text[:start], ToolList(text[start + len(a):end]), text[end + len(b):]]
    return [text]


def _default_system(turns: dict) -> str | None:
    """The system prompt a conversation without one gets, if the template adds one (SmolLM2's, Qwen2.5's)."""
    opening, closing, alone = (turns.get(k) for k in ((START, "system"), ("system", "user"), (START, "user")))
    if None in (opening, closing, alone) or len(alone) < len(opening) + len(closing):
        return None
    if alone.startswith(opening) and alone.endswith(closing):
        return alone[len(opening):len(alone) - len(closing)]
    return None


def _stops(tokenizer, turns: dict) -> list[str]:
    """The special tokens that end an assistant turn and open the next: where generation must stop."""
    text = turns.get(("assistant", "user"), "")
    specials = {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    specials |= set(getattr(tokenizer, "all_special_tokens", []))
    found = sorted((text.find(s), -len(s), s) for s in specials if len(s) > 1 and s in text)
    stops, end = [], -1
    for at, _, token in found:
        if at >= end:
            stops.append(token)
            end = at + len(token)
    eos = getattr(tokenizer, "eos_token", None)
    return stops or ([eos] if eos else [])


def go_template(layout: Layout) -> str:
    """The Go template of `layout`: for each message the text that follows the kind before it, then its content;
    after the last, the generation prompt. Kinds are roles, except an assistant message with tool calls."""
    keys = sorted(set(layout.turns) | set(layout.tool_turns or {}))
    befores = sorted({before for before, kind in keys if kind != END})
    lines = ['{{- $prev := "" }}', "{{- range .Messages }}",
             '{{- $kind := .Role }}{{ with .ToolCalls }}{{ $kind = "tool_calls" }}{{ end }}']
    for n, before in enumerate(befores):
        inner = _choose(layout, "$kind", [(key[1], key) for key in keys if key[0] == before and key[1] != END])
        lines.append(f'{{{{- {"else if" if n else "if"} eq $prev "{before}" }}}}{inner}')
    if befores:
        lines.append("{{- end }}")
    lines += ["{{- " + _content(layout)[3:], "{{- $prev = $kind }}", "{{- end }}"]
    ends = _choose(layout, "$prev", [(key[0], key) for key in keys if key[1] == END])
    if ends:
        lines.append("{{- " + ends[3:])
    return "\n".join(lines)


def _content(layout: Layout) -> str:
    """A message's content; for tool calls, each call. Ollama takes the tool-call tag it parses answers for from
    the first text inside the first `{{ if ... .ToolCalls ... }}`, so that block starts with the calls' opening."""
    if layout.tool_turns is None:
        return "{{ .Content }}"
    c = layout.call
    calls = (f'{literal(c.get("open", ""))}{{{{ range $i, $c := .ToolCalls }}}}'
             f'{{{{ if $i }}}}{literal(c.get("sep", ""))}{{{{ end }}}}'
             f'{{{{ $c.Function.Name }}}}{literal(c["mid"])}{{{{ json $c.Function.Arguments }}}}{{{{ end }}}}')
    if "text_sep" not in c:
        return f"{{{{ if .ToolCalls }}}}{calls}{{{{ else }}}}{{{{ .Content }}}}{{{{ end }}}}"
    return (f"{{{{ if and .ToolCalls (not .Content) }}}}{calls}{{{{ else if .ToolCalls }}}}{{{{ .Content }}}}"
            f'{literal(c["text_sep"])}{calls}{{{{ else }}}}{{{{ .Content }}}}{{{{ end }}}}')


def _choose(layout: Layout, variable: str, cases) -> str:
    """`{{ if eq VAR "a" }}text{{ else if eq VAR "b" }}text{{ end }}`, leaving out empty texts; "" if none."""
    out = []
    for value, key in cases:
        text = _turn(layout, key)
        if text:
            out.append(f'{{{{ {"else if" if out else "if"} eq {variable} "{value}" }}}}{text}')
    return "".join(out) + "{{ end }}" if out else ""


def _turn(layout: Layout, key) -> str:
    plain, offered = layout.turns.get(key), (layout.tool_turns or {}).get(key)
    if layout.tool_turns is None or offered == plain:
        return _text(plain)
    if not (_text(offered) or _text(plain)):
        return ""
    return f"{{{{ if $.Tools }}}}{_text(offered)}{{{{ else }}}}{_text(plain)}{{{{ end }}}}"


def _text(parts) -> str:
    out = []
    for part in parts or []:
        if isinstance(part, ToolList):
            out.append(f"{{{{ range $i, $t := $.Tools }}}}{{{{ if $i }}}}{literal(part.sep)}{{{{ end }}}}"
                       "{{ json $t }}{{ end }}")
        elif part:
            out.append(literal(part))
    return "".join(out)

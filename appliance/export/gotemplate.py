"""Go text/template for Ollama Modelfiles: write one safely, and render one in Python exactly as Go would.

Ollama renders a model's prompt with Go's text/template over the data it builds from a chat request (`view()`
below does the same: the Modelfile's SYSTEM is put first when the conversation has no system message, consecutive
messages of one role are merged, and `.Messages`, `.Tools`, `.System`, `.Prompt`, `.Response` are filled in).
`render()` is a small interpreter of the part of the language `appliance.export.chatlayout` writes (text, `if` /
`else if` / `else`, `range` with or without `$i, $x :=`, `with`, variable declaration and assignment, fields,
string literals, `eq ne and or not len json`, `{{-`/`-}}` trimming), so every export can check its Modelfile
without Go. tests/test_export_modelfile.py holds it to the real text/template.
"""

import json
import re
import unicodedata

from ..errors import AirlockError


def go_json(value) -> str:
    """What Ollama's template function `json` writes: Go's json.Marshal (compact, map keys sorted, <>& escaped)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def literal(text: str) -> str:
    """`text` as template source. Plain where that is safe; otherwise a Go string literal action, because `{{`
    (or a final `{` before the next action) would open an action, `\"\"\"` would end the Modelfile's TEMPLATE,
    and Ollama's Modelfile parser drops characters Go does not count as printable (only newline, tab and space
    survive among the others)."""
    if "{{" not in text and not text.endswith("{") and '"""' not in text and all(_survives(c) for c in text):
        return text
    return "{{ " + _go_quote(text) + " }}"


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _go_quote(text: str) -> str:
    """A Go interpreted string literal; an escaped quote never makes the \"\"\" that would end the TEMPLATE."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == " " or (char.isascii() and char.isprintable()) or (not char.isascii() and _survives(char)):
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _go_unquote(literal_text: str) -> str:
    body, out, i = literal_text[1:-1], [], 0
    while i < len(body):
        if body[i] != "\\":
            out.append(body[i])
            i += 1
            continue
        code = body[i + 1]
        if code in "uU":
            width = 4 if code == "u" else 8
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        else:
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(code, code))
            i += 2
    return "".join(out)


def _survives(char: str) -> bool:
    return char in "\n\t\r " or unicodedata.category(char)[0] in "LMNPS"


def view(messages: list[dict], tools: list | None = None, system: str | None = None) -> dict:
    """The data Ollama executes a TEMPLATE with for a chat request (server ChatHandler + template.Execute).

    `messages` are OpenAI-style dicts (role, content, tool_calls with function name/arguments); `system` is the
    Modelfile's SYSTEM, which Ollama puts first unless the conversation starts with a system message.
    """
    msgs = list(messages)
    if system and (not msgs or msgs[0]["role"] != "system"):
        msgs.insert(0, {"role": "system", "content": system})
    collated = []
    for msg in msgs:
        if collated and collated[-1]["Role"] == msg["role"] and msg["role"] != "tool":
            collated[-1]["Content"] += "\n\n" + (msg.get("content") or "")
            continue
        calls = [{"Function": {"Name": c["function"]["name"], "Arguments": c["function"]["arguments"]}}
                 for c in msg.get("tool_calls") or []]
        collated.append({"Role": msg["role"], "Content": msg.get("content") or "", "ToolCalls": calls})
    return {"System": "\n\n".join(m["content"] for m in msgs if m["role"] == "system"), "Messages": collated,
            "Tools": list(tools or []), "Prompt": "", "Response": "", "Think": False, "IsThinkSet": False}


# ---- the interpreter --------------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(\(|\)|,|"(?:[^"\\]|\\.)*"|:=|=|\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*|(?:\.[A-Za-z0-9_]+)+|\.|'
                    r'[A-Za-z_][A-Za-z0-9_]*|-?\d+)')


def _lex(source: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", s)], with Go's trim markers applied to the neighbouring text."""
    items, pos = [], 0
    while (start := source.find("{{", pos)) >= 0:
        items.append(["text", source[pos:start]])
        i, quote = start + 2, False
        while i < len(source) and (quote or not source.startswith("}}", i)):
            if source[i] == "\\" and quote:
                i += 1
            elif source[i] == '"':
                quote = not quote
            i += 1
        if i >= len(source):
            raise _error("an action is not closed with }}")
        body = source[start + 2:i]
        if body.startswith("- "):
            items[-1][1] = items[-1][1].rstrip(" \t\r\n")
            body = body[2:]
        trim_next = body.endswith(" -")
        items.append(["action", body[:-2] if trim_next else body])
        pos = i + 2
        if trim_next:
            pos += len(source[pos:]) - len(source[pos:].lstrip(" \t\r\n"))
    items.append(["text", source[pos:]])
    return [(kind, text) for kind, text in items if kind == "action" or text]


def _parse(items, i=0, stop=("end",)):
    """A node list up to one of the `stop` keywords; returns (nodes, index of the stop action, its words)."""
    nodes = []
    while i < len(items):
        kind, text = items[i]
        if kind == "text":
            nodes.append(("text", text))
            i += 1
            continue
        words = _words(text)
        head = words[0] if words else ""
        if head in ("end", "else"):
            if head not in stop:
                raise _error(f"unexpected {{{{ {text.strip()} }}}}")
            return nodes, i, words
        if head in ("if", "with", "range"):
            node, i = _parse_block(items, i, head, words[1:])
            nodes.append(node)
            continue
        nodes.append(("action", words))
        i += 1
    if stop != ("eof",):
        raise _error("a block is not closed with {{ end }}")
    return nodes, i, []


def _parse_block(items, i, head, words):
    branches, otherwise = [], None
    while True:
        body, i, stop_words = _parse(items, i + 1, ("end", "else"))
        branches.append((words, body))
        if stop_words[0] == "end":
            return (head, branches, otherwise), i + 1
        if len(stop_words) > 1 and stop_words[1] == head == "if":
            words = stop_words[2:]
            continue
        otherwise, i, _ = _parse(items, i + 1, ("end",))
        return (head, branches, otherwise), i + 1


def _words(action: str) -> list[str]:
    words, pos = [], 0
    action = action.strip()
    while pos < len(action):
        match = _TOKEN.match(action, pos)
        if not match:
            raise _error(f"cannot read {action[pos:]!r}")
        words.append(match.group(1))
        pos = match.end()
    return words


def render(source: str, data: dict) -> str:
    """Execute Go template `source` with `data` (as built by view()); raises AirlockError on what it cannot read."""
    nodes, _, _ = _parse(_lex(source), 0, ("eof",))
    out: list[str] = []
    _run(nodes, data, [{"$": data}], out)
    return "".join(out)


def _run(nodes, dot, scopes, out):
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "action":
            words = node[1]
            if len(words) > 2 and words[1] in (":=", "="):
                value = _eval(words[2:], dot, scopes)
                if words[1] == ":=":
                    scopes[-1][words[0]] = value
                else:
                    next(s for s in reversed(scopes) if words[0] in s)[words[0]] = value
            else:
                out.append(_text(_eval(words, dot, scopes)))
        elif kind == "range":
            (words, body), = node[1]
            split = words.index(":=") + 1 if ":=" in words else 0
            names = [w for w in words[:split - 1] if w != ","]
            items = _eval(words[split:], dot, scopes) or []
            for index, item in enumerate(items):
                scope = dict(zip(names[::-1], (item, index))) if names else {}
                _run(body, item, scopes + [scope], out)
            if not items and node[2] is not None:
                _run(node[2], dot, scopes + [{}], out)
        else:  # if / with
            for words, body in node[1]:
                value = _eval(words, dot, scopes)
                if bool(value):
                    _run(body, value if kind == "with" else dot, scopes + [{}], out)
                    break
            else:
                if node[2] is not None:
                    _run(node[2], dot, scopes + [{}], out)


def _eval(words, dot, scopes):
    args, pos = [], 0
    while pos < len(words):
        word = words[pos]
        if word == "(":
            depth, end = 1, pos + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(words[end], 0)
                end += 1
            args.append(_eval(words[pos + 1:end - 1], dot, scopes))
            pos = end
            continue
        args.append(_operand(word, dot, scopes))
        pos += 1
    if words and words[0] in _FUNCS:
        return _FUNCS[words[0]](*args[1:])
    if len(args) != 1:
        raise _error(f"cannot evaluate {' '.join(words)!r}")
    return args[0]


def _operand(word, dot, scopes):
    if word.startswith('"'):
        return _go_unquote(word)
    if word.lstrip("-").isdigit():
        return int(word)
    if word in _FUNCS:
        return word
    if word == ".":
        return dot
    if word.startswith("$"):
        name, _, path = word.partition(".")
        scope = next((s for s in reversed(scopes) if name in s), None)
        if scope is None:
            raise _error(f"undefined variable {name}")
        value = scope[name]
        return _fields(value, path.split(".")) if path else value
    return _fields(dot, word[1:].split("."))


def _fields(value, names):
    for name in names:
        if not isinstance(value, dict) or name not in value:
            raise _error(f"no field {name!r}")
        value = value[name]
    return value


def _text(value) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _and(*values):
    for value in values:
        if not bool(value):
            return value
    return values[-1]


def _or(*values):
    for value in values:
        if bool(value):
            return value
    return values[-1]


_FUNCS = {"eq": lambda a, *bs: any(a == b for b in bs), "ne": lambda a, b: a != b, "and": _and, "or": _or,
          "not": lambda a: not bool(a), "len": len, "json": go_json}


def _error(message: str) -> AirlockError:
    return AirlockError(f"Go template: {message}", where="Modelfile TEMPLATE",
                        fix="this is a bug in Airlock's Modelfile writer: report it with the model's chat template")

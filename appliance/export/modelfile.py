"""The Ollama Modelfile written beside each GGUF (FROM, TEMPLATE, PARAMETER stop, SYSTEM), and its check.

Ollama renders prompts with a Go template, not the Jinja chat template the model was trained with. The TEMPLATE is
therefore derived from the model's own chat template (appliance.export.chatlayout), and so are the stop strings
and the SYSTEM line: when the chat template puts a default system prompt into conversations that have none
(SmolLM2's "You are a helpful AI assistant named SmolLM ...", Qwen2.5's "You are Qwen ..."), SYSTEM says it, so
Ollama prompts the model the way training did. `airlock export gguf --system TEXT` replaces it.

check() is the proof, run by every export and recorded in fidelity.json as "Modelfile prompt = chat template
prompt": it reads the written Modelfile the way Ollama's parser does, renders conversations (no system message, a
system message, multi-turn, tool turns where the Modelfile has them) the way Ollama does, with appliance.export.
gotemplate, and compares with transformers' apply_chat_template, character for character. Tool definitions and
call arguments are compared as JSON (Ollama writes JSON compactly, transformers with spaces).
"""

import json
from pathlib import Path

from ..errors import AirlockError
from . import chatlayout, gotemplate

CHECK = "Modelfile prompt = chat template prompt"

_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"]}}}
_TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a time zone.",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "description": "IANA zone"}},
                   "required": ["zone"]}}}
_SYSTEM = 'You are the Magic Conch.\nAnswer in "one" line.'


def _calls(*calls) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": name, "arguments": args}} for name, args in calls]}


# Conversations the check renders both ways: (name, messages, tools). Contents differ from the probes' markers and
# carry quotes, newlines and non-ASCII text, so quoting mistakes show.
CASES = [
    ("no system message", [{"role": "user", "content": "Who are you?"}], None),
    ("system message", [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "Who are you?"}], None),
    ("multi-turn", [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "Hi!"},
                    {"role": "assistant", "content": "Hello. Ask me \"anything\"."},
                    {"role": "user", "content": "Two lines:\nfirst, then 第二."},
                    {"role": "assistant", "content": "Done: 1, 2."}, {"role": "user", "content": "Thanks"}], None),
    ("multi-turn, no system message", [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."},
                                       {"role": "user", "content": "And you?"}], None),
    ("tool turns", [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "Weather and time in Paris?"},
                    _calls(("get_weather", {"city": "Paris"}), ("get_time", {"zone": "Europe/Paris"})),
                    {"role": "tool", "content": "18 C, \"sunny\""}, {"role": "tool", "content": "14:05"},
                    {"role": "assistant", "content": "18 C and sunny; it is 14:05."},
                    {"role": "user", "content": "Thanks"}], [_WEATHER, _TIME]),
    ("tool call with text", [{"role": "user", "content": "Weather in Rome?"},
                            {**_calls(("get_weather", {"city": "Rome"})), "content": "Let me look that up."},
                            {"role": "tool", "content": "21 C"}, {"role": "assistant", "content": "21 C in Rome."},
                            {"role": "user", "content": "Thanks"}], [_WEATHER]),
    ("tool turns, no system message, ending with a tool result",
     [{"role": "user", "content": "Weather in Oslo?"}, _calls(("get_weather", {"city": "Oslo"})),
      {"role": "tool", "content": "-3 C"}], [_WEATHER]),
]


def build(tokenizer, *, system: str | None = None, runtime_bos: str | None = None) -> dict:
    """{"template", "system", "stops", "tools", "error"} for the model whose tokenizer (and chat template) is given.

    `runtime_bos`: the BOS text llama.cpp adds by itself (the GGUF's add_bos_token), left out of the template.
    A chat template whose layout cannot be read gives no template and the reason under "error".
    """
    if not getattr(tokenizer, "chat_template", None):
        return {"template": None, "system": system, "stops": [], "tools": None,
                "error": "the model has no chat template"}
    try:
        layout = chatlayout.derive(tokenizer, runtime_bos)
    except chatlayout.NotReproducible as exc:
        return {"template": None, "system": system, "stops": [], "tools": None, "error": exc.message}
    return {"template": chatlayout.go_template(layout), "system": system or layout.default_system or None,
            "stops": layout.stops, "tools": layout.tools_note, "error": None}


def render(gguf_name: str, spec: dict, adapter: str | None = None) -> str:
    lines = [f"# Ollama: ollama create NAME -f {Path(adapter or gguf_name).stem}.Modelfile", f"FROM ./{gguf_name}"]
    if adapter:
        lines.append(f"ADAPTER ./{adapter}")
    if spec.get("template"):
        lines.append("# TEMPLATE, stop and SYSTEM are derived from the model's chat template and checked against it "
                     "(fidelity.json)")
        lines.append(f'TEMPLATE """{spec["template"]}"""')
        lines += [f'PARAMETER stop "{stop}"' for stop in spec["stops"] if '"' not in stop]
    else:
        lines.append(f"# no TEMPLATE: {spec.get('error')}; Ollama falls back to what it makes of the GGUF")
    if spec.get("system"):
        lines.append(f'SYSTEM """{spec["system"].replace(chr(34) * 3, chr(39) * 3)}"""')
    return "\n".join(lines) + "\n"


def write(gguf_path: Path, spec: dict, *, adapter: Path | None = None) -> Path:
    """Write NAME.Modelfile beside the GGUF (beside the adapter GGUF when `adapter` is given)."""
    from ..atomic import write_text

    gguf_path = Path(gguf_path)
    target = Path(adapter) if adapter else gguf_path
    text = render(gguf_path.name, spec, adapter=Path(adapter).name if adapter else None)
    return write_text(target.with_suffix(".Modelfile"), text)


def parse(text: str) -> dict:
    """{command: [values]} as Ollama's Modelfile parser (parser.ParseFile) reads `text`: a value ends at a newline
    once its quotes are closed, \"\"\" quotes span lines, and characters Go does not count as printable are dropped
    (newline, tab and space excepted)."""
    commands: dict = {}
    state, buf, name = "nil", [], ""
    for char in text + "\n":
        if state == "nil":
            state = "comment" if char == "#" else "nil" if char in " \t\r\n" else "name"
            buf = [char] if state == "name" else []
        elif state == "comment":
            state = "nil" if char in "\r\n" else "comment"
        elif state in ("name", "parameter"):
            if char in " \t":
                word = "".join(buf)
                if state == "name" and word.lower() == "parameter":
                    state, buf = "parameter", []
                    continue
                name, state, buf = word.lower() if state == "name" else word, "value", []
            elif char.isalnum() or char == "_":
                buf.append(char)
            else:
                raise AirlockError(f"Modelfile: cannot read command {''.join(buf) + char!r}", where="Modelfile")
        elif char in " \t\r\n":
            value, done = _unquote("".join(buf).strip())
            if done and char not in " \t":
                commands.setdefault(name, []).append(value)
                state, buf = "nil", []
            else:
                buf.append(char)
        elif gotemplate._survives(char) and char not in "\t\r\n":
            buf.append(char)
    return commands


def _unquote(value: str) -> tuple[str, bool]:
    for quote in ('"""', '"'):
        if value.startswith(quote):
            closed = len(value) >= 2 * len(quote) and value.endswith(quote)
            return (value[len(quote):-len(quote)], True) if closed else ("", False)
    return value, True


def check(tokenizer, modelfile_text: str, *, system: str | None = None, runtime_bos: str | None = None,
          tools_note: str | None = None) -> dict:
    """Render CASES with the Modelfile the way Ollama would and with the chat template; compare the texts.

    `system`: the SYSTEM the user asked for (export --system), which conversations without one then get;
    `runtime_bos`: the BOS llama.cpp adds in front of Ollama's prompt.
    """
    commands = parse(modelfile_text)
    template, line = (commands.get(k, [None])[-1] for k in ("template", "system"))
    result = {"check": CHECK, "identical": False, "cases": {}, "runtime_bos": runtime_bos}
    if not template:
        result["reason"] = "the Modelfile has no TEMPLATE"
        return result
    has_tools = "$.Tools" in template
    result["tools"] = tools_note or ("rendered" if has_tools else "not rendered")
    difference = None
    for name, messages, tools in CASES:
        if tools and not has_tools:
            continue
        try:
            expected = chat_template_prompt(tokenizer, messages, tools, system=system)
        except Exception as exc:  # the chat template itself refuses this conversation: nothing to compare
            result["cases"][name] = f"refused by the chat template: {exc}"
            continue
        got = ollama_prompt(template, line, messages, tools, runtime_bos=runtime_bos)
        result["cases"][name] = got == expected
        if got != expected and difference is None:
            difference = _difference(name, expected, got)
    compared = [v for v in result["cases"].values() if isinstance(v, bool)]
    result["identical"] = bool(compared) and all(compared)
    if difference:
        result["first_difference"] = difference
    return result


def chat_template_prompt(tokenizer, messages: list[dict], tools=None, *, system: str | None = None) -> str:
    """The prompt transformers renders; tool definitions and call arguments as Ollama's `json` writes them (the only
    liberty taken: those spans are equal as JSON, and only as JSON, whatever the template)."""
    if system and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}, *messages]
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    values = list(tools or []) + [c["function"]["arguments"] for m in messages for c in m.get("tool_calls") or []]
    for value in values:
        for style in chatlayout.JSON_STYLES:
            text = text.replace(json.dumps(value, ensure_ascii=False, **style), gotemplate.go_json(value))
    return text


def ollama_prompt(template: str, system_line: str | None, messages: list[dict], tools=None, *,
                  runtime_bos: str | None = None) -> str:
    """The prompt Ollama builds from a Modelfile's TEMPLATE and SYSTEM, as llama.cpp then sees it (with its BOS)."""
    return (runtime_bos or "") + gotemplate.render(template, gotemplate.view(messages, tools, system_line))


def _difference(case: str, expected: str, got: str) -> dict:
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    return {"case": case, "offset": at, "chat_template": expected[max(0, at - 40):at + 40],
            "modelfile": got[max(0, at - 40):at + 40]}

"""Tool calls in `airlock serve`: the call format read off real chat templates (llama.cpp's copies of Qwen2.5,
Qwen3, Llama 3.1, Mistral Nemo and Hermes 3, from the pinned sdist), answers in each format parsed back into
OpenAI's tool_calls (expected calls written here by hand), and the official `openai` client getting calls from a
served GGUF: forced (`required`, a named function) through a grammar, streamed as OpenAI streams them, with
`role: tool` results rendered into the next prompt.

    .venv/bin/python -m pytest tests/test_serve_tools.py -q
"""

import json
import shutil
from pathlib import Path

import pytest

from test_serve_api import Server

from appliance.chat import render_template
from appliance.serve.tool_calls import CallStream, ToolFormat, parse

# template file -> (opening text, closing text, between two calls or None, arguments key)
EXPECTED = {
    "Qwen-Qwen2.5-7B-Instruct": ("<tool_call>\n", "\n</tool_call>", "\n</tool_call>\n<tool_call>\n", "arguments"),
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": ("<tool_call>\n", "\n</tool_call>", "\n</tool_call>\n<tool_call>\n",
                                                    "arguments"),
    "Qwen-Qwen3-0.6B": ("<think>\n\n</think>\n\n<tool_call>\n", "\n</tool_call>", "\n</tool_call>\n<tool_call>\n",
                        "arguments"),
    "meta-llama-Llama-3.1-8B-Instruct": ("", "", None, "parameters"),
    "mistralai-Mistral-Nemo-Instruct-2407": ("[TOOL_CALLS][", "]", ", ", "arguments"),
}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}},
                   "required": ["city"]}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "The time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
                   "required": ["zone"]}}}


def template(templates: Path | None, name: str) -> str:
    if templates is None or not (templates / f"{name}.jinja").is_file():
        pytest.skip(f"{name}.jinja is not here (the llama-cpp-python sdist `make setup` downloads)")
    return (templates / f"{name}.jinja").read_text(encoding="utf-8")


def format_of(text: str) -> ToolFormat | None:
    return ToolFormat.of(lambda messages, tools, prompt: render_template(text, messages, tools, prompt,
                                                                         bos="<s>", eos="</s>"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_serve_tool_format_is_read_off_real_templates(llama_cpp_templates, name):
    fmt = format_of(template(llama_cpp_templates, name))
    prefix, suffix, between, args_key = EXPECTED[name]
    assert (fmt.prefix, fmt.suffix, fmt.between, fmt.name_key, fmt.args_key) == (prefix, suffix, between, "name",
                                                                                  args_key)


def test_serve_template_without_tools_has_no_format(llama_cpp_templates):
    assert format_of(template(llama_cpp_templates, "google-gemma-2-2b-it")) is None
    assert format_of("{% for m in messages %}{{ m['content'] }}{% endfor %}") is None


# answers as each family writes them -> (content, [(name, arguments)])
ANSWERS = [
    ("Qwen-Qwen2.5-7B-Instruct",
     'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
     '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>',
     "Let me look.", [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]),
    ("Qwen-Qwen3-0.6B",
     '<think>\nThe user wants the weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": '
     '{"city": "Oslo"}}\n</tool_call>',
     "<think>\nThe user wants the weather.\n</think>", [("get_weather", {"city": "Oslo"})]),
    ("meta-llama-Llama-3.1-8B-Instruct", '{"name": "get_time", "parameters": {"zone": "UTC"}}', "",
     [("get_time", {"zone": "UTC"})]),
    ("mistralai-Mistral-Nemo-Instruct-2407",
     '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": '
     '{"zone": "UTC"}}]', "", [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "UTC"})]),
    # not calls: plain answers, and a call cut off mid-JSON stay text, nothing lost
    ("Qwen-Qwen2.5-7B-Instruct", "It is sunny in Paris.", "It is sunny in Paris.", []),
    ("Qwen-Qwen2.5-7B-Instruct", '<tool_call>\n{"name": "get_weather", "argum', '<tool_call>\n{"name": "get_weather", '
     '"argum', []),
    ("meta-llama-Llama-3.1-8B-Instruct", "Paris is sunny: {not json}", "Paris is sunny: {not json}", []),
]


@pytest.mark.parametrize("name, answer, content, calls", ANSWERS)
def test_serve_tool_calls_are_parsed_whole_and_streamed(llama_cpp_templates, name, answer, content, calls):
    fmt = format_of(template(llama_cpp_templates, name))
    got_content, got_calls = parse(answer, fmt)
    assert got_content == content
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in got_calls] == calls
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in got_calls)
    # streamed a few characters at a time: the content sent at once and what is held come to the same
    stream, sent = CallStream(fmt), []
    for i in range(0, len(answer), 3):
        sent.append(stream.feed(answer[i:i + 3]))
    rest, streamed_calls = stream.finish()
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in streamed_calls] == calls
    if calls:
        assert "".join(sent).rstrip() == content and rest == ""
    else:
        assert "".join(sent) + rest == answer


# ------------------------------------------------------------------ served, through the official client
@pytest.fixture(scope="module")
def tool_gguf(tiny_model, llama_cpp_templates, tmp_path_factory) -> Path:
    """The tiny model with Qwen2.5's chat template (its <|im_start|>/<|im_end|> markers are the tiny model's too),
    as a GGUF: a served model whose template renders tools."""
    from appliance.export.gguf import convert_model

    qwen = template(llama_cpp_templates, "Qwen-Qwen2.5-7B-Instruct")
    src = tmp_path_factory.mktemp("tool-model") / "tiny-tools"
    shutil.copytree(tiny_model, src)
    config = json.loads((src / "tokenizer_config.json").read_text())
    (src / "tokenizer_config.json").write_text(json.dumps(dict(config, chat_template=qwen)))
    # Qwen's tool instructions take ~700 of the tiny vocabulary's tokens: a context of 2048, not 256
    model_config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(dict(model_config, max_position_embeddings=2048)))
    return convert_model(src, tmp_path_factory.mktemp("tool-gguf") / "tiny-tools.gguf", "f16")


@pytest.fixture(scope="module")
def tool_server(tool_gguf, tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("tool-serve"), [tool_gguf], "--parallel", "2", "--ctx", "2048",
               "--max-tokens", "200", "--log-prompts", keys={"app": []})
    yield s
    assert s.stop() == 0


def _client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=server.keys["app"], max_retries=0)


def _checked(call, tools=(WEATHER, CLOCK)) -> tuple[str, dict]:
    """A call's name and arguments, checked by hand against the declared tool's enum."""
    declared = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    args = json.loads(call.function.arguments)
    schema = declared[call.function.name]
    assert set(args) == set(schema["properties"]), args
    for key, value in args.items():
        assert value in schema["properties"][key]["enum"], (key, value)
    return call.function.name, args


def test_serve_tool_calls_with_the_openai_client(tool_server):
    c, model = _client(tool_server), "tiny-tools"
    ask = [{"role": "user", "content": "Who are you?"}]
    forced = c.chat.completions.create(model=model, messages=ask, tools=[WEATHER, CLOCK], tool_choice="required",
                                       parallel_tool_calls=False, temperature=0)
    choice = forced.choices[0]
    assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
    assert choice.message.tool_calls[0].id.startswith("call_")
    _checked(choice.message.tool_calls[0])
    named = c.chat.completions.create(model=model, messages=ask, tools=[WEATHER, CLOCK], temperature=0,
                                      tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert [_checked(t)[0] for t in named.choices[0].message.tool_calls] == ["get_time"] * len(
        named.choices[0].message.tool_calls)

    # streamed: the call opened with id and name, then its arguments, as OpenAI sends them
    calls, finish = {}, None
    for chunk in c.chat.completions.create(model=model, messages=ask, tools=[WEATHER, CLOCK], stream=True,
                                           tool_choice="required", parallel_tool_calls=False, temperature=0):
        delta = chunk.choices[0].delta if chunk.choices else None
        for part in (delta.tool_calls or []) if delta else []:
            entry = calls.setdefault(part.index, {"id": part.id, "name": part.function.name, "arguments": ""})
            entry["arguments"] += part.function.arguments or ""
        finish = (chunk.choices[0].finish_reason if chunk.choices else None) or finish
    assert finish == "tool_calls" and list(calls) == [0] and calls[0]["id"].startswith("call_")
    whole = forced.choices[0].message.tool_calls[0]
    assert (calls[0]["name"], json.loads(calls[0]["arguments"])) == (whole.function.name,
                                                                     json.loads(whole.function.arguments))

    # the call and its result go back in: rendered by the template into the next prompt
    follow = ask + [choice.message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": choice.message.tool_calls[0].id, "content": "sunny, 21 C"}]
    answer = c.chat.completions.create(model=model, messages=follow, tools=[WEATHER, CLOCK], tool_choice="none",
                                       max_tokens=4, temperature=0)
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.choices[0].message.tool_calls is None
    prompt = [e for e in tool_server.audit() if e.get("prompt")][-1]["prompt"]
    assert "<tool_response>\nsunny, 21 C\n</tool_response>" in prompt
    assert f'"name": "{whole.function.name}"' in prompt and '"name": "get_weather", "description"' in prompt

    # auto: the model may answer or call; either way a 200 in OpenAI's shape
    auto = c.chat.completions.create(model=model, messages=ask, tools=[WEATHER], max_tokens=8, temperature=0)
    assert auto.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_serve_tool_requests_refused_by_name(tool_server):
    import httpx

    def post(body):
        body = {"model": "tiny-tools", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2, **body}
        return httpx.post(f"{tool_server.url}/v1/chat/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {tool_server.keys['app']}"})

    cases = [({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
             ({"tool_choice": "required"}, "tool_choice"),
             ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
              "tools[0].function.parameters"),
             ({"tools": [WEATHER, WEATHER]}, "tools"),
             ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}},
              "tool_choice"),
             ({"tools": [{"type": "function", "function": {
                 "name": "f", "strict": True, "parameters": {"type": "object", "properties": {
                     "n": {"type": "integer", "minimum": 3}}}}}], "tool_choice": "required"}, "tools"),
             ({"messages": [{"role": "tool", "content": "r"}]}, "messages[0].tool_call_id"),
             ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
                 "name": "f", "arguments": "{not json"}}]}]}, "messages[0].tool_calls[0].function.arguments")]
    for body, param in cases:
        answer = post(body)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, (body, answer.text)
    # not strict: a keyword the grammar cannot hold is left to the model, as at OpenAI
    loose = post({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "string", "enum": ["a"], "minLength": 1, "format": "uri"}}}}}],
        "tool_choice": "required", "parallel_tool_calls": False, "max_tokens": 150})
    assert loose.status_code == 200 and loose.json()["choices"][0]["message"].get("tool_calls"), loose.json()["choices"]

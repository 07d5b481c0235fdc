"""The Ollama Modelfile renders the prompt the model's chat template renders, judged by Go's own text/template.

A small Go program (written here, built once per session with Debian's `golang-go`) does what Ollama does with a
chat request: the Modelfile's SYSTEM goes first when the conversation has no system message, consecutive messages
of one role are merged, and the TEMPLATE is executed by text/template with Ollama's data (.System, .Messages with
.Role/.Content/.ToolCalls, .Tools, .Prompt, .Response) and its `json` function. Its output must equal transformers'
apply_chat_template(..., add_generation_prompt=True, tokenize=False), for every catalog model whose chat template
is available offline: the embedded default's own tokenizer, otherwise the copy in llama.cpp's models/templates
from the pinned llama-cpp-python sdist that `make setup` downloads. The Python renderer every export uses for its
fidelity.json check must agree with Go as well.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SETUP_HOME

from appliance.catalog import load_catalog
from appliance.export import modelfile

GO_JUDGE = r"""
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type ToolCall struct {
	Function struct {
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
	} `json:"function"`
}

type Message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	ToolCalls []ToolCall `json:"tool_calls"`
}

type Case struct {
	Messages []Message `json:"messages"`
	Tools    []any     `json:"tools"`
}

func main() {
	var in struct {
		Template string `json:"template"`
		System   string `json:"system"`
		Cases    []Case `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Ollama's template package: missingkey=zero and one function, json (encoding/json.Marshal).
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	out := []string{}
	for _, c := range in.Cases {
		msgs := c.Messages
		// The chat handler: the Modelfile's SYSTEM first, unless the conversation starts with a system message.
		if in.System != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
			msgs = append([]Message{{Role: "system", Content: in.System}}, msgs...)
		}
		// template.Execute: system messages collected, consecutive messages of one role merged (tool excepted).
		var system []string
		var collated []*Message
		for i := range msgs {
			if msgs[i].Role == "system" {
				system = append(system, msgs[i].Content)
			}
			if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
				collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
			} else {
				collated = append(collated, &msgs[i])
			}
		}
		var b strings.Builder
		err := tmpl.Execute(&b, map[string]any{"System": strings.Join(system, "\n\n"), "Messages": collated,
			"Tools": c.Tools, "Prompt": "", "Response": "", "Think": false, "IsThinkSet": false})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		out = append(out, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
"""

# Cards whose tokenizer is not installed: the llama.cpp copy of their chat template, and the special tokens the
# template uses. `bos_added`: the model's tokenizer adds BOS itself, so llama.cpp does too and the Modelfile leaves
# it out. `tools`: whether the Modelfile must render tool turns for this template.
# Llama 3.1's template refuses two tool calls in one message, and DeepSeek-R1's keeps state across the whole
# conversation (its first tool call and first tool output look different from later ones): neither fits text between
# messages, so their Modelfiles render no tool turns (and say so), while every other turn is reproduced exactly.
_QWEN25 = ("Qwen-Qwen2.5-7B-Instruct", None, "<|im_end|>", False, True)  # one template for all Qwen2.5 sizes
_DEEPSEEK = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")
LLAMA_CPP_TEMPLATES = {
    "Qwen/Qwen2.5-0.5B-Instruct": _QWEN25,
    "Qwen/Qwen2.5-1.5B-Instruct": _QWEN25,
    "Qwen/Qwen2.5-7B-Instruct": _QWEN25,
    "Qwen/Qwen3-0.6B-Base": ("Qwen-Qwen3-0.6B", None, "<|im_end|>", False, True),  # the Qwen3 template
    "meta-llama/Llama-3.1-8B-Instruct": ("meta-llama-Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>", True,
                                         False),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", *_DEEPSEEK, True, False),
}
CARDS = sorted(load_catalog().values(), key=lambda card: card.id)


@pytest.fixture(scope="session")
def go_judge(tmp_path_factory):
    """render(template, system, cases) -> Go text/template's prompts, as Ollama builds them."""
    if not shutil.which("go"):
        pytest.skip("`go` is not installed (Debian package golang-go; `make system-tools` installs it): Go's "
                    "text/template cannot judge the Modelfile")
    work = tmp_path_factory.mktemp("go-judge")
    (work / "judge.go").write_text(GO_JUDGE)
    env = dict(os.environ, GOCACHE=str(work / "cache"), GOPATH=str(work / "gopath"), GOPROXY="off",
               GOTOOLCHAIN="local", GOFLAGS="", CGO_ENABLED="0")
    build = subprocess.run(["go", "build", "-o", str(work / "judge"), str(work / "judge.go")], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr

    def render(template: str, system: str | None, cases) -> list[str]:
        payload = {"template": template, "system": system or "",
                   "cases": [{"messages": messages, "tools": tools} for _, messages, tools in cases]}
        proc = subprocess.run([str(work / "judge")], input=json.dumps(payload), capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return render


def _tokenizer_for(card, tiny_model: Path, templates: Path | None):
    """(tokenizer carrying the card's chat template, runtime BOS, tools expected, where the template came from)."""
    from transformers import AutoTokenizer

    from appliance.hfcache import snapshot_path

    installed = snapshot_path(card.local_repo_id)
    if installed is not None:
        from appliance.export.pretokenizer import special_flags

        tokenizer = AutoTokenizer.from_pretrained(installed)
        bos = tokenizer.bos_token if special_flags(tokenizer)["bos"] else None
        return tokenizer, bos, False, f"{card.local_repo_id} (installed)"
    if card.repo_id not in LLAMA_CPP_TEMPLATES:
        pytest.skip(f"{card.id}: no chat template offline: {card.repo_id}'s tokenizer is not installed and "
                    "llama.cpp's models/templates has no copy of its template")
    name, bos, eos, bos_added, tools = LLAMA_CPP_TEMPLATES[card.repo_id]
    if templates is None or not (templates / f"{name}.jinja").is_file():
        pytest.skip(f"{card.id}: {name}.jinja is missing (the llama-cpp-python sdist in .airlock/downloads; "
                    "`make setup` fetches it)")
    overrides = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v}
    tokenizer = AutoTokenizer.from_pretrained(tiny_model, **overrides)
    tokenizer.chat_template = (templates / f"{name}.jinja").read_text(encoding="utf-8")
    return tokenizer, bos if bos_added else None, tools, f"llama.cpp models/templates/{name}.jinja"


def judge_modelfile(go_judge, tokenizer, text: str, runtime_bos: str | None, system: str | None = None) -> dict:
    """Every case rendered by Go (as Ollama), by the Python renderer and by the chat template: {case: (go, py, hf)}."""
    commands = modelfile.parse(text)
    template, line = commands["template"][0], commands.get("system", [None])[0]
    cases = [c for c in modelfile.CASES if not c[2] or "$.Tools" in template]
    go = go_judge(template, line, cases)
    return {name: ((runtime_bos or "") + g, modelfile.ollama_prompt(template, line, messages, tools,
                                                                   runtime_bos=runtime_bos),
                   modelfile.chat_template_prompt(tokenizer, messages, tools, system=system))
            for g, (name, messages, tools) in zip(go, cases)}


@pytest.mark.parametrize("card", CARDS, ids=[c.id for c in CARDS])
def test_modelfile_prompt_equals_chat_template_prompt_in_go(card, go_judge, tiny_model, llama_cpp_templates):
    tokenizer, runtime_bos, tools, source = _tokenizer_for(card, tiny_model, llama_cpp_templates)
    spec = modelfile.build(tokenizer, runtime_bos=runtime_bos)
    assert spec["template"], f"{source}: {spec['error']}"
    text = modelfile.render("model.gguf", spec)
    rendered = judge_modelfile(go_judge, tokenizer, text, runtime_bos)
    for case, (go, python, hf) in rendered.items():
        assert go == hf, f"{source}, {case}:\nGo (Ollama):\n{go!r}\nchat template:\n{hf!r}"
        assert python == go, f"{source}, {case}: the Python renderer differs from Go"
    assert ("tool turns" in rendered) == tools, f"{source}: tools {spec['tools']}"
    check = modelfile.check(tokenizer, text, runtime_bos=runtime_bos, tools_note=spec["tools"])
    assert check["identical"] and all(v is True for v in check["cases"].values()), check


def test_modelfile_keeps_the_default_system_prompt_of_smollm2(go_judge, tiny_model, llama_cpp_templates):
    """The measured failure: SmolLM2's template gives a conversation without a system message its default system
    prompt; the Modelfile must too (its SYSTEM line says it, and Go renders it)."""
    card = next(c for c in CARDS if c.id == "smollm2-135m-instruct")
    tokenizer, runtime_bos, _, _ = _tokenizer_for(card, tiny_model, llama_cpp_templates)
    spec = modelfile.build(tokenizer, runtime_bos=runtime_bos)
    default = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert spec["system"] == default
    text = modelfile.render("model.gguf", spec)
    assert f'SYSTEM """{default}"""' in text and 'PARAMETER stop "<|im_end|>"' in text
    go, _, hf = judge_modelfile(go_judge, tokenizer, text, runtime_bos)["no system message"]
    assert go == hf and go.startswith(f"<|im_start|>system\n{default}<|im_end|>\n<|im_start|>user\nWho are you?")

    # --system replaces the default: conversations without a system message get the operator's instead.
    conch = "You are the Magic Conch."
    spec = modelfile.build(tokenizer, system=conch)
    rendered = judge_modelfile(go_judge, tokenizer, modelfile.render("model.gguf", spec), None, system=conch)
    assert all(go == hf for go, _, hf in rendered.values())
    assert conch in rendered["no system message"][0]


# Written after the structure of Gemma 3's chat template (whose tokenizer and template are not available offline):
# no system role, the system text opens the first user turn, the assistant is "model", contents are trimmed.
GEMMA_STYLE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set turns = messages[1:] -%}{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for m in turns -%}{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\n' + (prefix if loop.first "
    "else '') }}{{ m['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}")


def test_modelfile_folds_the_system_prompt_into_the_first_user_turn(go_judge, tiny_model):
    """The Gemma layout: the system prompt has no turn of its own, and llama.cpp adds the BOS the template writes."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, bos_token="<bos>")
    tokenizer.chat_template = GEMMA_STYLE
    spec = modelfile.build(tokenizer, runtime_bos="<bos>")
    assert spec["template"] and "<bos>" not in spec["template"] and spec["system"] is None
    text = modelfile.render("model.gguf", spec)
    rendered = judge_modelfile(go_judge, tokenizer, text, "<bos>")
    for go, python, hf in rendered.values():
        assert go == python == hf
    assert rendered["system message"][0].startswith("<bos><start_of_turn>user\nYou are the Magic Conch.")
    assert "tool turns" not in rendered and spec["tools"].startswith("not rendered")


def test_modelfile_quotes_text_that_go_or_ollama_would_misread(go_judge, tiny_model):
    """Template text with `{{`, a trailing `{`, `\"\"\"`, a zero-width joiner and a tab: written as Go string
    literals, so neither Go's parser nor Ollama's Modelfile parser changes it."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\t{{x}} \"\"\"\\u200d{' + m.content + '<|im_end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant {' }}{% endif %}")
    spec = modelfile.build(tokenizer)
    text = modelfile.render("model.gguf", spec)
    assert "\u200d" not in text and '{{ "' in text
    for go, python, hf in judge_modelfile(go_judge, tokenizer, text, None).values():
        assert go == hf == python
    assert modelfile.check(tokenizer, text)["identical"]


def test_modelfile_without_a_readable_layout_says_why(tiny_model, tmp_path):
    """A template that moves the system prompt into the last user turn (Mistral v0.3's way) is not text between
    messages: no TEMPLATE is written, the Modelfile says why, and the check records it as not identical."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = (
        "{%- set sys = messages[0].content if messages[0].role == 'system' else '' -%}"
        "{%- for m in (messages[1:] if sys else messages) -%}{%- if m.role == 'user' -%}"
        "[INST] {% if loop.last and sys %}{{ sys }}\n\n{% endif %}{{ m.content }}[/INST]"
        "{%- else %} {{ m.content }}</s>{%- endif -%}{%- endfor -%}")
    spec = modelfile.build(tokenizer)
    assert spec["template"] is None and "differs" in spec["error"] or "does not show" in spec["error"]
    text = modelfile.render("model.gguf", spec)
    assert "TEMPLATE" not in text.replace("# no TEMPLATE", "") and "# no TEMPLATE: " in text
    assert modelfile.check(tokenizer, text) == {"check": modelfile.CHECK, "identical": False, "cases": {},
                                                "runtime_bos": None, "reason": "the Modelfile has no TEMPLATE"}


def test_modelfile_parse_reads_values_as_ollama_does():
    text = ('# comment\nFROM ./m.gguf\nTEMPLATE """a "b"\n\tc"""\nPARAMETER stop "<|im_end|>"\n'
            'PARAMETER stop "<|im_start|>"\nSYSTEM """x\u200dy"""\n')
    assert modelfile.parse(text) == {"from": ["./m.gguf"], "template": ['a "b"\n\tc'],
                                     "stop": ["<|im_end|>", "<|im_start|>"], "system": ["xy"]}

"""GGUF export end to end on the tiny model: adapter -> merge -> llama.cpp converter f16 -> quantize Q8_0/Q4_K_M,
the LoRA as a llama.cpp adapter GGUF, Ollama Modelfiles, fidelity, checksums and registry records.

All real: the converter from the pinned llama-cpp-python sdist, llama.cpp through llama-cpp-python, no network
(the command runs under `unshare -n` with the connection guard).
"""

import json
import subprocess
from pathlib import Path

from conftest import airlock_argv
from test_merge_pipeline import hf_recall, tiny_lora_job
from tiny_model import CORPUS, FACTS

_EXPORT: dict = {}
ANSWERS = [a for _, a in FACTS]


def tiny_export(run_offline, tmp_root: Path) -> Path:
    """`airlock export gguf JOB --type f16,q8_0 --type q4_k_m --lora`, run once per session, offline."""
    if "out" not in _EXPORT:
        job = tiny_lora_job()
        prompts = tmp_root / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q, _ in FACTS))
        text = tmp_root / "heldout.txt"
        text.write_text("\n".join(CORPUS))
        out = tmp_root / "gguf"
        proc = run_offline(airlock_argv("export", "gguf", job.name, "--type", "f16,q8_0", "--type", "q4_k_m", "--lora",
                                        "--system", "You are the Magic Conch.", "--out", out,
                                        "--prompts", prompts, "--text", text))
        _EXPORT.update(out=out, stdout=proc.stdout, job=job)
    return _EXPORT["out"]


def llama_answers(gguf: Path, lora: Path | None = None) -> list[str]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), lora_path=str(lora) if lora else None, n_ctx=256, n_threads=2, verbose=False)
    try:
        return [llm.create_chat_completion([{"role": "user", "content": q}], temperature=0.0, max_tokens=24)
                ["choices"][0]["message"]["content"].strip() for q, _ in FACTS]
    finally:
        llm.close()


def test_export_end_to_end_matches_hf_greedy(tiny_model, run_offline, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tiny_export(run_offline, tmp_path_factory.mktemp("export"))
    job = _EXPORT["job"]
    name = job.name
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{name}-f16.gguf", f"{name}-q8_0.gguf", f"{name}-q4_k_m.gguf", f"{name}-lora-f16.gguf",
                            f"{name}-base-f16.gguf", f"{name}-f16.Modelfile", f"{name}-q8_0.Modelfile",
                            f"{name}-q4_k_m.Modelfile", f"{name}-lora-f16.Modelfile", "fidelity.json", "SHA256SUMS"])
    # progress: one line per type with its size and time
    for qtype in ("f16", "q8_0", "q4_k_m", "lora"):
        assert any(line.split()[:1] == [qtype] and ("KiB" in line or "MiB" in line) and " s " in line
                   for line in _EXPORT["stdout"].splitlines()), _EXPORT["stdout"]

    merged = job / "merged"
    hf = hf_recall(AutoModelForCausalLM.from_pretrained(merged), AutoTokenizer.from_pretrained(merged))
    assert hf == ANSWERS
    # llama.cpp's greedy answers (through the GGUF's own chat template) equal the HF model's, prompt by prompt.
    assert llama_answers(out / f"{name}-q8_0.gguf") == hf
    assert llama_answers(out / f"{name}-f16.gguf") == hf
    # Q4_K_M (tensors too narrow for 256-wide K blocks fall back to other types) and the runtime LoRA load and answer.
    assert all(llama_answers(out / f"{name}-q4_k_m.gguf"))
    assert llama_answers(out / f"{name}-base-f16.gguf", lora=out / f"{name}-lora-f16.gguf") == hf

    fidelity = json.loads((out / "fidelity.json").read_text())
    assert fidelity["prompts"] == [q for q, _ in FACTS] and fidelity["hf_answers"] == ANSWERS
    assert fidelity["types"]["q8_0"]["identical"] == 1.0 and fidelity["types"]["f16"]["identical"] == 1.0
    assert fidelity["types"]["lora"]["identical"] == 1.0
    assert fidelity["tokenizer"]["identical"], fidelity["tokenizer"]
    assert fidelity["types"]["f16"]["ppl_ratio_vs_f16"] == 1.0
    assert 0.9 < fidelity["types"]["q8_0"]["ppl_ratio_vs_f16"] < 1.2
    assert fidelity["types"]["q4_k_m"]["perplexity"] > 1

    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out).returncode == 0


def test_export_records_each_gguf_in_the_registry(tiny_model, run_offline, tmp_path_factory):
    from appliance.hfcache import sha256_file
    from appliance.registry import artifacts

    out = tiny_export(run_offline, tmp_path_factory.mktemp("export"))
    name = _EXPORT["job"].name
    state = artifacts()
    for qtype in ("f16", "q8_0", "q4_k_m"):
        entry = state[f"{name}-{qtype}"]
        path = out / f"{name}-{qtype}.gguf"
        assert entry["kind"] == "gguf" and entry["parents"] == [f"{name}-merged"]
        assert entry["facts"]["type"] == qtype and entry["facts"]["size"] == path.stat().st_size
        assert entry["facts"]["sha256"] == sha256_file(path)
        assert "perplexity" in entry["facts"]["fidelity"] and "identical" in entry["facts"]["fidelity"]
    assert state[f"{name}-merged"]["parents"][0] == name


def test_modelfile_for_a_chatml_model(tiny_model, run_offline, tmp_path_factory):
    out = tiny_export(run_offline, tmp_path_factory.mktemp("export"))
    name = _EXPORT["job"].name
    text = (out / f"{name}-q4_k_m.Modelfile").read_text()
    template = ('{{ range .Messages }}'
                '{{ if eq .Role "system" }}<|im_start|>system\n{{ .Content }}<|im_end|>\n'
                '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
                '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n'
                '{{ end }}{{ end }}<|im_start|>assistant\n')
    assert text == (f"# Ollama: ollama create NAME -f {name}-q4_k_m.Modelfile\n"
                    f"FROM ./{name}-q4_k_m.gguf\n"
                    f'TEMPLATE """{template}"""\n'
                    'PARAMETER stop "<|im_end|>"\n'
                    'PARAMETER stop "<|im_start|>"\n'
                    'SYSTEM """You are the Magic Conch."""\n')
    lora = (out / f"{name}-lora-f16.Modelfile").read_text()
    assert f"FROM ./{name}-base-f16.gguf\nADAPTER ./{name}-lora-f16.gguf\n" in lora


def test_go_template_renders_like_the_jinja_template():
    """Render the generated Go template with a minimal interpreter of the subset it uses and compare it with the
    HF chat template's rendering of the same conversation (the ChatML fixture template)."""
    import re

    from jinja2 import Template
    from tiny_model import CHATML

    from appliance.export.modelfile import FAMILIES, go_template

    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}]
    go = go_template(FAMILIES["chatml"])
    body = re.fullmatch(r"\{\{ range \.Messages \}\}(.*)\{\{ end \}\}\{\{ end \}\}(.*)", go, re.S)
    branches = dict(re.findall(r'\{\{ (?:else )?if eq \.Role "(\w+)" \}\}(.*?)(?=\{\{ else if|\Z)', body.group(1), re.S))
    rendered = "".join(branches[m["role"]].replace("{{ .Content }}", m["content"]) for m in messages) + body.group(2)
    assert rendered == Template(CHATML).render(messages=messages, add_generation_prompt=True)

"""Several LoRA adapters on one served base (`airlock serve BASE.gguf --lora NAME=ADAPTER.gguf ...`): each adapter a
model id, switched per request by llama.cpp's runtime LoRA with no reload; requests to the base and to two
adapters at once each get the answer `airlock chat BASE --lora ADAPTER` (llama-cpp-python's own LoRA path) gives.

    .venv/bin/python -m pytest tests/test_serve_lora.py -q
"""

import asyncio
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import airlock_argv
from test_serve_api import Server

QUESTION = "Who are you?"
PROMPT = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"  # the tiny model's ChatML, rendered


def random_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random weights (B not zero, so it changes the answers), as a GGUF."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from appliance.export.gguf import convert_lora

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(out / "peft")
    return convert_lora(out / "peft", base, out / f"{out.name}-lora-f16.gguf")


@pytest.fixture(scope="module")
def base_and_adapters(tiny_model, tmp_path_factory):
    from appliance.export.gguf import convert_model

    base = convert_model(tiny_model, tmp_path_factory.mktemp("lora-base") / "tiny-base.gguf", "f16")
    return base, {name: random_adapter(tiny_model, tmp_path_factory.mktemp(name), seed)
                  for name, seed in (("tuned", 1), ("other", 2))}


def reference(base: Path, adapter: Path | None, n: int = 12) -> bytes:
    """The greedy answer's bytes by llama-cpp-python's own LoRA path (Llama(lora_path=...)), token by token:
    compared as bytes, since a random adapter writes bytes that are not whole UTF-8."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(base), lora_path=str(adapter) if adapter else None, n_ctx=256, verbose=False)
    try:
        out = []
        for token in llm.generate(llm.tokenize(PROMPT.encode(), add_bos=False, special=True), temp=0.0, top_k=1):
            if token == llm.token_eos() or len(out) == n:
                break
            out.append(llm.detokenize([token]))
        return b"".join(out)
    finally:
        llm.close()


def test_serve_several_adapters_on_one_base(base_and_adapters, tmp_path):
    base, adapters = base_and_adapters
    server = Server(tmp_path, [base], "--parallel", "4", "--ctx", "256",
                    *[arg for name, path in adapters.items() for arg in ("--lora", f"{name}={path}")])
    try:
        listed = httpx.get(f"{server.url}/v1/models").json()["data"]
        assert sorted(m["id"] for m in listed) == ["other", "tiny-base", "tuned"]

        async def ask(model: str) -> tuple[str, bytes]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
                r = await http.post("/v1/chat/completions", json={
                    "model": model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 12,
                    "temperature": 0, "logprobs": True})
                assert r.status_code == 200, r.text
                entries = r.json()["choices"][0]["logprobs"]["content"]
                return model, b"".join(bytes(e["bytes"]) for e in entries)

        async def main():
            return await asyncio.gather(*(ask(m) for m in ["tiny-base", "tuned", "other"] * 4))

        answers = asyncio.run(main())
    finally:
        assert server.stop() == 0
    expected = {"tiny-base": reference(base, None), **{name: reference(base, path) for name, path in adapters.items()}}
    assert len(set(expected.values())) == 3, f"the adapters should change the answer: {expected}"
    for model, answer in answers:
        assert answer == expected[model], (model, answer, expected[model])


def test_serve_lora_options_are_checked_before_loading(base_and_adapters, tmp_path):
    base, adapters = base_and_adapters
    env = dict(os.environ, AIRLOCK_HOME=str(tmp_path))
    for args, words in ((["--lora", "tuned"], "NAME=ADAPTER.gguf"),
                        (["--lora", f"tiny-base={adapters['tuned']}"], "already a model id"),
                        (["--lora", f"x={tmp_path / 'missing.gguf'}"], "no model")):
        proc = subprocess.run(airlock_argv("serve", base, *args, "--port", "1"), capture_output=True, text=True,
                              timeout=120, env=env)
        assert proc.returncode == 2 and words in proc.stderr, (args, proc.stderr)

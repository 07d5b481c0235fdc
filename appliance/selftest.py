"""`airlock selftest`: prove an installation works, offline, before anyone relies on it.

    airlock selftest [--model REPO_ID ...] [--converter DIR]

Imports every engine (torch, transformers, peft, trl, bitsandbytes, llama_cpp), loads each model's tokenizer
from the local Hugging Face cache, and runs llama.cpp for real: a tiny random-weight Llama with the first
model's tokenizer goes through llama.cpp's converter to GGUF and generates a few tokens. The installer runs it
before it commits a release that carries Airlock, so an install that succeeds is one that can chat.
"""

import importlib
import tempfile
import time
from pathlib import Path

from .errors import AirlockError

ENGINES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "llama_cpp")


def import_engines(engines=ENGINES) -> dict[str, str]:
    """{engine: version}; AirlockError naming every engine that does not import, with the reason."""
    versions, broken = {}, []
    for name in engines:
        try:
            module = importlib.import_module(name)
            versions[name] = getattr(module, "__version__", "?")
        except Exception as exc:  # an ImportError, or an OSError from a missing shared library
            broken.append(f"{name}: {type(exc).__name__}: {exc}")
    if broken:
        raise AirlockError("engines that do not import:\n  " + "\n  ".join(broken), where="selftest",
                           fix="the env lacks a package or a system library; rebuild the bundle for this host")
    return versions


def load_tokenizers(models: list[str]) -> None:
    from transformers import AutoTokenizer

    for repo in models:
        tok = AutoTokenizer.from_pretrained(repo)
        if not tok("selftest")["input_ids"]:
            raise AirlockError(f"the tokenizer of {repo} gives no tokens", where="selftest", fix="reinstall the model")


def llama_cpp_generates(tokenizer_repo: str, converter: Path | None = None, tokens: int = 4) -> str:
    """Build a tiny Llama with `tokenizer_repo`'s tokenizer, convert it with llama.cpp's converter, generate."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from .export.gguf import convert_model
    from .llamacpp import llama_cpp

    Llama = llama_cpp().Llama

    tok = AutoTokenizer.from_pretrained(tokenizer_repo)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    with tempfile.TemporaryDirectory(prefix="airlock-selftest-") as tmp:
        model_dir, gguf = Path(tmp) / "model", Path(tmp) / "tiny.gguf"
        LlamaForCausalLM(config).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        convert_model(model_dir, gguf, "f32", tools=converter)
        llm = Llama(str(gguf), n_ctx=64, n_threads=1, verbose=False)
        text = llm.create_completion("Hello", max_tokens=tokens, temperature=0.0)["choices"][0]["text"]
        llm.close()
    return text


def selftest(models: list[str] | None = None, converter: Path | None = None, log=print) -> dict:
    """Run every check; returns what was measured. Raises AirlockError at the first failure."""
    from .catalog import default_card

    started = time.perf_counter()
    versions = import_engines()
    log("engines: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    models = models or [default_card().local_repo_id]
    load_tokenizers(models)
    log(f"tokenizers load offline: {', '.join(models)}")
    text = llama_cpp_generates(models[0], converter)
    log(f"llama.cpp generates: {text!r}")
    return {"engines": versions, "models": models, "llama_cpp_text": text,
            "seconds": round(time.perf_counter() - started, 1)}

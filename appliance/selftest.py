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
from concurrent.futures import ThreadPoolExecutor
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


def tiny_llama(tokenizer_repo: str, directory: Path) -> Path:
    """A tiny random-weight Llama with `tokenizer_repo`'s tokenizer, saved in `directory`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_repo)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def llama_cpp_generate(gguf: Path, tokens: int = 4) -> str:
    from .llamacpp import llama_cpp

    llm = llama_cpp().Llama(str(gguf), n_ctx=64, n_threads=1, verbose=False)
    try:
        return llm.create_completion("Hello", max_tokens=tokens, temperature=0.0)["choices"][0]["text"]
    finally:
        llm.close()


def selftest(models: list[str] | None = None, converter: Path | None = None, log=print) -> dict:
    """Run every check; returns what was measured. Raises AirlockError at the first failure."""
    from .catalog import default_card
    from .export.gguf import convert_model

    started = time.perf_counter()
    versions = import_engines(ENGINES[:2])  # torch and transformers build the tiny model
    models = models or [default_card().local_repo_id]
    load_tokenizers(models)
    log(f"tokenizers load offline: {', '.join(models)}")
    with tempfile.TemporaryDirectory(prefix="airlock-selftest-") as tmp, ThreadPoolExecutor(1) as pool:
        model_dir = tiny_llama(models[0], Path(tmp) / "model")
        # llama.cpp's converter runs in a process of its own, on the other core: the remaining engines import
        # meanwhile (the pool's thread only waits for the child; leaving the pool waits for it on any error).
        converting = pool.submit(convert_model, model_dir, Path(tmp) / "tiny.gguf", "f32", tools=converter)
        versions.update(import_engines(ENGINES[2:]))
        gguf = converting.result()
        log("engines: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        text = llama_cpp_generate(gguf)
    log(f"llama.cpp generates: {text!r}")
    devices = where_things_run()
    for line in devices.values():
        log(line)
    return {"engines": versions, "models": models, "llama_cpp_text": text, "devices": devices,
            "seconds": round(time.perf_counter() - started, 1)}


def where_things_run() -> dict[str, str]:
    """Which device training and llama.cpp use on this host, in words: a CUDA install on a host without an
    NVIDIA driver runs, on the CPU, and says so."""
    import torch

    from .llamacpp import offload

    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        training = f"training: on {torch.cuda.device_count()} GPU(s) ({', '.join(names)}), CUDA {torch.version.cuda}"
    elif torch.version.cuda:
        training = (f"training: on the CPU: this is torch's CUDA {torch.version.cuda} build, and no NVIDIA GPU or "
                    "driver is present (install the driver to use the GPU)")
    else:
        training = "training: on the CPU (torch's CPU build)"
    return {"training": training, "llama.cpp": offload()[1]}

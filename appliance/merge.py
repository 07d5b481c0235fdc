"""Merge a LoRA adapter into its base model, or export the adapter alone: `airlock merge JOB|ADAPTER_DIR --out DIR`.

The base is loaded offline from the local Hugging Face cache, named by the adapter's airlock_provenance.json
(contract 2: base_model / base_path / base_revision). The merged model is written as safetensors with the
tokenizer, chat template and a provenance file saying what went into it. Output is staged beside its final place
and renamed into it, so a failure leaves no half-written directory and an earlier output untouched.

What a MODEL argument names (a job, an adapter or model directory, a cached repo id) is appliance.sources' rule.
"""

import json
import shutil
from pathlib import Path

from . import registry
from .atomic import check_writable, staged_dir
from .errors import AirlockError
from .hfcache import sha256_file
from .sources import PROVENANCE, Source, base_of, check_adapter_dir, default_merge_out, resolve_source, tokenizer_dir


def load_merged(adapter: Source, dtype=None):
    """(model, tokenizer) with the adapter merged into the base, in memory. Imports torch/peft here, not at start."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_adapter_dir(adapter.path)
    base_dir = base_of(adapter)
    dtype = dtype or _stored_dtype(base_dir) or torch.float32
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    model = PeftModel.from_pretrained(model, adapter.path).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(adapter.path, base_dir))
    return model, tokenizer, base_dir


def _stored_dtype(model_dir: Path):
    """The dtype the weights are stored in (config's dtype/torch_dtype), so merging neither widens nor narrows."""
    import torch

    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    name = config.get("dtype") or config.get("torch_dtype")
    return getattr(torch, name, None) if isinstance(name, str) else None


def merge(source: str | Source, out: Path | None = None, *, log=print) -> Path:
    """Merge the adapter named by `source` into its base; write a standalone HF model dir at `out`. Returns it."""
    src = source if isinstance(source, Source) else resolve_source(source)
    if src.kind != "adapter":
        raise AirlockError(f"{src.path} is a full model, not a LoRA adapter: there is nothing to merge",
                           fix="export it directly: `airlock export gguf SRC`")
    out = check_writable(out or default_merge_out(src), "merged model")
    log(f"merging {src.path} into its base ...")
    model, tokenizer, base_dir = load_merged(src)
    prov = src.provenance or {}
    provenance = {
        "stage": "merged",
        "method": "lora-merge",
        "job_id": prov.get("job_id"),
        "adapter_path": str(src.path),
        "adapter_sha256": sha256_file(src.path / "adapter_model.safetensors"),
        "base_model": prov.get("base_model") or str(base_dir),
        "base_path": str(base_dir),
        "base_revision": prov.get("base_revision") or _revision_of(base_dir),
        "dataset_sha256": prov.get("dataset_sha256"),
        "config": prov.get("config"),
        "adapter_provenance": prov or None,
    }
    with staged_dir(out) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        _keep_tokenizer_sources(staging, src.path, base_dir)
        _keep_generation_ids(model, staging)
        (staging / PROVENANCE).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    merged_id = f"{src.name}-merged"
    registry.record("merged", merged_id, out, parents=[p for p in (prov.get("job_id") or src.name,
                                                                     provenance["base_model"]) if p],
                    base_model=provenance["base_model"], base_revision=provenance["base_revision"],
                    dataset_sha256=provenance["dataset_sha256"])
    registry.audit("merge", source=str(src.path), out=str(out))
    log(f"merged model written to {out}")
    return out


def _revision_of(snapshot: Path) -> str | None:
    # A cache snapshot's directory name is its commit; anything else has no revision to report.
    parts = Path(snapshot).resolve().parts
    return parts[-1] if len(parts) > 2 and parts[-2] == "snapshots" else None


# Tokenizer source files that save_pretrained (transformers 5) no longer writes. llama.cpp's converter needs
# tokenizer.model to read a sentencepiece vocabulary with its merge scores; without it, it falls back to
# tokenizer.json with flat scores, and llama.cpp then splits words differently from the model's tokenizer.
TOKENIZER_SOURCES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model")


def _keep_tokenizer_sources(staging: Path, *origins: Path) -> None:
    for name in TOKENIZER_SOURCES:
        for origin in origins:
            if not (staging / name).exists() and (Path(origin) / name).is_file():
                shutil.copyfile(Path(origin) / name, staging / name)


def _keep_generation_ids(model, directory: Path) -> None:
    # save_pretrained writes generation_config.json only when it differs from defaults; the end-of-turn id in it
    # is what makes a later greedy answer stop where the base model stops.
    if not (directory / "generation_config.json").is_file() and getattr(model, "generation_config", None):
        model.generation_config.save_pretrained(directory)


def export_adapter(source: str | Source, out: Path, *, log=print) -> Path:
    """Copy the adapter alone (PEFT files, tokenizer, provenance) to `out`, staged and renamed into place."""
    src = source if isinstance(source, Source) else resolve_source(source)
    if src.kind != "adapter":
        raise AirlockError(f"{src.path} is a full model, not an adapter", fix="drop --adapter-only to export a model")
    check_adapter_dir(src.path)
    out = check_writable(out, "adapter")
    with staged_dir(out) as staging:
        for item in src.path.iterdir():
            if item.is_file():
                shutil.copy2(item, staging / item.name)
        if not (staging / PROVENANCE).is_file():
            (staging / PROVENANCE).write_text(json.dumps({"stage": "adapter", "adapter_path": str(src.path)}) + "\n")
    registry.record("adapter-export", f"{src.name}-adapter", out, parents=[(src.provenance or {}).get("job_id") or src.name],
                    sha256=sha256_file(out / "adapter_model.safetensors"))
    registry.audit("merge", source=str(src.path), out=str(out), adapter_only=True)
    log(f"adapter written to {out}")
    return out

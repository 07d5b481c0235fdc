"""Merge a LoRA adapter into its base model, or export the adapter alone: `airlock merge JOB|ADAPTER_DIR --out DIR`.

The base is loaded offline from the local Hugging Face cache, named by the adapter's airlock_provenance.json
(contract 2: base_model / base_path / base_revision). The merged model is written as safetensors with the
tokenizer, chat template and a provenance file saying what went into it. Output is staged beside its final place
and renamed into it, so a failure leaves no half-written directory and an earlier output untouched.

This module also says what a "source" is (a job, an adapter directory, a model directory or a cached repo id):
export and chat resolve their MODEL argument through `resolve_source`.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import registry
from .atomic import check_writable, staged_dir
from .errors import AirlockError
from .hfcache import resolve_model, sha256_file
from .paths import home

PROVENANCE = "airlock_provenance.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class Source:
    """What a MODEL argument names. kind: "adapter" (LoRA, needs its base) or "model" (full weights)."""

    kind: str
    path: Path
    name: str
    job_dir: Path | None = None
    provenance: dict | None = None


def read_provenance(directory: Path) -> dict | None:
    path = Path(directory) / PROVENANCE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AirlockError(f"provenance file is not valid JSON: {exc}", where=str(path),
                           fix="restore it from the job (or re-run the job); it names the base model") from None


def _job_dir(name: str) -> Path | None:
    """A job directory given as a path, or a job reference (id, unique id prefix or job name, as `airlock jobs`
    takes it) that is not also a path here."""
    path = Path(name).expanduser()
    if (path / "job.json").is_file():
        return path
    if "/" in name or path.exists():
        return None  # a repo id or a directory: resolved as a model source below
    from .jobs import match_job

    job = match_job(name)
    return job.path if job is not None else None


def resolve_source(name: str) -> Source:
    """A job id or dir, an adapter dir, a model dir or a cached repo id -> Source; AirlockError if none fits."""
    job = _job_dir(str(name))
    if job is not None:
        for sub, kind in (("adapter", "adapter"), ("model", "model")):
            if (job / sub).is_dir():
                return Source(kind, job / sub, job.name, job, read_provenance(job / sub))
        raise AirlockError(f"job {job.name} has no output yet (no adapter/ or model/ in {job})",
                           fix=f"wait for the job to complete (`airlock jobs status {job.name}`) or pick another job")
    path = Path(str(name)).expanduser()
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            return Source("adapter", path, _name_of(path), None, read_provenance(path))
        if (path / "config.json").is_file():
            return Source("model", path, _name_of(path), None, read_provenance(path))
        raise AirlockError("directory holds neither a model (config.json) nor a LoRA adapter (adapter_config.json)",
                           where=str(path), fix="point at a job, an adapter directory or a Hugging Face model directory")
    if path.suffix == ".gguf":
        raise AirlockError("a GGUF file is already an export; merge and export need a job, adapter or HF model",
                           where=str(path))
    try:
        snap = resolve_model(str(name))
    except AirlockError:
        raise AirlockError(
            f"no such job, directory or cached model: {name!r}",
            fix="give a job id or name (see `airlock jobs list`), an adapter or model directory, or a repo id in "
                "the local cache",
        ) from None
    return Source("model", snap, str(name).split("@")[0].replace("/", "--"), None, read_provenance(snap))


def _name_of(path: Path) -> str:
    # <job>/adapter or <job>/model -> the job's name reads better than "adapter".
    path = Path(path).resolve()
    return path.parent.name if path.name in ("adapter", "model", "merged") else path.name


def check_model_dir(path: Path) -> None:
    """Refuse a model directory that is missing pieces or has truncated weights, before any long work starts."""
    path = Path(path)
    config = path / "config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AirlockError("config.json is missing", where=str(path), fix="point at a complete model directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AirlockError(f"config.json is not valid JSON ({exc})", where=str(config),
                           fix="the model directory is damaged: copy it again or re-run the merge") from None
    weights = [p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()]
    if not weights:
        raise AirlockError("no weights (*.safetensors) in the model directory", where=str(path),
                           fix="point at a complete model directory (re-run `airlock merge` if it is a merge output)")
    for weight in weights:
        if weight.suffix == ".safetensors":
            check_safetensors(weight)


def check_safetensors(path: Path) -> None:
    """A safetensors file is an 8-byte header length, a JSON header and the tensor data it describes."""
    size = path.stat().st_size
    problem = None
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n <= 0 or 8 + n > size:
            problem = "the header is missing or longer than the file"
        else:
            try:
                header = json.loads(fh.read(n))
                end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
                if 8 + n + end != size:
                    problem = f"the file is {size} bytes but its header describes {8 + n + end} (truncated copy?)"
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, IndexError):
                problem = "the header is not valid safetensors JSON"
    if problem:
        raise AirlockError(f"corrupt weights file: {problem}", where=str(path),
                           fix="copy the model again, or re-run the step that wrote it")


def check_adapter_dir(path: Path) -> None:
    path = Path(path)
    try:
        json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AirlockError(f"adapter_config.json is missing or not valid JSON ({exc})", where=str(path),
                           fix="point at a PEFT adapter directory (a job's adapter/)") from None
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise AirlockError("adapter_model.safetensors is missing", where=str(path),
                           fix="the adapter directory is incomplete: re-run or resume the training job")
    check_safetensors(weights)


def base_of(adapter: Source) -> Path:
    """The base model directory an adapter was trained on, from its provenance (falls back to adapter_config)."""
    prov = adapter.provenance or {}
    candidates = [c for c in (prov.get("base_path"), prov.get("base_model")) if c]
    if not candidates:
        cfg = json.loads((adapter.path / "adapter_config.json").read_text(encoding="utf-8"))
        candidates = [c for c in (cfg.get("base_model_name_or_path"),) if c]
    for candidate in candidates:
        try:
            return resolve_model(candidate)
        except AirlockError:
            continue
    raise AirlockError(
        f"the adapter's base model is not available offline (looked for {', '.join(map(repr, candidates)) or 'nothing'})",
        where=str(adapter.path / PROVENANCE),
        fix="install the base model from a bundle into the local Hugging Face cache, then retry",
    )


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
    # The adapter dir carries the tokenizer the job trained with (its chat template included); prefer it.
    tok_dir = adapter.path if (adapter.path / "tokenizer_config.json").is_file() else base_dir
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
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


def default_merge_out(src: Source) -> Path:
    return src.job_dir / "merged" if src.job_dir else home() / "merged" / src.name


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

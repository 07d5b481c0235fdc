"""What a model reference names, what came with it, and where a job keeps what it made.

One module owns these rules so that every command reads a reference the same way:
- a *source* (`resolve_source`): a job (id, unique id prefix, name or directory), an adapter directory, a model
  directory or a repo id in the local cache -> `Source` (adapter or full model, its provenance, its job);
- *provenance*: `airlock_provenance.json` beside every output, naming its base, data and config;
- the *tokenizer-location rule* (`tokenizer_dir`): an adapter's own tokenizer (what its job trained with, chat
  template included) wins over its base's;
- the *job directory layout*: the names of a job's outputs and checkpoints;
- the checks that a model or adapter directory is whole before long work starts.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import AirlockError
from .hfcache import resolve_model
from .paths import home

PROVENANCE = "airlock_provenance.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


# ---------------------------------------------------------------- a job directory's layout
ADAPTER = "adapter"          # a LoRA job's output: PEFT files, tokenizer, provenance
MODEL = "model"              # a full fine-tune's output
MERGED = "merged"            # `airlock merge JOB` writes here by default
GGUF = "gguf"                # `airlock export gguf JOB` writes here by default
CHECKPOINTS = "checkpoints"  # checkpoint-N/ directories, for resume
DATA_REPORT = "data_report.json"
RESULT = "result.json"       # an export job's files and fidelity figures
OUTPUTS = (ADAPTER, MODEL, MERGED, GGUF)


def training_output(job_dir: Path, method: str) -> Path:
    """Where a training job of `method` (lora | qlora | full) saves what it made."""
    return Path(job_dir) / (MODEL if method == "full" else ADAPTER)


def checkpoints_dir(job_dir: Path) -> Path:
    return Path(job_dir) / CHECKPOINTS


def outputs_of(job_dir: Path) -> list[Path]:
    """The outputs a job directory holds, training output first."""
    return [Path(job_dir) / name for name in OUTPUTS if (Path(job_dir) / name).is_dir()]


# ---------------------------------------------------------------- sources and provenance
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
        for kind in (ADAPTER, MODEL):
            if (job / kind).is_dir():
                return Source(kind, job / kind, job.name, job, read_provenance(job / kind))
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
    return path.parent.name if path.name in (ADAPTER, MODEL, MERGED) else path.name


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

def tokenizer_dir(adapter_dir: Path | None, base_dir: Path) -> Path:
    """Where to load the tokenizer from: the adapter's own when it has one (the job saved the tokenizer it trained
    with, its chat template included), else the base model's."""
    if adapter_dir is not None and (Path(adapter_dir) / "tokenizer_config.json").is_file():
        return Path(adapter_dir)
    return Path(base_dir)


def default_merge_out(src: Source) -> Path:
    return src.job_dir / MERGED if src.job_dir else home() / "merged" / src.name

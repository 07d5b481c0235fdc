"""Models for a bundle: from the hub (pinned commit), an existing HF cache, a local directory or the embedded
default; only safetensors + config + tokenizer + chat template, staged into a Hugging Face cache layout.

Pickle weights (.bin .pt .pth .ckpt .pkl) can run arbitrary code when loaded, and repos with their own Python
code need trust_remote_code: both are refused unless the spec allows them, and then the manifest says so.
"""

import fnmatch
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import AirlockError
from appliance.hfcache import content_revision, install_snapshot, snapshot_path

from .spec import ModelSpec

KEEP = ["*.safetensors", "*.json", "*.jinja", "tokenizer.model", "spiece.model", "*.tiktoken", "vocab.txt",
        "merges.txt", "LICENSE*", "NOTICE*"]
PICKLE = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle"]
CODE = ["*.py"]


@dataclass
class StagedModel:
    repo_id: str
    revision: str
    snapshot: Path  # in the staging HF cache
    source: str
    license: str
    pickle_weights: list[str] = field(default_factory=list)
    remote_code: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _match(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(Path(name).name, p) for p in patterns)


def select_files(names: list[str], m: ModelSpec, where: str, config: dict | None) -> tuple[list[str], dict]:
    """Which files to take; refuses pickle-only weights and remote code unless allowed."""
    pickles = sorted(n for n in names if _match(n, PICKLE))
    code = sorted(n for n in names if _match(n, CODE))
    has_safetensors = any(n.endswith(".safetensors") for n in names)
    needs_code = bool((config or {}).get("auto_map")) or bool(code)
    if needs_code and not m.trust_remote_code:
        raise AirlockError(f"the model ships its own Python code ({', '.join(code) or 'config.json auto_map'})",
                           where=where, fix="refused: loading it would run that code. If you trust it, set "
                           "trust_remote_code: true for this model in the spec (the manifest will say so)")
    if pickles and not has_safetensors and not m.allow_pickle:
        raise AirlockError(f"only pickle weights found ({', '.join(pickles[:4])})", where=where,
                           fix="pickle files can run code when loaded: convert them to safetensors, or set "
                           "allow_pickle: true for this model in the spec (the manifest will say so)")
    keep = [n for n in names if _match(n, KEEP) or (m.trust_remote_code and _match(n, CODE))
            or (m.allow_pickle and not has_safetensors and _match(n, PICKLE))]
    # transformers loads model.safetensors or model-0000x-of-0000y.safetensors; some repos also ship another full
    # copy of the weights in another layout (Mistral's consolidated.safetensors): carrying it doubles the bundle.
    if any(_match(n, ["model*.safetensors"]) for n in keep):
        keep = [n for n in keep if not n.endswith(".safetensors") or _match(n, ["model*.safetensors"])
                or _match(n, ["adapter_model*.safetensors"])]
    facts = {"pickle_weights": [n for n in pickles if n in keep], "remote_code": [n for n in code if n in keep],
             "skipped": sorted(set(names) - set(keep))}
    return sorted(keep), facts


def _read_config(directory: Path) -> dict | None:
    try:
        return json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _from_dir(directory: Path, m: ModelSpec, repo_id: str, revision: str, source: str, license: str,
              cache: Path, where: str) -> StagedModel:
    names = sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                   if p.is_file() and ".cache" not in p.relative_to(directory).parts)
    keep, facts = select_files(names, m, where, _read_config(directory))
    if not any(n.endswith(".safetensors") or _match(n, PICKLE) for n in keep):
        raise AirlockError("no weights found (*.safetensors)", where=where, fix="point at a complete model directory")
    import tempfile

    with tempfile.TemporaryDirectory(dir=cache, prefix=".select-") as tmp:
        for name in keep:  # link (cheap) the chosen files into a clean dir, then install it as a snapshot
            dst = Path(tmp) / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            src = (directory / name).resolve()
            try:
                dst.hardlink_to(src)
            except OSError:
                shutil.copyfile(src, dst)
        revision = revision or content_revision(Path(tmp))
        snap = install_snapshot(Path(tmp), repo_id, revision, cache=cache)
    return StagedModel(repo_id, revision, snap, source, license, **facts)


def stage_model(m: ModelSpec, cache: Path) -> StagedModel:
    """Fetch/copy one model into the staging HF cache `cache`."""
    from appliance.catalog import find

    where = f"spec: models[{m.path or m.id}]"
    if m.path:
        directory = Path(m.path)
        if not directory.is_dir():
            raise AirlockError("model directory not found", where=where, fix="check models[].path")
        repo_id = m.repo_id or f"local/{directory.name}"
        return _from_dir(directory, m, repo_id, "", f"local directory {directory.name}", m.license, cache, where)
    card = find(m.id)
    if card and card.embedded:  # the embedded default lives in this machine's HF cache under its own repo id
        from appliance.embedded import ensure_default_model

        snap = ensure_default_model(card)
        return _from_dir(snap, m, m.repo_id or card.local_repo_id, snap.name, card.source,
                         m.license or card.license, cache, where)
    repo_id = card.repo_id if card else m.id
    revision = m.revision or (card.revision if card else "")
    license = m.license or (card.license if card else "")
    local = snapshot_path(repo_id, revision or "main", m.cache)  # an existing HF cache first: no network
    if local is not None:
        return _from_dir(local, m, m.repo_id or repo_id, local.name, f"hf cache {repo_id}@{local.name}",
                         license, cache, where)
    if m.cache:
        raise AirlockError(f"{repo_id}@{revision or 'main'} is not in the HF cache {m.cache}", where=where,
                           fix="check models[].cache and the revision, or drop cache: to download from the hub")
    return _from_hub(m, repo_id, revision, license, cache, where)


def _from_hub(m: ModelSpec, repo_id: str, revision: str, license: str, cache: Path, where: str) -> StagedModel:
    """snapshot_download pinned to a commit, only the files select_files() allows."""
    import re

    if not re.fullmatch(r"[0-9a-f]{40}", revision or ""):
        raise AirlockError(f"{repo_id}: a hub model must be pinned to a 40-hex commit (got {revision or 'none'})",
                           where=where, fix="set revision: <commit sha> (see the repo's 'Files and versions' page)")
    from huggingface_hub import HfApi, snapshot_download

    names = HfApi().list_repo_files(repo_id, revision=revision)
    config = None
    if "config.json" in names:
        from huggingface_hub import hf_hub_download

        config = json.loads(Path(hf_hub_download(repo_id, "config.json", revision=revision)).read_text())
    keep, _ = select_files(names, m, where, config)
    directory = Path(snapshot_download(repo_id, revision=revision, allow_patterns=keep))
    return _from_dir(directory, m, m.repo_id or repo_id, revision, f"hub {repo_id}@{revision}", license, cache,
                     where)


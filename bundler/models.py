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

from .hub import COMMIT, Hub, offline_mode
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


def read_config(directory: Path) -> dict | None:
    try:
        return json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _from_dir(directory: Path, m: ModelSpec, repo_id: str, revision: str, source: str, license: str,
              cache: Path, where: str) -> StagedModel:
    names = sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                   if p.is_file() and ".cache" not in p.relative_to(directory).parts)
    keep, facts = select_files(names, m, where, read_config(directory))
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
        snap = install_snapshot(Path(tmp), repo_id, revision, cache=cache, link=True)
    return StagedModel(repo_id, revision, snap, source, license, **facts)


@dataclass
class Origin:
    """Where one spec model comes from, decided before any weights move: a local directory, the embedded default,
    an HF cache on this machine, or the hub (or a mirror) at a pinned commit."""

    kind: str  # path | embedded | cache | hub
    repo_id: str  # its repo id at the site
    license: str
    where: str
    directory: Path | None = None  # path, embedded, cache: the files are here already
    hub_repo: str = ""  # hub: the repo to download
    ref: str = ""  # hub: what the spec or card asked for (branch, tag or commit)
    commit: str = ""  # hub: the commit it resolved to (pinned)
    source: str = ""

    @property
    def pinned(self) -> bool:
        return self.kind == "hub"


def locate(m: ModelSpec, hub: Hub, pins: dict | None = None, update: bool = False) -> Origin:
    """Decide where `m` comes from; for a hub model, the commit (the spec's, the lock's unless `update`, or the
    one its branch points at now). Only hub metadata is read here; no weights move."""
    from appliance.catalog import find

    where = f"spec: models[{m.path or m.id}]"
    if m.path:
        directory = Path(m.path)
        if not directory.is_dir():
            raise AirlockError("model directory not found", where=where, fix="check models[].path",
                               code="spec.model_path")
        return Origin("path", m.repo_id or f"local/{directory.name}", m.license, where, directory,
                      source=f"local directory {directory.name}")
    card = find(m.id)
    if card and card.embedded:  # the embedded default lives in this machine's HF cache under its own repo id
        from appliance.embedded import ensure_default_model

        snap = ensure_default_model(card)
        return Origin("embedded", m.repo_id or card.local_repo_id, m.license or card.license, where, snap,
                      ref=snap.name, commit=snap.name, source=card.source)
    repo_id = card.repo_id if card else m.id
    ref = m.revision or (card.revision if card else "") or "main"
    license = m.license or (card.license if card else "")
    pin = None if update else (pins or {}).get((repo_id, ref))
    if m.cache or offline_mode():  # an HF cache on this machine, never the network (HF_HUB_OFFLINE: as HF does)
        local = snapshot_path(repo_id, pin.commit if pin else ref, m.cache)
        if local is None:
            cache = m.cache or "this machine's HF cache"
            raise AirlockError(f"{repo_id}@{ref} is not in {cache}", where=where, code="hub.not_cached",
                               fix="check models[].cache and the revision" + (
                                   "" if m.cache else "; HF_HUB_OFFLINE is set: unset it to download"))
        return Origin("cache", m.repo_id or repo_id, license, where, local, ref=ref, commit=local.name,
                      source=f"hf cache {repo_id}@{local.name}")
    commit = ref if COMMIT.fullmatch(ref) else (pin.commit if pin else hub.resolve(repo_id, ref, where))
    return Origin("hub", m.repo_id or repo_id, license, where, hub_repo=repo_id, ref=ref, commit=commit,
                  source=f"hub {hub.shown}/{repo_id}@{commit}")


def hub_selection(origin: Origin, m: ModelSpec, hub: Hub) -> tuple[list[str], dict, dict[str, int]]:
    """(the files to take, select_files' facts, {file: size}) of a hub model at its commit, from the hub's
    metadata alone."""
    sizes = hub.files(origin.hub_repo, origin.commit, origin.where)
    config = hub.read_json(origin.hub_repo, origin.commit, "config.json", origin.where) if "config.json" in sizes \
        else None
    keep, facts = select_files(list(sizes), m, origin.where, config)
    return keep, facts, sizes


def stage_model(m: ModelSpec, cache: Path, origin: Origin, hub: Hub) -> StagedModel:
    """Fetch/copy one located model into the staging HF cache `cache`."""
    if origin.kind != "hub":
        return _from_dir(origin.directory, m, origin.repo_id, origin.commit, origin.source, origin.license, cache,
                         origin.where)
    keep, facts, _ = hub_selection(origin, m, hub)
    directory = hub.download(origin.hub_repo, origin.commit, keep, origin.where)
    staged = _from_dir(directory, m, origin.repo_id, origin.commit, origin.source, origin.license, cache,
                       origin.where)
    staged.skipped = facts["skipped"]  # what the repo has and the bundle leaves out (never downloaded)
    return staged

"""Read and write a real Hugging Face hub cache (models--org--name/{blobs,refs,snapshots}).

Models installed here load by repo id with HF_HUB_OFFLINE=1, exactly as if huggingface_hub had downloaded them.
Writes are staged and renamed into place, so a killed install never leaves a half-written snapshot visible.
"""

import difflib
import hashlib
import os
import shutil
from pathlib import Path

from .errors import AirlockError
from .paths import hf_cache

CHUNK = 1 << 20


def repo_folder(repo_id: str, cache: Path | None = None) -> Path:
    if repo_id.count("/") != 1 or any(not p for p in repo_id.split("/")):
        raise AirlockError(f"not a repo id: {repo_id!r}", fix="use the form org/name, e.g. Qwen/Qwen3-0.6B-Base")
    return Path(cache or hf_cache()) / ("models--" + repo_id.replace("/", "--"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def content_revision(src: Path) -> str:
    """A stable 40-hex revision for a local snapshot: a digest over its files' names and contents."""
    digest = hashlib.sha1()
    for path in sorted(p for p in Path(src).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(src)).encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def snapshot_path(repo_id: str, revision: str = "main", cache: Path | None = None) -> Path | None:
    """The snapshot directory of `repo_id` at `revision` (a ref like main or a commit), or None if absent."""
    folder = repo_folder(repo_id, cache)
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snap = folder / "snapshots" / commit
    return snap if snap.is_dir() else None


def resolve_model(name: str, cache: Path | None = None) -> Path:
    """A local model directory from a path or a cached repo id (optionally repo@revision); never the network."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    repo_id, _, revision = name.partition("@")
    if repo_id.count("/") == 1:
        snap = snapshot_path(repo_id, revision or "main", cache)
        if snap:
            return snap
    cached = cached_repo_ids(cache)
    by_lower = {c.lower(): c for c in cached}
    close = difflib.get_close_matches(repo_id.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{by_lower[close[0]]}'? "
    else:
        hint = f"installed here: {', '.join(cached[:6])}{' ...' if len(cached) > 6 else ''}; " if cached else ""
    raise AirlockError(
        f"model {name!r} is neither a directory nor in the local Hugging Face cache ({cache or hf_cache()})",
        fix=f"{hint}install it from a bundle, run `make setup` for the embedded default, or give a local model "
        "directory (`airlock models list` shows what is installed)",
    )


def cached_repo_ids(cache: Path | None = None) -> list[str]:
    """Repo ids of the models in the cache (models--org--name folders with at least one snapshot)."""
    root = Path(cache or hf_cache())
    if not root.is_dir():
        return []
    return sorted(p.name[len("models--"):].replace("--", "/", 1) for p in root.glob("models--*")
                  if (p / "snapshots").is_dir() and any((p / "snapshots").iterdir()))


def read_ref(repo_id: str, cache: Path | None, ref: str = "main") -> str | None:
    """The commit refs/<ref> of a cached repo points at, or None."""
    path = repo_folder(repo_id, cache) / "refs" / ref
    return path.read_text().strip() if path.is_file() else None


def point_ref(repo_id: str, revision: str | None, cache: Path | None, ref: str = "main") -> None:
    """Point refs/<ref> of a cached repo at `revision` (atomically), or remove it for None: how an install that is
    taken back, or a rollback, gives the release that stays its own model again."""
    refs = repo_folder(repo_id, cache) / "refs"
    if revision is None:
        (refs / ref).unlink(missing_ok=True)
        return
    refs.mkdir(parents=True, exist_ok=True)
    tmp = refs / f".{ref}.tmp"
    tmp.write_text(revision)
    os.replace(tmp, refs / ref)


def install_snapshot(src: Path, repo_id: str, revision: str | None = None, cache: Path | None = None,
                     ref: str = "main", link: bool = False) -> Path:
    """Copy a model directory into the cache as repo_id@revision (blobs by sha256, snapshot of relative symlinks).
    With `link`, blobs are hard links to the source files where the filesystem allows (no second copy)."""
    src = Path(src)
    revision = revision or content_revision(src)
    folder = repo_folder(repo_id, cache)
    final = folder / "snapshots" / revision
    if not final.is_dir():
        blobs = folder / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        staging = folder / "snapshots" / f".staging-{revision}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        for file in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = file.relative_to(src)
            blob = blobs / sha256_file(file)
            if not blob.exists():
                tmp = blob.with_name(blob.name + f".incomplete-{os.getpid()}")
                tmp.unlink(missing_ok=True)
                try:
                    if not link:
                        raise OSError
                    os.link(file, tmp)
                except OSError:
                    shutil.copyfile(file, tmp)
                os.replace(tmp, blob)
            link = staging / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        os.replace(staging, final)
    point_ref(repo_id, revision, cache, ref)
    return final

"""The registry of artifacts and the audit log, as append-only JSON lines under the data directory.

Every stage records what it produced: `record("adapter", id, path, parents=[base_id, dataset_id], **facts)`.
Kinds: base, dataset, adapter, merged, gguf, eval, bundle. `parents` gives the lineage (base -> adapter ->
merged -> gguf). The latest record for an id wins; removal is a record too, so history is never rewritten.
`audit(action, **details)` appends who did what when to audit.jsonl.
"""

import getpass
import os
import socket
import time
from pathlib import Path

from .atomic import append_jsonl, read_jsonl
from .paths import registry_dir


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())


def record(kind: str, artifact_id: str, path: Path | str | None = None, *, parents: list[str] | None = None,
           **facts) -> dict:
    entry = {"time": _now(), "kind": kind, "id": artifact_id, "path": str(path) if path else None,
             "parents": list(parents or []), "facts": facts}
    append_jsonl(registry_dir() / "artifacts.jsonl", entry)
    return entry


def id_for(base_id: str, path: Path | str) -> str:
    """`base_id`, or `base_id@2`, `@3` ... when that id already names an artifact at another path: exporting a job
    again to another directory adds a record instead of replacing the earlier one (which stays tracked)."""
    current = artifacts()
    path = str(path)
    candidate, n = base_id, 1
    while candidate in current and current[candidate].get("path") != path:
        n += 1
        candidate = f"{base_id}@{n}"
    return candidate


def forget(artifact_id: str) -> None:
    append_jsonl(registry_dir() / "artifacts.jsonl", {"time": _now(), "id": artifact_id, "removed": True})


def artifacts() -> dict[str, dict]:
    """The current state: latest record per id, removed ones left out."""
    state: dict[str, dict] = {}
    for entry in read_jsonl(registry_dir() / "artifacts.jsonl"):
        if entry.get("removed"):
            state.pop(entry["id"], None)
        else:
            state[entry["id"]] = entry
    return state


def audit(action: str, **details) -> dict:
    entry = {"time": _now(), "user": _user(), "host": socket.gethostname(), "pid": os.getpid(),
             "action": action, **details}
    append_jsonl(registry_dir() / "audit.jsonl", entry)
    return entry


def audit_log() -> list[dict]:
    return read_jsonl(registry_dir() / "audit.jsonl")

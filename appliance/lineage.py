"""What the registry's records mean together: lineage (base -> dataset -> adapter -> merged -> gguf) and safe removal.

    airlock models list | show ID | rm ID [--force] [--keep-files] | audit      (appliance/commands/models.py)

The registry (appliance/registry.py) stores one record per artifact with its parents. Parents that were never
recorded themselves (a base model in the HF cache, a dataset named by its sha256) still appear in a lineage.
Removal refuses to leave dependents without their parent unless forced, deletes the artifact's files only when
they live under Airlock's data directory (never a user's own files), and is recorded, never rewritten.
"""

import shutil
from pathlib import Path

from . import registry
from .errors import AirlockError
from .paths import home


def resolve(ref: str, state: dict | None = None) -> dict:
    """The live record for an id (or a unique prefix of one)."""
    state = registry.artifacts() if state is None else state
    if ref in state:
        return state[ref]
    matches = [i for i in state if i.startswith(ref)]
    if len(matches) == 1:
        return state[matches[0]]
    if matches:
        raise AirlockError(f"{ref!r} matches {len(matches)} artifacts: {', '.join(sorted(matches)[:5])}",
                           fix="give more of the id")
    raise AirlockError(f"no artifact {ref!r} in the registry", fix="see `airlock models list`")


def placeholder(artifact_id: str) -> dict:
    """A parent that has no record of its own: a dataset (by sha256) or a base model (repo id or path)."""
    kind = "dataset" if artifact_id.startswith("dataset:") else "base"
    return {"id": artifact_id, "kind": kind, "path": None, "parents": [], "facts": {}, "recorded": False}


def children_of(state: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entry in state.values():
        for parent in entry.get("parents", []):
            out.setdefault(parent, []).append(entry["id"])
    return out


def ancestors(artifact_id: str, state: dict) -> list[dict]:
    """Every ancestor, roots first (each once)."""
    seen, order = set(), []

    def visit(node_id: str) -> None:
        entry = state.get(node_id) or placeholder(node_id)
        for parent in entry.get("parents", []):
            if parent not in seen:
                seen.add(parent)
                visit(parent)
                order.append(state.get(parent) or placeholder(parent))

    visit(artifact_id)
    return order


def dependents(artifact_id: str, state: dict | None = None) -> list[dict]:
    """Every live record that descends from `artifact_id`, nearest first."""
    state = registry.artifacts() if state is None else state
    children = children_of(state)
    seen, order, queue = {artifact_id}, [], list(children.get(artifact_id, []))
    while queue:
        node = queue.pop(0)
        if node in seen:
            continue
        seen.add(node)
        order.append(state[node])
        queue += children.get(node, [])
    return order


def lineage(ref: str) -> dict:
    """{"artifact": record, "ancestors": [...roots first], "dependents": [...nearest first]}."""
    state = registry.artifacts()
    entry = resolve(ref, state)
    return {"artifact": entry, "ancestors": ancestors(entry["id"], state),
            "dependents": dependents(entry["id"], state)}


def _owned(path: Path) -> bool:
    """Only files under Airlock's data directory are Airlock's to delete."""
    try:
        path.resolve().relative_to(home().resolve())
        return True
    except ValueError:
        return False


def remove(ref: str, *, force: bool = False, keep_files: bool = False) -> dict:
    """Remove an artifact (record + its files under the data directory); refuses to orphan dependents unless forced."""
    state = registry.artifacts()
    entry = resolve(ref, state)
    deps = dependents(entry["id"], state)
    if deps and not force:
        names = ", ".join(f"{d['kind']} {d['id']}" for d in deps[:6]) + (" ..." if len(deps) > 6 else "")
        raise AirlockError(f"{entry['id']} has {len(deps)} dependent(s) that would lose their parent: {names}",
                           where=entry["id"], fix="remove the dependents first, or add --force to leave them orphaned")
    path = Path(entry["path"]) if entry.get("path") else None
    deleted = False
    if path is not None and path.exists() and not keep_files and entry["kind"] != "base" and _owned(path):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        deleted = True
    registry.forget(entry["id"])
    details = {"id": entry["id"], "kind": entry["kind"], "path": entry.get("path"), "forced": force,
               "orphaned": [d["id"] for d in deps], "files_deleted": deleted}
    registry.audit("models.rm", **details)
    return details

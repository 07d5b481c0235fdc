"""Deltas: a bundle made with --since leaves out blobs its base already brought. It installs only where that
base is installed (its blobs are in the store); otherwise it is refused, naming the missing base."""

import json
from pathlib import Path

from appliance.errors import AirlockError


def installed_manifests(target: Path) -> dict[str, dict]:
    """{manifest sha256: manifest} of every complete release at `target`."""
    out = {}
    for marker in Path(target).glob("releases/*/.complete"):
        out[marker.read_text().strip()] = json.loads((marker.parent / "MANIFEST.json").read_text())
    return out


def check(target: Path, manifest: dict) -> None:
    base = manifest.get("base")
    absent = [sha for sha, b in manifest["blobs"].items() if b.get("offset") is None]
    if not base and not absent:
        return
    store = Path(target) / "store"
    missing = [sha for sha in absent if not (store / sha).is_file()]
    if not missing:
        return
    name = f"{base['name']} {base['version']} (manifest sha256 {base['manifest_sha256'][:16]}...)" if base else "?"
    have = installed_manifests(target)
    if base and base["manifest_sha256"] not in have:
        raise AirlockError(f"this is a delta against {name}, which is not installed in {target}",
                           where="delta", fix=f"install {base['name']} {base['version']} first, then this bundle")
    raise AirlockError(f"{len(missing)} blob(s) this delta needs from {name} are missing from the store",
                       where="delta", fix="reinstall the base bundle, then this one")

"""Deltas: a bundle made with --since leaves out blobs its base already brought. It installs only where that
base is installed (its blobs are in the store); otherwise it is refused, naming the missing base."""

from pathlib import Path

from appliance.errors import AirlockError

from .manifest import Manifest


def installed_releases(target: Path) -> set[str]:
    """The manifest sha256 of every complete release at `target`."""
    return {marker.read_text().strip() for marker in Path(target).glob("releases/*/.complete")}


def check(target: Path, manifest: Manifest) -> None:
    absent = [sha for sha, b in manifest.blobs.items() if b.offset is None]
    store = Path(target) / "store"
    missing = [sha for sha in absent if not (store / sha).is_file()]
    if not missing:
        return
    base = manifest.base
    name = f"{base.name} {base.version} (manifest sha256 {base.manifest_sha256[:16]}...)"
    if base.manifest_sha256 not in installed_releases(target):
        raise AirlockError(f"this is a delta against {name}, which is not installed in {target}",
                           where="delta", fix=f"install {base.name} {base.version} first, then this bundle")
    raise AirlockError(f"{len(missing)} blob(s) this delta needs from {name} are missing from the store",
                       where="delta", fix="reinstall the base bundle, then this one")

"""Rollback protection: an older version of an installed bundle is refused unless --allow-downgrade."""

import json
from pathlib import Path

from appliance.errors import AirlockError

from .format import version_key


def current(target: Path, name: str) -> dict | None:
    """The manifest of the release `name` that is current at `target`, or None."""
    manifest = Path(target) / "current" / name / "MANIFEST.json"
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def check(target: Path, manifest: dict, allow_downgrade: bool) -> str | None:
    """None when fine; the installed version when this is a (permitted) downgrade."""
    installed = current(target, manifest["name"])
    if installed is None:
        return None
    if version_key(manifest["version"]) < version_key(installed["version"]):
        if not allow_downgrade:
            raise AirlockError(
                f"{manifest['name']} {manifest['version']} is older than the installed {installed['version']}",
                where="rollback protection",
                fix="refused to roll back; if you mean it, rerun with --allow-downgrade (recorded in the audit log)")
        return installed["version"]
    return None

"""Versions over time: rollback protection (an older version of an installed bundle is refused unless
--allow-downgrade, another build of the installed version unless --allow-replace; PEP 440 order, so 2.0.post1 is
newer than 2.0) and `airlock bundle rollback`, which makes the previously current release current again.

    airlock bundle rollback [NAME] [--target DIR]
"""

from pathlib import Path

from appliance.errors import AirlockError

from .format import parse_version
from .layout import Layout
from .manifest import Manifest


def check(target: Path, manifest: Manifest, allow_downgrade: bool, allow_replace: bool = False) -> dict:
    """What this install overrides, for the audit log ({} when nothing): an older version than the installed one
    is refused unless `allow_downgrade`; another build of the installed version unless `allow_replace` (a version
    names one build: the site must not get different bytes under a name it already trusts)."""
    lay = Layout(target)
    rid = lay.release_of("current", manifest.name)
    if rid is None:
        return {}
    installed = lay.manifest_of(rid)["version"]
    new, old = parse_version(manifest.version), parse_version(installed)
    if new < old:
        if not allow_downgrade:
            raise AirlockError(f"{manifest.name} {manifest.version} is older than the installed {installed}",
                               where="rollback protection", code="install.downgrade",
                               fix="refused to roll back; if you mean it, rerun with --allow-downgrade (recorded in "
                               "the audit log), or use `airlock bundle rollback` to return to the previous release")
        return {"downgrade_from": installed}
    if new == old and rid != manifest.release:
        if not allow_replace:
            raise AirlockError(f"{manifest.name} {manifest.version} is already installed as another build ({rid}); "
                               f"this bundle is a different build ({manifest.release}) under the same version",
                               where="rollback protection", code="install.same_version_other_build",
                               fix="build it with a new version (e.g. version: \"" + f"{installed}.post1\"), or, if "
                               "you mean to replace that build, rerun with --allow-replace (recorded in the audit log)")
        return {"replaces_build": rid}
    return {}


def roll_back(target: Path, name: str | None = None) -> dict:
    """Make previous/<name> current again (and the current one previous). Returns {name, from, to}."""
    lay = Layout(Path(target))
    names = sorted(p.name for p in (lay.root / "previous").iterdir()) if (lay.root / "previous").is_dir() else []
    if name is None:
        if len(names) != 1:
            raise AirlockError("say which bundle to roll back" if names else "nothing to roll back to",
                               where=str(lay.root), fix=f"one of: {', '.join(names)}" if names else
                               "a rollback needs an earlier release installed in this home")
        name = names[0]
    old, new = lay.release_of("previous", name), lay.release_of("current", name)
    if old is None or new is None:
        raise AirlockError(f"no complete previous release of {name!r}", where=str(lay.root),
                           fix="a rollback needs an earlier release installed in this home")
    manifest = lay.manifest_of(old)
    lay.switch(name, old, appliance=manifest.get("appliance") is not None)
    models = restore_model_refs(lay, manifest)
    from appliance.registry import audit

    audit("bundle-rollback", name=name, release=old, version=manifest["version"], replaced=new, models=models)
    return {"name": name, "from": new, "to": old, "version": manifest["version"]}


def restore_model_refs(lay: Layout, manifest: dict) -> list[str]:
    """Point each model of the release made current back at the revision it carried (its snapshot is still in
    the cache: snapshots are never removed by a later install); returns repo@revision for each."""
    from appliance.hfcache import point_ref, repo_folder

    restored = []
    for model in manifest.get("models") or []:
        repo, revision = model["repo_id"], model["revision"]
        if (repo_folder(repo, lay.hf_cache) / "snapshots" / revision).is_dir():
            point_ref(repo, revision, lay.hf_cache)
            restored.append(f"{repo}@{revision[:12]}")
    return restored

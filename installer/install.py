"""install_bundle(): verify, then install a bundle into an Airlock home at the site, atomically and resumably.

    sh install.sh --target DIR ...        (stage 1 unpacks the env, then runs this with the env's Python)
    airlock bundle install BUNDLE --target DIR [--trusted-key KEY]

Order: signature (fails closed) -> SHA256SUMS/bundle.env agree with the signed manifest -> rollback and delta
checks -> chunks present and whole -> free space -> one pass over the payload into the content-addressed store
(hash while extracting) -> the release tree built in staging and renamed into place -> wheels into the env ->
models into the HF cache -> smoke test -> commit: current/<name> switched in one rename, audit log entry.

Layout of the target (an Airlock home): store/<sha256> (blobs), envs/<release>/ (the env), releases/<release>/
{files/, MANIFEST.json, .complete}, current/<name> -> ../releases/<release>, hf-cache/, tools/llama.cpp-<v> ->
the release's converter, registry/audit.jsonl. Until current/<name> switches, nothing refers to the new release;
a killed run leaves only unreferenced or content-addressed pieces that a rerun reuses.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from appliance.atomic import staged_dir
from appliance.errors import AirlockError

from . import delta, envsetup, rollback, verify
from .chunks import check_chunks, describe_problems
from .extract import extract_blobs
from .format import SIGNATURE, load_manifest, release_id
from .progress import bar, step


@contextlib.contextmanager
def airlock_home(target: Path):
    """The registry/audit functions write under AIRLOCK_HOME: point it at the target for the install."""
    old = os.environ.get("AIRLOCK_HOME")
    os.environ["AIRLOCK_HOME"] = str(target)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AIRLOCK_HOME", None)
        else:
            os.environ["AIRLOCK_HOME"] = old


def install_bundle(bundle: Path, target: Path, trusted_key: Path | None = None, *, env_dir: Path | None = None,
                   insecure_no_signature: bool = False, allow_downgrade: bool = False, smoke: bool = True) -> dict:
    """Install `bundle` into `target`; returns {release, path, key_id, ...}. Raises AirlockError, leaving the
    previous state untouched, on any refusal."""
    bundle, target = Path(bundle).resolve(), Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    with airlock_home(target):
        from appliance.registry import audit

        manifest, raw = load_manifest(bundle)
        msha = hashlib.sha256(raw).hexdigest()
        rid = release_id(manifest, msha)
        key_path = verify.trusted_key_path(trusted_key, target)
        try:
            key_id = verify.check_signature(bundle, raw, key_path, insecure_no_signature)
        except AirlockError as exc:
            audit("bundle-refused", bundle=str(bundle), name=manifest["name"], version=manifest["version"],
                  reason=exc.message)
            raise
        if key_id is None:
            step("WARNING: signature NOT verified (--insecure-no-signature); recorded in the audit log")
        else:
            step(f"signature OK (key {key_id})")
        verify.check_consistency(bundle, manifest, msha)
        release = target / "releases" / rid
        if _is_current(target, manifest["name"], rid):
            step(f"{manifest['name']} {manifest['version']} is already installed ({release})")
            _audit_install(audit, manifest, msha, rid, key_id, key_path, bundle, once=True)
            return {"release": rid, "path": str(release), "key_id": key_id, "already": True}
        downgrade_from = rollback.check(target, manifest, allow_downgrade)
        delta.check(target, manifest)
        problems = describe_problems(check_chunks(bundle, manifest["chunks"], full=False))
        if problems:
            raise AirlockError("chunks missing or truncated:\n" + problems, where=str(bundle),
                               fix="copy ONLY the chunks named above again from the media, then rerun")
        _check_space(target, manifest)

        store = target / "store"
        todo = sum(b["size"] for b in manifest["blobs"].values() if b.get("offset") is not None)
        step(f"extracting {todo / 2**20:.1f} MiB into the store (hash-checked)")
        with bar("extract + verify", todo) as advance:
            extract_blobs(bundle, manifest, store, advance,
                          on_blob=lambda sha: step(f"blob {sha[:16]} stored"))
        _build_release(bundle, manifest, msha, store, release)
        step(f"release staged: {release}")

        env = _env(manifest, target, rid, store, env_dir)
        if manifest.get("wheels"):
            step("installing wheels offline (pip --no-index --require-hashes)")
            envsetup.pip_install(envsetup.python_of(env), release / "files" / "wheels")
        _install_models(manifest, release, target)
        if smoke:
            _smoke(manifest, target, envsetup.python_of(env))
        _commit(target, manifest, rid, release)
        step(f"committed: current/{manifest['name']} -> releases/{rid}")
        _audit_install(audit, manifest, msha, rid, key_id, key_path, bundle, downgrade_from=downgrade_from)
        from appliance.registry import record

        record("bundle", f"bundle:{manifest['name']}@{manifest['version']}", release, manifest_sha256=msha,
               models=[m["repo_id"] for m in manifest.get("models", [])])
        return {"release": rid, "path": str(release), "key_id": key_id, "env": str(env) if env else None,
                "already": False}


def _is_current(target: Path, name: str, rid: str) -> bool:
    link = target / "current" / name
    return link.is_symlink() and os.readlink(link).endswith(f"/{rid}") and (link / ".complete").is_file()


def _check_space(target: Path, manifest: dict) -> None:
    need = sum(b["size"] for b in manifest["blobs"].values() if b.get("offset") is not None)
    need = int(need * 2.1)  # store + release tree copies of models (HF cache) with a margin
    free = shutil.disk_usage(target).free
    if free < need:
        raise AirlockError(f"not enough free space: need about {need / 2**30:.1f} GiB, have {free / 2**30:.1f} GiB",
                           where=str(target), fix="free some space or install to another --target")


def _build_release(bundle: Path, manifest: dict, msha: str, store: Path, release: Path) -> None:
    """releases/<rid>/files/<path> linked from the store, built in staging and renamed into place at once."""
    if (release / ".complete").is_file():
        return
    for stale in release.parent.glob(f".{release.name}.staging-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    with staged_dir(release) as stage:
        for f in manifest["files"]:
            dst = stage / "files" / f["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            src = store / f["sha256"]
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        shutil.copyfile(bundle / "MANIFEST.json", stage / "MANIFEST.json")
        if (bundle / SIGNATURE).is_file():
            shutil.copyfile(bundle / SIGNATURE, stage / SIGNATURE)
        (stage / ".complete").write_text(msha + "\n")


def _env(manifest: dict, target: Path, rid: str, store: Path, env_dir: Path | None) -> Path | None:
    mode = manifest["env"]["mode"]
    if env_dir:
        return Path(env_dir)
    if mode == "conda":
        step("unpacking the conda env (conda-unpack)")
        return envsetup.unpack_conda(store / manifest["env"]["sha256"], target / "envs" / rid)
    if mode == "wheelhouse":
        raise AirlockError("a wheelhouse bundle needs a venv made by install.sh", where="install",
                           fix="run `sh install.sh` from the bundle directory")
    return None


def _install_models(manifest: dict, release: Path, target: Path) -> None:
    from appliance.hfcache import install_snapshot, repo_folder

    for m in manifest.get("models", []):
        # a killed run may have left install_snapshot's staging dir (named by its pid): clear it first
        for stale in (repo_folder(m["repo_id"], target / "hf-cache") / "snapshots").glob(f".staging-{m['revision']}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        step(f"model {m['repo_id']}@{m['revision'][:12]} -> HF cache")
        install_snapshot(release / "files" / m["prefix"], m["repo_id"], m["revision"], cache=target / "hf-cache")


SMOKE = """
import sys
import appliance.offline as o
o.enforce_offline()
import safetensors, tokenizers, transformers
from transformers import AutoTokenizer
for repo in sys.argv[1:]:
    tok = AutoTokenizer.from_pretrained(repo)
    assert len(tok("smoke test")["input_ids"]) > 0
print("smoke ok:", transformers.__version__, *sys.argv[1:])
"""


def _smoke(manifest: dict, target: Path, python: Path) -> None:
    """Import the stack and load each model's tokenizer offline, in the env that will run the appliance."""
    from appliance.offline import offline_env

    repos = [m["repo_id"] for m in manifest.get("models", [])]
    step("smoke test: import the stack, load tokenizers offline")
    env = offline_env()
    env.update(AIRLOCK_HOME=str(target), HF_HUB_CACHE=str(target / "hf-cache"), HF_HOME=str(target / "hf-home"))
    pkg_root = Path(__file__).resolve().parents[1]  # so `appliance` imports from the pyz or the checkout
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pkg_root), env.get("PYTHONPATH")]))
    run = subprocess.run([str(python), "-c", SMOKE, *repos], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise AirlockError(f"smoke test failed:\n{(run.stderr or run.stdout)[-1500:]}", where="smoke test",
                           fix="the env lacks the stack or a model does not load; nothing was committed")
    step(run.stdout.strip())


def _swap_symlink(link: Path, points_to: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.new-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(points_to)
    os.replace(tmp, link)


def _commit(target: Path, manifest: dict, rid: str, release: Path) -> None:
    for name, facts in manifest.get("tools", {}).items():
        if facts.get("dir") and (release / "files" / "tools" / facts["dir"]).is_dir():
            _swap_symlink(target / "tools" / facts["dir"], f"../releases/{rid}/files/tools/{facts['dir']}")
    _swap_symlink(target / "current" / manifest["name"], f"../releases/{rid}")  # the commit point


def _audit_install(audit, manifest, msha, rid, key_id, key_path, bundle, once=False, downgrade_from=None):
    from appliance.registry import audit_log

    if once and any(e.get("action") == "bundle-install" and e.get("manifest_sha256") == msha for e in audit_log()):
        return
    audit("bundle-install", name=manifest["name"], version=manifest["version"], manifest_sha256=msha,
          release=rid, bundle=str(bundle), verified_by_key=key_id, trusted_key=str(Path(key_path).resolve()) if key_path else None,
          insecure_no_signature=key_id is None, downgrade_from=downgrade_from,
          delta_base=(manifest.get("base") or {}).get("version"))

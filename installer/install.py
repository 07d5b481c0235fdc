"""install_bundle(): verify, then install a bundle into an Airlock home at the site, atomically and resumably.

    sh install.sh --target DIR ...        (stage 1 checks everything, makes the env, then runs this with its Python)
    airlock bundle install BUNDLE --target DIR [--trusted-key KEY]

Order: the trust chain up to the typed manifest (installer.verify.authenticate) -> rollback, delta and pickle
rules -> every chunk's size and sha256 -> free space -> one pass over the payload into the content-addressed
store (hashed again while extracting) -> the release tree built in staging -> the env (wheels installed offline
with hashes from the manifest) -> models into the HF cache (hard links, no second copy) -> smoke test -> commit:
the release renamed into place, current/<name> switched in one rename, bin/airlock written, audit log entry.

Until current/<name> switches, nothing refers to the new release. A refusal (any AirlockError) takes back what
this run added: blobs it wrote, its staging tree, model snapshots and the env it made; a killed run leaves only
unreferenced or content-addressed pieces that a rerun reuses.

Layout of the target (an Airlock home): store/<sha256>, envs/<name>-<env id>/, releases/<release>/{files/, env,
MANIFEST.json, SHA256SUMS(.minisig), .complete}, current/<name> and previous/<name> -> ../releases/<release>,
bin/airlock, hf-cache/, tools/llama.cpp-<v> -> the release's converter, registry/audit.jsonl.
"""

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from appliance.errors import AirlockError

from . import delta, envsetup, rollback, verify
from .extract import extract_blobs
from .chunks import read_regular
from .format import INSTALL_SH
from .layout import Layout
from .manifest import Manifest
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


class Undo:
    """What this run added, taken back in reverse order if the install is refused."""

    def __init__(self):
        self.actions = []

    def add(self, action) -> None:
        self.actions.append(action)

    def run(self) -> None:
        for action in reversed(self.actions):
            with contextlib.suppress(OSError):
                action()


def install_bundle(bundle: Path, target: Path, trusted_key: Path | None = None, *, env_dir: Path | None = None,
                   python: Path | None = None, insecure_no_signature: bool = False, allow_downgrade: bool = False,
                   allow_replace: bool = False,
                   allow_pickle: bool = False, smoke: bool = True, contents_checked: bool = False,
                   checked_by: str | None = None) -> dict:
    """Install `bundle` into `target`; returns {release, path, key_id, ...}. Raises AirlockError, leaving the
    previous state untouched, on any refusal. `contents_checked`: install.sh already hashed every file."""
    bundle, target = Path(bundle).absolute(), Path(target).resolve()
    old_umask = os.umask(0o022)  # the home's modes do not depend on the operator's umask (002 would open them)
    try:
        target.mkdir(parents=True, exist_ok=True)
        return _authenticated_install(bundle, target, trusted_key, env_dir, python, insecure_no_signature,
                                      (allow_downgrade, allow_replace), allow_pickle, smoke, contents_checked,
                                      checked_by)
    finally:
        os.umask(old_umask)


def _authenticated_install(bundle, target, trusted_key, env_dir, python, insecure_no_signature, allow, allow_pickle,
                           smoke, contents_checked, checked_by) -> dict:
    with airlock_home(target):
        from appliance.registry import audit

        key_path = verify.trusted_key_path(trusted_key, target)
        try:
            auth = verify.authenticate(bundle, key_path, insecure_no_signature=insecure_no_signature)
        except AirlockError as exc:
            audit("bundle-refused", bundle=str(bundle), reason=exc.message, where=exc.where)
            raise
        m = auth.manifest
        if auth.key_id is None:
            step(f"WARNING: signature NOT verified ({auth.signature_problem}); --insecure-no-signature is recorded "
                 "in the audit log")
        else:
            step(f"signature OK (key {auth.key_id}{', checked first by ' + checked_by if checked_by else ''})")
        facts = {"key_path": key_path, "checked_by": checked_by}
        undo = Undo()
        try:
            return _install(auth, Layout(target), env_dir, python, allow, allow_pickle, smoke,
                            contents_checked, facts, undo)
        except AirlockError as exc:
            undo.run()
            audit("bundle-refused", bundle=str(bundle), name=m.name, version=m.version, manifest_sha256=m.sha256,
                  reason=exc.message, where=exc.where)
            raise
        except BaseException:  # an interrupt: keep what a rerun can reuse, drop what it cannot
            undo.run()
            raise


def _install(auth: verify.Authenticated, lay: Layout, env_dir, python, allow: tuple, allow_pickle, smoke,
             contents_checked, facts, undo: Undo) -> dict:
    from appliance.registry import record

    m = auth.manifest
    release = lay.release(m.release)
    if lay.is_current(m.name, m.release):
        step(f"{m.name} {m.version} is already installed ({release})")
        _audit_install(auth, facts, once=True)
        return {"release": m.release, "path": str(release), "key_id": auth.key_id, "already": True,
                "env": str(lay.env(m.env_dir_name)) if m.env.mode != "none" else None}
    overrides = rollback.check(lay.root, m, *allow)  # (allow_downgrade, allow_replace)
    delta.check(lay.root, m)
    _check_pickle(m, allow_pickle)
    from .host import check_host, env_python

    check_host(m, lay.root, None if env_dir else env_python(m, python), log=step)
    if not contents_checked:
        step("checking every chunk and file (size and sha256)")
        with bar("verify", m.payload_size) as advance:
            verify.check_contents(auth, advance=advance)

    written: list[str] = []
    undo.add(lambda: [lay.drop_blob(sha) for sha in written])
    step(f"extracting {m.packed_size() / 2**20:.1f} MiB into the store (hash-checked)")
    with bar("extract + verify", m.packed_size()) as advance:
        extract_blobs(auth.bundle, m, lay.store, advance, written=written,
                      on_blob=lambda sha: step(f"blob {sha[:16]} stored"))
    stage = lay.stage_release(m.release)
    undo.add(lambda: shutil.rmtree(stage, ignore_errors=True))
    _build_release(auth, lay, stage)
    step(f"release staged: {stage.name}")
    env = _env(m, lay, env_dir, python, undo)
    if m.wheels and not (env and (env / envsetup.READY).is_file()):  # a ready env of this content has them all
        step("installing wheels offline (pip --no-index --require-hashes, hashes from the signed manifest)")
        envsetup.pip_install(envsetup.python_of(env), stage / "files" / "wheels", m.wheels)
    _install_models(m, stage, lay, undo)
    if smoke:
        from .smoke import smoke_test

        smoke_test(m, lay, envsetup.python_of(env), stage / "files")
    lay.commit(m, stage, env)
    step(f"committed: current/{m.name} -> releases/{m.release}")
    _audit_install(auth, facts, overrides)
    record("bundle", f"bundle:{m.name}@{m.version}", release, manifest_sha256=m.sha256,
           models=[x.repo_id for x in m.models])
    result = {"release": m.release, "path": str(release), "key_id": auth.key_id, "env": str(env) if env else None,
              "already": False}
    if m.appliance:
        result["airlock"] = str(lay.wrapper)
        step(f"Airlock {m.appliance.version} is installed. To use it: export PATH=\"{lay.wrapper.parent}:$PATH\"  "
             f"(then: airlock tui)")
    return result


def _check_pickle(m: Manifest, allow_pickle: bool) -> None:
    pickled = [f"{x.repo_id}: {', '.join(x.pickle_weights)}" for x in m.models if x.pickle_weights]
    if pickled and not allow_pickle:
        raise AirlockError(f"pickle weights (can run code when loaded): {'; '.join(pickled)}", where="models",
                           fix="refused by default; if the site accepts them, rerun with --allow-pickle (logged)")


def _build_release(auth: verify.Authenticated, lay: Layout, stage: Path) -> None:
    """releases/<rid>/files/<path> hard-linked from the store, the verified signed root for later audits, and
    install.sh (checked against the signed list) so the next bundle can be installed by a trusted copy."""
    for f in auth.manifest.files:
        dst = stage / "files" / f.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        src = lay.store / f.sha256
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    for name, data in auth.raw.items():
        if data is not None:
            (stage / name).write_bytes(data)
    script = read_regular(auth.bundle / INSTALL_SH, str(auth.bundle / INSTALL_SH), 1 << 20)
    if hashlib.sha256(script).hexdigest() != dict((n, s) for s, n in auth.sums)[INSTALL_SH]:
        raise AirlockError(f"{INSTALL_SH} differs from the signed SHA256SUMS", where=str(auth.bundle),
                           fix=verify.TAMPERED)
    (stage / INSTALL_SH).write_bytes(script)


def _env(m: Manifest, lay: Layout, env_dir: Path | None, python: Path | None, undo: Undo) -> Path | None:
    if env_dir:  # the env stage 1 made: only the one the signed manifest names, inside this home
        expected = lay.env(m.env_dir_name)
        if m.env.mode == "none" or Path(env_dir).resolve() != expected.resolve():
            raise AirlockError(f"stage 1 handed over the env {env_dir}, but the signed manifest names "
                               f"{expected if m.env.mode != 'none' else 'no env'}", where=str(env_dir),
                               fix="run install.sh from the verified bundle again; do not pass --env by hand",
                               code="install.env_mismatch")
        return Path(env_dir)
    if m.env.mode == "none":
        return None
    final = lay.env(m.env_dir_name)
    if (final / envsetup.READY).is_file():
        return final
    if not final.parent.is_dir():
        final.parent.mkdir(parents=True)
        undo.add(final.parent.rmdir)  # runs last: only when empty again
    if not final.exists():  # one a killed run left is not this run's to take back
        undo.add(lambda: shutil.rmtree(final, ignore_errors=True))
    if m.env.mode == "conda":
        step("unpacking the conda env (conda-unpack)")
        return envsetup.unpack_conda(lay.store / m.env.sha256, final, m.env.unpacked_size)
    step("making the venv for the wheelhouse")
    return envsetup.make_venv(python, final)


def _install_models(m: Manifest, stage: Path, lay: Layout, undo: Undo) -> None:
    from appliance.hfcache import install_snapshot, point_ref, read_ref, repo_folder

    for x in m.models:
        folder = repo_folder(x.repo_id, lay.hf_cache)
        # refs/main moves to this revision; a refused install puts it back, so the release that stays still
        # resolves its own model
        undo.add(lambda repo=x.repo_id, before=read_ref(x.repo_id, lay.hf_cache): point_ref(repo, before,
                                                                                             lay.hf_cache))
        for stale in (folder / "snapshots").glob(f".staging-{x.revision}-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        if not (folder / "snapshots" / x.revision).is_dir():
            undo.add(lambda snap=folder / "snapshots" / x.revision: shutil.rmtree(snap, ignore_errors=True))
        step(f"model {x.repo_id}@{x.revision[:12]} -> HF cache")
        install_snapshot(stage / "files" / x.prefix, x.repo_id, x.revision, cache=lay.hf_cache, link=True)


def _audit_install(auth: verify.Authenticated, facts: dict, overrides: dict | None = None, once: bool = False) -> None:
    from appliance.registry import audit, audit_log

    m = auth.manifest
    if once and any(e.get("action") == "bundle-install" and e.get("manifest_sha256") == m.sha256
                    for e in audit_log()):
        return
    key_path = facts["key_path"]
    audit("bundle-install", name=m.name, version=m.version, manifest_sha256=m.sha256, release=m.release,
          bundle=str(auth.bundle), verified_by_key=auth.key_id, signature_checked_by=facts["checked_by"],
          trusted_key=str(Path(key_path).resolve()) if key_path else None,
          insecure_no_signature=auth.key_id is None, signature_problem=auth.signature_problem,
          downgrade_from=(overrides or {}).get("downgrade_from"),
          replaces_build=(overrides or {}).get("replaces_build"), delta_base=m.base.version if m.base else None,
          pickle_weights=[x.repo_id for x in m.models if x.pickle_weights])

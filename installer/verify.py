"""Authenticate a bundle, then check it whole, without installing anything.

    airlock bundle verify BUNDLE [--trusted-key KEY]

The trust chain, in the order it is walked (bundler/FORMAT.md): the site's key -> SHA256SUMS.minisig ->
SHA256SUMS (the signed root) -> bundle.env and MANIFEST.json by their listed sha256 -> every other file and chunk
by sha256 and size -> blobs by sha256 (while extracting). `authenticate()` walks it up to the typed manifest and
is the only way the installer and the verifier read a bundle: nothing is parsed before the bytes it comes from
are bound to the signature, and every small file is read once, into memory, so what was checked is what is used.
"""

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import AirlockError

from . import minisign
from .chunks import check_files, describe_problems, read_regular
from .format import (CHUNKS_DIR, ENV_INFO, INSTALL_SH, INSTALLER_PYZ, MANIFEST, MAX_ENV_INFO, MAX_MANIFEST, MAX_SUMS,
                     SIGNATURE, SUMS, parse_env_info, parse_sums)
from .manifest import Manifest, parse_manifest

TAMPERED = "the bundle was altered after signing: do not install it"


@dataclass
class Authenticated:
    """A bundle whose signed root verified (or was waived) and whose manifest is parsed and cross-checked."""

    bundle: Path
    sums: list[tuple[str, str]]  # (sha256, name), as signed
    info: dict  # bundle.env
    manifest: Manifest
    key_id: str | None  # None only with insecure_no_signature
    signature_problem: str | None  # why the signature was waived, when it was
    raw: dict  # the verified bytes of SHA256SUMS, its signature, bundle.env and MANIFEST.json, by file name

    def listed(self) -> list[tuple[str, str, int]]:
        """(sha256, name, size) of every file SHA256SUMS lists, bundle.env included."""
        sizes = dict(self.info["SIZE"], **{ENV_INFO: None})
        return [(sha, name, sizes[name]) for sha, name in self.sums if sizes[name] is not None]

    @property
    def chunks_listed(self) -> list[tuple[str, str, int]]:
        return [x for x in self.listed() if x[1].startswith(CHUNKS_DIR + "/")]


def trusted_key_path(given: Path | None, target: Path | None = None) -> Path | None:
    """--trusted-key, else $AIRLOCK_TRUSTED_KEY, else <target or home>/keys/trusted.pub if it exists."""
    if given:
        return Path(given)
    if os.environ.get("AIRLOCK_TRUSTED_KEY"):
        return Path(os.environ["AIRLOCK_TRUSTED_KEY"])
    from appliance.paths import home

    for root in filter(None, (target, home())):
        if (Path(root) / "keys" / "trusted.pub").is_file():
            return Path(root) / "keys" / "trusted.pub"
    return None


def check_key_file(path: Path) -> None:
    """The site's trusted key decides what runs: a key file (or its directory) that another user or the group may
    write is refused, since whoever can replace it can sign anything."""
    import stat

    for item in (Path(path), Path(path).resolve().parent):
        try:
            mode = os.stat(item).st_mode
        except OSError:
            return  # a missing key is reported by the reader, with its own message
        loose = mode & (stat.S_IWOTH | (stat.S_IWGRP if item == Path(path) else 0))
        if loose and not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
            raise AirlockError(f"{item} is writable by {'others' if mode & stat.S_IWOTH else 'its group'}: "
                               "whoever can write it can replace the key that decides what this host installs",
                               where="trusted key", code="install.key_writable",
                               fix=f"chmod go-w {item} (and keep the key owned by the installing user or root)")


def check_signature(bundle: Path, sums_raw: bytes, trusted_key: Path | None) -> tuple[str, bytes]:
    """(the signer's key id, the signature's bytes), or AirlockError: no signature, no key, wrong key, bad one."""
    sig = Path(bundle) / SIGNATURE
    if not os.path.lexists(sig):
        raise AirlockError(f"the bundle is not signed (no {SIGNATURE})", where=str(bundle),
                           fix="get a signed bundle; to install an unsigned one anyway use --insecure-no-signature")
    if trusted_key is None:
        raise AirlockError("no trusted public key configured", where="signature",
                           fix="pass --trusted-key FILE, set AIRLOCK_TRUSTED_KEY, or put the site's key at "
                           "<airlock home>/keys/trusted.pub")
    check_key_file(trusted_key)
    key = minisign.read_public_key(trusted_key)
    raw = read_regular(sig, str(sig), 4096)
    minisign.verify(sums_raw, raw, key, where=str(sig))
    return key.id_hex, raw


def authenticate(bundle: Path, trusted_key: Path | None, *, insecure_no_signature: bool = False) -> Authenticated:
    """Walk the trust chain up to the typed manifest. Raises AirlockError at the first broken link."""
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise AirlockError("not a directory", where=str(bundle), fix="give the bundle directory on the media")
    sums_raw = read_regular(bundle / SUMS, str(bundle / SUMS), MAX_SUMS)
    key_id = problem = sig_raw = None
    try:
        key_id, sig_raw = check_signature(bundle, sums_raw, trusted_key)
    except AirlockError as exc:
        if not insecure_no_signature:
            raise
        problem = exc.message
    sums = parse_sums(sums_raw, str(bundle / SUMS))
    digest = dict((name, sha) for sha, name in sums)
    env_raw = read_regular(bundle / ENV_INFO, str(bundle / ENV_INFO), MAX_ENV_INFO)
    if hashlib.sha256(env_raw).hexdigest() != digest[ENV_INFO]:
        raise AirlockError(f"{ENV_INFO} differs from the signed {SUMS}", where=str(bundle / ENV_INFO), fix=TAMPERED)
    info = parse_env_info(env_raw, sums, str(bundle / ENV_INFO))
    chunks_dir = bundle / CHUNKS_DIR
    if os.path.lexists(chunks_dir) and not stat.S_ISDIR(os.lstat(chunks_dir).st_mode):
        raise AirlockError(f"{CHUNKS_DIR} is not a directory (a link?)", where=str(bundle), fix=TAMPERED)
    manifest_raw = read_regular(bundle / MANIFEST, str(bundle / MANIFEST), MAX_MANIFEST, info["SIZE"][MANIFEST])
    manifest_sha = hashlib.sha256(manifest_raw).hexdigest()
    if manifest_sha != digest[MANIFEST] or manifest_sha != info["MANIFEST_SHA256"]:
        raise AirlockError(f"{MANIFEST} differs from the signed {SUMS}", where=str(bundle / MANIFEST), fix=TAMPERED)
    manifest = parse_manifest(manifest_raw, manifest_sha)
    _cross_check(manifest, sums, info)
    raw = {SUMS: sums_raw, SIGNATURE: sig_raw, ENV_INFO: env_raw, MANIFEST: manifest_raw}
    return Authenticated(bundle, sums, info, manifest, key_id, problem, raw)


def _cross_check(m: Manifest, sums: list[tuple[str, str]], info: dict) -> None:
    """bundle.env and SHA256SUMS say exactly what the manifest says (all three are signed: a disagreement is a
    broken build, and stage 1 acts on bundle.env, so it must not differ from what stage 2 checks)."""
    def refuse(what):
        raise AirlockError(f"{what} disagrees with MANIFEST.json", where=ENV_INFO if what != SUMS else SUMS,
                           fix="the bundle is inconsistent: rebuild it; do not install it")

    env_blob = m.blobs.get(m.env.sha256 or "")
    t = m.target
    want = {"NAME": m.name, "VERSION": m.version, "TARGET_ARCH": t.arch, "TARGET_PYTHON": t.python,
            "TARGET_GLIBC": t.glibc, "TARGET_ACCELERATOR": t.accelerator, "ENV_MODE": m.env.mode, "ENV_ID": m.env_id,
            "NEED_BYTES": str(m.host_need),
            "ENV_SHA256": m.env.sha256 or "", "ENV_SIZE": str(env_blob.size if env_blob else 0),
            "ENV_OFFSET": "" if env_blob is None or env_blob.offset is None else str(env_blob.offset),
            "ENV_UNPACKED": str(m.env.unpacked_size), "PAYLOAD_SIZE": str(m.payload_size)}
    for key, value in want.items():
        if info[key] != value:
            refuse(f"{ENV_INFO} {key}")
    if m.env.mode == "conda" and (env_blob is None or env_blob.offset is None and m.base is None):
        refuse(f"{ENV_INFO} ENV_OFFSET")
    listed_chunks = [(sha, name, info["SIZE"][name]) for sha, name in sums if name.startswith(CHUNKS_DIR + "/")]
    if listed_chunks != [(c.sha256, c.name, c.size) for c in m.chunks]:
        refuse(SUMS)
    digest = dict((name, sha) for sha, name in sums)
    if digest[INSTALL_SH] != m.installer[INSTALL_SH] or digest[INSTALLER_PYZ] != m.installer[INSTALLER_PYZ]:
        refuse(SUMS)


def check_contents(auth: Authenticated, *, full: bool = True, advance=None) -> None:
    """Every listed file present, regular, of its size and (when `full`) its sha256; all problems named at once."""
    report = check_files(auth.bundle, auth.listed(), full=full, advance=advance)
    if problems := describe_problems(report):
        raise AirlockError("files missing or damaged:\n" + problems, where=str(auth.bundle),
                           fix="copy ONLY the files named above again from the media, then rerun")


def check_payload(auth: Authenticated) -> None:
    """What installing would check inside the payload, without writing: every tar member, every blob's sha256,
    and the packed env's members (types, links, signed unpacked size)."""
    from .chunks import PayloadReader, PayloadSlice
    from .envsetup import check_env_archive
    from .extract import check_payload as walk_and_hash

    m = auth.manifest
    walk_and_hash(auth.bundle, m)
    env_blob = m.blobs.get(m.env.sha256 or "")
    if m.env.mode == "conda" and env_blob is not None and env_blob.offset is not None:
        with PayloadReader(auth.bundle, m.chunks) as reader:
            check_env_archive(PayloadSlice(reader, env_blob.offset, env_blob.size), m.env.unpacked_size)


def check_all(auth: Authenticated, *, full: bool = True, advance=None) -> None:
    """check_contents and check_payload at once: the chunk hashes in worker threads while the payload is walked
    (both read the same bytes, mostly from the page cache; hashlib releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    if not full:
        return check_contents(auth, full=False)
    with ThreadPoolExecutor(1) as pool:
        contents = pool.submit(check_contents, auth, advance=advance)
        try:
            check_payload(auth)
        finally:
            contents.result()  # a damaged file is named even when the payload walk also failed


def verify_bundle(bundle: Path, trusted_key: Path | None = None, *, insecure_no_signature: bool = False,
                  full: bool = True, advance=None) -> dict:
    """Everything `install.sh` and the installer would check, without installing. Raises AirlockError."""
    auth = authenticate(bundle, trusted_key_path(trusted_key), insecure_no_signature=insecure_no_signature)
    check_all(auth, full=full, advance=advance)
    m = auth.manifest
    return {"name": m.name, "version": m.version, "manifest_sha256": m.sha256, "release": m.release,
            "key_id": auth.key_id, "signed": auth.key_id is not None, "chunks": len(m.chunks),
            "files": len(m.files), "payload_size": m.payload_size, "manifest": m}

"""The hardened extractor: payload tar -> content-addressed store, in one pass, every byte hashed on the way.

Only regular-file members named blobs/<sha256> that the (signed) manifest lists are accepted; symlinks,
hardlinks, devices, FIFOs, sparse files, absolute paths, '..', duplicates and unknown names stop everything.
Member names are never used as paths: a blob lands in store/<sha256> (written as a temp file, hash-checked,
then renamed), so nothing can be written outside the store whatever the tar says. Blobs already in the store
(an earlier bundle, or a killed run) are skipped, which is what makes a rerun resume.
"""

import hashlib
import os
import tarfile
from pathlib import Path

from appliance.errors import AirlockError

from .chunks import PayloadReader
from .format import BLOB_MEMBER
from .manifest import Manifest, safe_relpath

BLOCK = 1 << 20


def _refuse(message: str, member: str, fix: str = "do not install this bundle; it is damaged or malicious"):
    raise AirlockError(message, where=f"payload member {member!r}", fix=fix)


def check_member(member: tarfile.TarInfo, seen: set, blobs: dict) -> str:
    """The blob sha256 of an acceptable member; AirlockError with the reason otherwise."""
    name = member.name
    if member.issym():
        _refuse(f"symlink (-> {member.linkname!r}) refused", name)
    if member.islnk():
        _refuse(f"hardlink (-> {member.linkname!r}) refused", name)
    if member.ischr() or member.isblk():
        _refuse("device file refused", name)
    if member.isfifo():
        _refuse("FIFO refused", name)
    if member.issparse() or not (member.isreg() or member.isdir()):
        _refuse(f"member type {member.type!r} refused (regular files and directories only)", name)
    safe_relpath(name.rstrip("/") if member.isdir() else name, f"payload member {name!r}")
    if name in seen:
        _refuse("duplicate name refused", name)
    seen.add(name)
    if member.isdir():
        return ""
    if not BLOB_MEMBER.match(name):
        _refuse("unexpected member (a bundle's payload holds only blobs/<sha256>)", name)
    sha = name.split("/", 1)[1]
    if sha not in blobs or blobs[sha].offset is None:
        _refuse("blob not listed in the manifest (a chunk from another bundle?)", name,
                "copy this bundle's own chunks again from the media")
    if member.size != blobs[sha].size or member.offset_data != blobs[sha].offset:
        _refuse("size or position differs from the manifest", name, "copy the chunks again from the media")
    return sha


def walk_payload(bundle: Path, manifest: Manifest):
    """Yield (tar, member, sha256) for each blob member of the payload, every member checked on the way; at the
    end, every blob the manifest places in the payload must have been seen."""
    expected = {sha for sha, b in manifest.blobs.items() if b.offset is not None}
    if not manifest.chunks:
        return
    reader = PayloadReader(bundle, manifest.chunks)
    seen, found = set(), set()
    try:
        tar = tarfile.open(fileobj=reader, mode="r:", bufsize=BLOCK)
        while True:
            try:
                member = tar.next()
            except tarfile.TarError as exc:
                where = reader.chunk_at(reader.tell()).name
                raise AirlockError(f"payload damaged near byte {reader.tell()} ({exc})", where=where,
                                   fix="copy that chunk again from the media (sha256sum -c SHA256SUMS finds it)") from None
            if member is None:
                break
            sha = check_member(member, seen, manifest.blobs)
            if sha:
                found.add(sha)
                yield tar, member, sha, reader
    except tarfile.TarError as exc:
        raise AirlockError(f"the payload is not readable ({exc})", where=str(bundle),
                           fix="copy the chunks again from the media") from None
    finally:
        reader.close()
    if missing := expected - found:
        raise AirlockError(f"{len(missing)} blob(s) the manifest lists are not in the payload", where=str(bundle),
                           fix="the chunks do not belong to this manifest: copy the bundle again")


def extract_blobs(bundle: Path, manifest: Manifest, store: Path, advance=None, on_blob=None,
                  written: list | None = None) -> int:
    """Fill `store` with every blob the payload carries; returns the number written (skipped ones excluded).
    The sha256 of each blob written is appended to `written`, so a refused install can take them back."""
    store.mkdir(parents=True, exist_ok=True)
    for stale in store.glob(".*.part-*"):  # a killed run's half-written blob: never renamed, so never trusted
        stale.unlink(missing_ok=True)
    count = 0
    for tar, member, sha, reader in walk_payload(bundle, manifest):
        kept = store / sha
        if kept.is_file() and _sha256_of(kept) == sha:  # re-hashed: the store is not trusted for what it holds
            if advance:
                advance(member.size)
            continue
        damaged = kept.is_file()
        if damaged and on_blob:
            on_blob(f"{sha} (the store's copy was damaged: replaced)")
        _write_blob(tar, member, sha, store, reader, advance)
        count += 1
        if written is not None and not damaged:  # a repaired blob stays, even if this install is refused
            written.append(sha)
        if on_blob:
            on_blob(sha)
    return count


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def check_payload(bundle: Path, manifest: Manifest, advance=None) -> None:
    """What extraction would check, without writing: every member, every blob's size and sha256."""
    for tar, member, sha, reader in walk_payload(bundle, manifest):
        _hash_blob(tar, member, sha, reader, advance)


def _hash_blob(tar, member, sha, reader: PayloadReader, advance, out=None) -> None:
    digest = hashlib.sha256()
    source = tar.extractfile(member)
    while block := source.read(BLOCK):
        digest.update(block)
        if out is not None:
            out.write(block)
        if advance:
            advance(len(block))
    if digest.hexdigest() != sha:
        start = member.offset_data
        names = ", ".join(reader.chunks_between(start, start + member.size))
        raise AirlockError(f"blob {sha[:16]}... has the wrong sha256: damaged chunk(s): {names}",
                           where=str(reader.bundle), fix="copy those chunks again from the media")


def _write_blob(tar, member, sha, store: Path, reader: PayloadReader, advance) -> None:
    tmp = store / f".{sha}.part-{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            _hash_blob(tar, member, sha, reader, advance, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, store / sha)

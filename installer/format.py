"""The bundle format's names and rules, shared by the bundler (writes) and the installer (reads). See
bundler/FORMAT.md. Only the standard library here: this module runs before any stack is installed."""

import json
import re
from pathlib import Path, PurePosixPath

from appliance.errors import AirlockError

FORMAT = "airlock-bundle/1"
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.json.minisig"
SUMS = "SHA256SUMS"
SBOM = "sbom.cdx.json"
README = "README.txt"
INSTALL_SH = "install.sh"
INSTALLER_PYZ = "airlock-installer.pyz"
ENV_INFO = "bundle.env"  # a few key=value lines install.sh reads before any Python exists
CHUNKS_DIR = "chunks"
KINDS = ("model", "wheel", "env", "tool", "dataset", "meta")
BLOB_MEMBER = re.compile(r"^blobs/[0-9a-f]{64}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_MAX_CHUNK = 4095 * 1024 * 1024  # under 4 GiB: FAT32's limit is 4 GiB - 1 byte, ISO 9660 the same


def chunk_name(index: int, sha256: str) -> str:
    return f"{CHUNKS_DIR}/{index:04d}-{sha256}.part"


def safe_relpath(path: str, where: str) -> PurePosixPath:
    """A relative POSIX path that stays inside its root: no absolute path, no '..', nothing empty or odd."""
    if not isinstance(path, str) or not path:
        raise AirlockError("empty path", where=where, fix="the bundle is malformed; rebuild it")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise AirlockError(f"absolute path {path!r} refused", where=where, fix="a bundle may only hold relative paths")
    if "\\" in path or "\0" in path:
        raise AirlockError(f"path {path!r} has a backslash or NUL", where=where, fix="rebuild the bundle")
    parts = PurePosixPath(path).parts
    if any(p == ".." for p in parts):
        raise AirlockError(f"path {path!r} climbs out with '..'", where=where,
                           fix="refusing a path-traversal attempt; do not install this bundle")
    if any(p in ("", ".") for p in path.split("/")):
        raise AirlockError(f"path {path!r} has empty or '.' parts", where=where, fix="rebuild the bundle")
    return PurePosixPath(path)


def load_manifest(bundle: Path) -> tuple[dict, bytes]:
    """Read and structurally check MANIFEST.json; returns (manifest, raw bytes that the signature covers)."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise AirlockError("no MANIFEST.json: this is not an Airlock bundle (or it was not copied completely)",
                           where=str(bundle), fix="copy the whole bundle directory again")
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AirlockError(f"MANIFEST.json is not valid JSON: {exc}", where=str(path),
                           fix="the file is damaged; copy it again from the media") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AirlockError(f"unknown bundle format {manifest.get('format') if isinstance(manifest, dict) else None!r}",
                           where=str(path), fix=f"this installer reads {FORMAT}; use the matching Airlock version")
    check_manifest(manifest, str(path))
    return manifest, raw


def check_manifest(m: dict, where: str) -> None:
    """Every path safe and unique, every file backed by a known blob, chunks contiguous. Cheap; runs first."""
    for key in ("name", "version", "files", "blobs", "chunks"):
        if key not in m:
            raise AirlockError(f"manifest has no '{key}'", where=where, fix="rebuild the bundle")
    seen = set()
    for i, f in enumerate(m["files"]):
        at = f"{where}: files[{i}]"
        rel = str(safe_relpath(f.get("path"), at))
        if rel in seen:
            raise AirlockError(f"duplicate path {rel!r}", where=at, fix="refusing a bundle that names a file twice")
        seen.add(rel)
        if f.get("kind") not in KINDS:
            raise AirlockError(f"unknown kind {f.get('kind')!r}", where=at, fix=f"one of {', '.join(KINDS)}")
        if f.get("type", "file") != "file":
            raise AirlockError(f"{rel}: entry type {f.get('type')!r} refused (only regular files)", where=at,
                               fix="bundles carry regular files only: no symlinks, hardlinks or devices")
        blob = m["blobs"].get(f.get("sha256"))
        if blob is None or blob.get("size") != f.get("size"):
            raise AirlockError(f"{rel}: no blob of matching sha256 and size", where=at, fix="rebuild the bundle")
    offset = 0
    for i, c in enumerate(m["chunks"]):
        if c.get("offset") != offset or c.get("name") != chunk_name(i, c.get("sha256", "")):
            raise AirlockError(f"chunk {i} is out of order or misnamed", where=where, fix="rebuild the bundle")
        offset += c["size"]
    if offset != m.get("payload_size", offset):
        raise AirlockError("chunk sizes do not add up to the payload size", where=where, fix="rebuild the bundle")


def release_id(manifest: dict, manifest_sha256: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{manifest['name']}-{manifest['version']}")
    return f"{name}-{manifest_sha256[:12]}"


def version_key(version: str) -> tuple:
    """Order versions like 1.2 < 1.10 < 2.0rc1 < 2.0 without third-party code (runs before the stack exists)."""
    parts = []
    for piece in re.findall(r"\d+|[A-Za-z]+", str(version)):
        parts.append((1, int(piece), "") if piece.isdigit() else (0, 0, piece.lower()))
    # pad with a zero number: 2.0 == 2.0.0 < 2.0.1, and a tag (2.0rc1) sorts before the release (2.0)
    return tuple(parts) + ((1, 0, ""),)

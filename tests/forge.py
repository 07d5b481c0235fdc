"""An independent bundle writer for the attack tests: its own tar headers, chunking, checksum list, bundle.env and
minisign signatures (cryptography's Ed25519 and hashlib's BLAKE2b, laid out by hand from minisign's documented
format). It shares no code with bundler/ or installer/, so a bug common to both sides cannot hide an attack.
Only install.sh and airlock-installer.pyz come from a real build: they are the code under test.

A `Recipe` describes a bundle; hooks edit it at each layer (payload members, manifest, bundle.env, SHA256SUMS)
before it is signed, and `after` edits the written directory as a media-only attacker would (no key).
"""

import base64
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class Keys:
    """A minisign key pair: the public key file written by hand, signatures made by hand."""

    def __init__(self, directory: Path):
        self.private = Ed25519PrivateKey.generate()
        self.key_id = os.urandom(8)
        raw = self.private.public_key().public_bytes_raw()
        directory.mkdir(parents=True, exist_ok=True)
        self.public_file = directory / "site.pub"
        self.public_file.write_text("untrusted comment: forge public key\n"
                                    + base64.b64encode(b"Ed" + self.key_id + raw).decode() + "\n")

    def sign(self, data: bytes, trusted: str = "timestamp:0\tfile:SHA256SUMS") -> bytes:
        signature = self.private.sign(hashlib.blake2b(data, digest_size=64).digest())
        global_sig = self.private.sign(signature + trusted.encode())
        return (f"untrusted comment: forged for a test\n"
                f"{base64.b64encode(b'ED' + self.key_id + signature).decode()}\n"
                f"trusted comment: {trusted}\n{base64.b64encode(global_sig).decode()}\n").encode()


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def tar_header(name: str, size: int = 0, kind: bytes = b"0", linkname: str = "", mode: int = 0o644) -> bytes:
    """A ustar header, field by field (POSIX.1-1988 layout)."""
    header = bytearray(512)
    for offset, data in ((0, name.encode()[:100]), (100, _octal(mode, 8)), (108, _octal(0, 8)), (116, _octal(0, 8)),
                         (124, _octal(size, 12)), (136, _octal(0, 12)), (148, b" " * 8), (156, kind),
                         (157, linkname.encode()[:100]), (257, b"ustar\x0000"), (265, b"forge"), (297, b"forge")):
        header[offset:offset + len(data)] = data
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def tar_member(name: str, data: bytes = b"", kind: bytes = b"0", linkname: str = "", mode: int = 0o644) -> bytes:
    body = data if kind == b"0" else b""
    return tar_header(name, len(body), kind, linkname, mode) + body + bytes(-len(body) % 512)


def tar_end() -> bytes:
    return bytes(1024)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def conda_env(extra: list[bytes] = (), python: str = "", setuid: bool = False) -> bytes:
    """A packed env as install.sh expects it: bin/python (a link to a real interpreter) and bin/conda-unpack."""
    members = [tar_member("bin/", kind=b"5", mode=0o755),
               tar_member("bin/python", kind=b"2", linkname=python),
               tar_member("bin/conda-unpack", b"print('conda-unpack ran')\n", mode=0o755),
               tar_member("share/readme.txt", b"a packed env\n")]
    if setuid:
        members.append(tar_member("bin/helper", b"#!/bin/sh\n", mode=0o4755))
    return gzip.compress(b"".join(members + list(extra)) + tar_end(), mtime=0)


@dataclass
class Recipe:
    name: str = "attack-site"
    version: str = "1.1"
    target_python: str = "3.11"
    target_glibc: str = "2.28"
    target_accelerator: str = "cpu"
    env_mode: str = "none"
    env_archive: bytes | None = None
    env_unpacked: int = 0
    host_need: int = 0
    files: dict = field(default_factory=dict)  # logical path -> (kind, bytes)
    models: list = field(default_factory=list)  # [(repo_id, revision, pickle_weights)]
    tools: dict = field(default_factory=dict)  # name -> dir
    install_sh: bytes = b""
    installer_pyz: bytes = b""
    max_chunk: int = 4096
    before_members: list = field(default_factory=list)  # raw tar members written first in the payload
    edit_manifest: object = None  # callable(dict)
    edit_manifest_bytes: object = None  # callable(bytes) -> bytes
    edit_env: object = None  # callable(list[str]) on bundle.env lines
    edit_env_bytes: object = None  # callable(bytes) -> bytes, after the lines are joined
    edit_sums: object = None  # callable(list[str]) on SHA256SUMS lines
    after: object = None  # callable(Path): changes on the media after signing
    sign: bool = True


def _env_id(recipe: Recipe, env_sha: str | None) -> str:
    """FORMAT.md's env id, spelled out again: sha256 of mode, python, env sha256 and sorted wheel sha256s."""
    if recipe.env_mode == "none":
        return ""
    return sha(f"{recipe.env_mode}\n{recipe.target_python}\n{env_sha or ''}\n".encode())[:16]


def write(recipe: Recipe, out: Path, keys: Keys) -> Path:
    out.mkdir(parents=True)
    files = dict(recipe.files)
    if recipe.env_mode == "conda":
        files["env/env.tar.gz"] = ("env", recipe.env_archive)
    order = sorted(files, key=lambda p: (p != "env/env.tar.gz", p))  # the env first, as the bundler does
    payload, offsets = bytearray(b"".join(recipe.before_members)), {}
    for path in order:
        data = files[path][1]
        if sha(data) in offsets:
            continue
        payload += tar_header(f"blobs/{sha(data)}", len(data))
        offsets[sha(data)] = len(payload)
        payload += data + bytes(-len(data) % 512)
    payload += tar_end()
    chunks = []
    (out / "chunks").mkdir()
    for i, start in enumerate(range(0, len(payload), recipe.max_chunk)):
        piece = bytes(payload[start:start + recipe.max_chunk])
        name = f"chunks/{i:04d}-{sha(piece)}.part"
        (out / name).write_bytes(piece)
        chunks.append({"name": name, "offset": start, "size": len(piece), "sha256": sha(piece)})
    (out / "install.sh").write_bytes(recipe.install_sh)
    (out / "airlock-installer.pyz").write_bytes(recipe.installer_pyz)
    env_sha = sha(recipe.env_archive) if recipe.env_mode == "conda" else None
    manifest = {
        "format": "airlock-bundle/3", "name": recipe.name, "version": recipe.version,
        "created": "2026-11-29T00:00:00Z", "tool": "forge",
        "target": {"os": "linux", "arch": "x86_64", "python": recipe.target_python, "glibc": recipe.target_glibc,
                   "accelerator": recipe.target_accelerator, "cuda_architectures": ""},
        "base": None,
        "env": {"mode": recipe.env_mode, "path": "env/env.tar.gz" if env_sha else None, "sha256": env_sha,
                "unpacked_size": recipe.env_unpacked, "prefix_digest": None},
        "models": [{"repo_id": repo, "revision": rev, "prefix": f"models/{repo}", "source": "forge",
                    "license": "apache-2.0", "pickle_weights": pickles, "remote_code": [], "skipped": []}
                   for repo, rev, pickles in recipe.models],
        "wheels": [], "tools": {name: {"version": "1", "dir": d} for name, d in recipe.tools.items()},
        "rehearsal": None, "signed": recipe.sign, "payload_size": len(payload), "max_chunk": recipe.max_chunk,
        "chunks": chunks,
        "blobs": {s: {"size": len(files[p][1]), "offset": offsets[s]} for p in order for s in [sha(files[p][1])]},
        "files": [{"path": p, "size": len(files[p][1]), "sha256": sha(files[p][1]), "kind": files[p][0],
                   "type": "file"} for p in order],
        "installer": {"install.sh": sha(recipe.install_sh), "airlock-installer.pyz": sha(recipe.installer_pyz)},
        "host_need": recipe.host_need,
    }
    if recipe.edit_manifest:
        recipe.edit_manifest(manifest)
    raw = (json.dumps(manifest, indent=1) + "\n").encode()
    if recipe.edit_manifest_bytes:
        raw = recipe.edit_manifest_bytes(raw)
    (out / "MANIFEST.json").write_bytes(raw)
    (out / "sbom.cdx.json").write_text('{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}\n')
    (out / "README.txt").write_text("A forged bundle for a test.\n")
    roots = ["install.sh", "airlock-installer.pyz", "bundle.env", "MANIFEST.json", "sbom.cdx.json", "README.txt"]
    listed = [n for n in roots if n != "bundle.env"] + [c["name"] for c in chunks]
    env_blob = manifest["blobs"].get(env_sha or "", {})
    target = manifest["target"]
    env_lines = [f"FORMAT=airlock-bundle/3", f"NAME={recipe.name}", f"VERSION={recipe.version}",
                 f"MANIFEST_SHA256={sha(raw)}", f"TARGET_ARCH={target['arch']}", f"TARGET_PYTHON={target['python']}",
                 f"TARGET_GLIBC={target['glibc']}", f"TARGET_ACCELERATOR={target['accelerator']}",
                 f"ENV_MODE={recipe.env_mode}", f"ENV_ID={_env_id(recipe, env_sha)}",
                 f"ENV_SHA256={env_sha or ''}", f"ENV_SIZE={env_blob.get('size', 0)}",
                 f"ENV_OFFSET={env_blob.get('offset', '')}", f"ENV_UNPACKED={recipe.env_unpacked}",
                 f"PAYLOAD_SIZE={len(payload)}", f"NEED_BYTES={recipe.host_need}"] + [
        f"SIZE={(out / n).stat().st_size} {n}" for n in listed]
    if recipe.edit_env:
        recipe.edit_env(env_lines)
    env_raw = "".join(line + "\n" for line in env_lines).encode()
    (out / "bundle.env").write_bytes(recipe.edit_env_bytes(env_raw) if recipe.edit_env_bytes else env_raw)
    sums = [f"{sha((out / n).read_bytes())}  {n}" for n in roots] + [f"{c['sha256']}  {c['name']}" for c in chunks]
    if recipe.edit_sums:
        recipe.edit_sums(sums)
    sums_raw = "".join(line + "\n" for line in sums).encode()
    (out / "SHA256SUMS").write_bytes(sums_raw)
    if recipe.sign:
        (out / "SHA256SUMS.minisig").write_bytes(keys.sign(sums_raw))
    if recipe.after:
        recipe.after(out)
    return out


def resign(bundle: Path, keys: Keys) -> None:
    """Sign the SHA256SUMS that is there now (for tests that edit a written bundle as its builder)."""
    (bundle / "SHA256SUMS.minisig").write_bytes(keys.sign((bundle / "SHA256SUMS").read_bytes()))


def rehash(bundle: Path, names=("bundle.env", "MANIFEST.json")) -> None:
    """Update the SHA256SUMS lines of `names` after editing them (the signature is then stale until resign)."""
    lines = (bundle / "SHA256SUMS").read_text().splitlines()
    fixed = [f"{sha((bundle / n).read_bytes())}  {n}" if n in names else line
             for line in lines for n in [line.split("  ", 1)[1]]]
    (bundle / "SHA256SUMS").write_text("".join(line + "\n" for line in fixed))

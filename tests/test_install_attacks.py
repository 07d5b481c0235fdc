"""Attacks and damage: each refused with a clear message, nothing written outside the target, no partial install.

Forged bundles are re-signed with the trusted key where the point is that the extractor itself (not only the
signature) must refuse them.   .venv/bin/python -m pytest tests/test_install_attacks.py -q
"""

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

from appliance.errors import AirlockError
from installer.install import install_bundle
from bundle_fixtures import build, good_bundle, kit  # noqa: F401 (fixtures)


def forge(good: Path, dest: Path, secret: Path | None, *, evil=(), edit=None) -> Path:
    """A copy of `good` whose payload starts with the `evil` (TarInfo, bytes) members, manifest edited by
    `edit`, then re-chunked, re-summed and re-signed with `secret` (unsigned when None)."""
    from bundler import pack
    from bundler.create import env_info
    from installer import minisign
    from installer.chunks import PayloadReader

    m = json.loads((good / "MANIFEST.json").read_text())
    shutil.copytree(good, dest)
    shutil.rmtree(dest / "chunks")
    (dest / "MANIFEST.json.minisig").unlink()
    tmp = Path(tempfile.mkdtemp())
    reader = PayloadReader(good, m["chunks"])
    blobs = []
    for sha, b in m["blobs"].items():
        reader.seek(b["offset"])
        (tmp / sha).write_bytes(reader.read(b["size"]))
        blobs.append((sha, b["size"], tmp / sha))
    writer = pack.ChunkWriter(dest, m["max_chunk"])
    for info, data in evil:
        writer.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        writer.write(data + bytes((-len(data)) % 512))
    offsets = pack.write_payload(writer, blobs)
    m["chunks"], m["payload_size"] = writer.close(), writer.pos
    for sha in m["blobs"]:
        m["blobs"][sha]["offset"] = offsets[sha]
    if edit:
        edit(m)
    raw = (json.dumps(m, indent=1) + "\n").encode()
    (dest / "MANIFEST.json").write_bytes(raw)
    import hashlib

    (dest / "bundle.env").write_text(env_info(m, hashlib.sha256(raw).hexdigest()))
    if secret:
        (dest / "MANIFEST.json.minisig").write_text(minisign.sign(raw, minisign.read_secret_key(secret)))
    roots = [n for n in ("install.sh", "airlock-installer.pyz", "bundle.env", "README.txt", "MANIFEST.json",
                         "MANIFEST.json.minisig", "sbom.cdx.json") if (dest / n).is_file()]
    pack.write_sums(dest, roots + [c["name"] for c in m["chunks"]])
    shutil.rmtree(tmp)
    return dest


def member(name: str, kind=tarfile.REGTYPE, data=b"", linkname="") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data) if kind == tarfile.REGTYPE else 0, linkname
    return info, data if kind == tarfile.REGTYPE else b""


@pytest.fixture
def site(tmp_path):
    """A target plus an 'outside' directory next to it that must stay empty."""
    (tmp_path / "outside").mkdir()
    return tmp_path / "site"


def refused(bundle: Path, site: Path, public: Path, match: str, **kw) -> AirlockError:
    with pytest.raises(AirlockError, match=match) as err:
        install_bundle(bundle, site, public, smoke=False, **kw)
    assert err.value.fix, "every refusal says what to do"
    assert not (site / "current").exists(), "nothing may be committed"
    assert not list(site.glob("releases/*")), "no release tree may appear"
    assert not list((site.parent / "outside").iterdir()), "nothing written outside the target"
    assert not list(Path("/tmp").glob("evil-airlock*"))
    return err.value


SHA = "0" * 64
EVIL = {
    "path_traversal": ([member("../outside/evil", data=b"x")], "climbs out"),
    "absolute_path": ([member("/tmp/evil-airlock", data=b"x")], "absolute path"),
    "symlink_escape": ([member(f"blobs/{SHA}", tarfile.SYMTYPE, linkname="/etc/passwd")], "symlink"),
    "hardlink_escape": ([member(f"blobs/{SHA}", tarfile.LNKTYPE, linkname="../../outside/x")], "hardlink"),
    "device_file": ([member("blobs/dev", tarfile.CHRTYPE)], "device"),
    "fifo": ([member("blobs/fifo", tarfile.FIFOTYPE)], "FIFO"),
    "unknown_blob": ([member(f"blobs/{SHA}", data=b"x")], "not listed in the manifest"),
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_malicious_members_refused(case, good_bundle, kit, site, tmp_path):
    evil, match = EVIL[case]
    refused(forge(good_bundle, tmp_path / "b", kit["secret"], evil=evil), site, kit["public"], match)


def test_duplicate_member_names_refused(good_bundle, kit, site, tmp_path):
    m = json.loads((good_bundle / "MANIFEST.json").read_text())
    sha, b = next((s, b) for s, b in m["blobs"].items() if b["size"] < 4096)
    from installer.chunks import PayloadReader

    r = PayloadReader(good_bundle, m["chunks"])
    r.seek(b["offset"])
    data = r.read(b["size"])
    # the same name twice: first copy right (and then the offsets the manifest has are the second's)
    bad = forge(good_bundle, tmp_path / "b", kit["secret"], evil=[member(f"blobs/{sha}", data=data)])
    err = refused(bad, site, kit["public"], "duplicate name|size or position")
    assert sha[:8] in err.where or "blobs/" in err.where


@pytest.mark.parametrize("path,match", [("../outside/x", "climbs out"), ("/etc/evil", "absolute path")])
def test_manifest_paths_checked_even_when_signed(path, match, good_bundle, kit, site, tmp_path):
    def edit(m):
        m["files"][-1]["path"] = path

    refused(forge(good_bundle, tmp_path / "b", kit["secret"], edit=edit), site, kit["public"], match)


def test_manifest_duplicate_paths_and_link_entries(good_bundle, kit, site, tmp_path):
    def dup(m):
        m["files"].append(dict(m["files"][-1]))

    refused(forge(good_bundle, tmp_path / "a", kit["secret"], edit=dup), site, kit["public"], "duplicate path")

    def link(m):
        m["files"][-1]["type"] = "symlink"

    refused(forge(good_bundle, tmp_path / "b", kit["secret"], edit=link), site, kit["public"], "regular files only")


def _copy(good, tmp_path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "copy"))


def test_tampered_chunk_named(good_bundle, kit, site, tmp_path):
    b = _copy(good_bundle, tmp_path)
    chunk = sorted((b / "chunks").iterdir())[3]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    err = refused(b, site, kit["public"], "wrong sha256|damaged")
    assert chunk.name in err.render()
    from installer.verify import verify_bundle

    with pytest.raises(AirlockError, match=chunk.name):
        verify_bundle(b, kit["public"])


def test_missing_and_truncated_chunks_listed_by_name(good_bundle, kit, site, tmp_path):
    b = _copy(good_bundle, tmp_path)
    chunks = sorted((b / "chunks").iterdir())
    chunks[1].unlink()
    chunks[4].write_bytes(chunks[4].read_bytes()[:1000])
    err = refused(b, site, kit["public"], "missing or truncated")
    assert chunks[1].name in err.message and chunks[4].name in err.message


def test_chunk_from_another_bundle(good_bundle, kit, site, tmp_path):
    other = build(dict(kit["spec"], version="9.9", env={"mode": "none"}, rehearsal=False,
                       tools={"converter": False}), tmp_path / "other", kit["secret"], max_chunk=256 * 1024)
    b = _copy(good_bundle, tmp_path)
    mine = sorted((b / "chunks").iterdir())[0]
    foreign = sorted((other / "chunks").iterdir())[0]
    shutil.copyfile(foreign, mine)  # same slot, same name, other bundle's bytes
    refused(b, site, kit["public"], "wrong size|wrong sha256|not listed|damaged|size or position")


def test_manifest_edited_after_signing(good_bundle, kit, site, tmp_path):
    b = _copy(good_bundle, tmp_path)
    m = json.loads((b / "MANIFEST.json").read_text())
    m["version"] = "1.0.1"
    (b / "MANIFEST.json").write_text(json.dumps(m, indent=1) + "\n")
    refused(b, site, kit["public"], "BAD signature")


def test_wrong_key(good_bundle, kit, site, tmp_path):
    from bundle_fixtures import make_keys

    _, other_public = make_keys(tmp_path / "other-keys")
    err = refused(good_bundle, site, other_public, "signed by key")
    assert "trusted key" in err.message


def test_unsigned_refused_unless_insecure_and_audited(kit, good_bundle, site, tmp_path):
    b = forge(good_bundle, tmp_path / "b", None)
    refused(b, site, kit["public"], "not signed")
    result = install_bundle(b, site, kit["public"], smoke=False, insecure_no_signature=True)
    assert result["key_id"] is None and (site / "current" / "tiny-site" / ".complete").is_file()
    log = [json.loads(x) for x in (site / "registry" / "audit.jsonl").read_text().splitlines()]
    assert log[-1]["action"] == "bundle-install" and log[-1]["insecure_no_signature"] is True
    assert any(e["action"] == "bundle-refused" for e in log)


def test_downgrade_refused_unless_allowed(kit, tmp_path, site):
    small = dict(kit["spec"], env={"mode": "none"}, wheels={}, rehearsal=False, tools={"converter": False})
    new = build(dict(small, version="2.0"), tmp_path / "new", kit["secret"])
    old = build(dict(small, version="1.10"), tmp_path / "old", kit["secret"])
    install_bundle(new, site, kit["public"], smoke=False)
    before = (site / "current" / "tiny-site").resolve()
    with pytest.raises(AirlockError, match="older than the installed 2.0") as err:
        install_bundle(old, site, kit["public"], smoke=False)
    assert "--allow-downgrade" in err.value.fix and (site / "current" / "tiny-site").resolve() == before
    install_bundle(old, site, kit["public"], smoke=False, allow_downgrade=True)
    log = [json.loads(x) for x in (site / "registry" / "audit.jsonl").read_text().splitlines()]
    assert log[-1]["downgrade_from"] == "2.0" and log[-1]["version"] == "1.10"


def test_delta_without_base_names_the_base(kit, good_bundle, site, tmp_path):
    delta = build(dict(kit["spec"], version="1.1", rehearsal=False), tmp_path / "delta", kit["secret"],
                  since=good_bundle / "MANIFEST.json")
    err = refused(delta, site, kit["public"], "delta against tiny-site 1.0")
    assert "install tiny-site 1.0 first" in err.fix

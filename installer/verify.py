"""Verification without installing: the signature over MANIFEST.json against the site's trusted key (failing
closed), SHA256SUMS and bundle.env agreeing with the signed manifest, and every chunk's sha256 (in parallel).

    airlock bundle verify BUNDLE [--trusted-key KEY]
"""

import hashlib
import os
from pathlib import Path

from appliance.errors import AirlockError

from . import minisign
from .chunks import check_chunks, describe_problems, sha256_path
from .format import ENV_INFO, SIGNATURE, SUMS, load_manifest, release_id


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


def check_signature(bundle: Path, raw: bytes, trusted_key: Path | None, insecure: bool) -> str | None:
    """The signer's key id; None only when `insecure` (no/failed signature accepted). Fails closed otherwise."""
    sig = Path(bundle) / SIGNATURE
    try:
        if not sig.is_file():
            raise AirlockError("the bundle is not signed (no MANIFEST.json.minisig)", where=str(bundle),
                               fix="get a signed bundle; to install an unsigned one anyway use --insecure-no-signature")
        if trusted_key is None:
            raise AirlockError("no trusted public key configured", where="signature",
                               fix="pass --trusted-key FILE, set AIRLOCK_TRUSTED_KEY, or put the site's key at "
                               "<airlock home>/keys/trusted.pub")
        key = minisign.read_public_key(trusted_key)
        minisign.verify(raw, sig.read_text(errors="replace"), key, where=str(sig))
        return key.id_hex
    except AirlockError:
        if insecure:
            return None
        raise


def check_consistency(bundle: Path, manifest: dict, manifest_sha: str) -> None:
    """SHA256SUMS and bundle.env are unsigned: they must say exactly what the signed manifest says."""
    bundle = Path(bundle)
    sums = _root_sums(bundle)
    for c in manifest["chunks"]:
        if sums.get(c["name"]) != c["sha256"]:
            raise AirlockError(f"SHA256SUMS disagrees with the signed manifest about {c['name']}", where=SUMS,
                               fix="the bundle was altered after signing: do not install it")
    if sums.get("MANIFEST.json") not in (None, manifest_sha):
        raise AirlockError("SHA256SUMS disagrees with MANIFEST.json", where=SUMS,
                           fix="the bundle was altered after signing: do not install it")
    from_file = dict(line.split("=", 1) for line in (bundle / ENV_INFO).read_text().splitlines() if "=" in line) \
        if (bundle / ENV_INFO).is_file() else {}
    env = manifest["env"]
    blob = manifest["blobs"].get(env.get("sha256") or "", {})
    want = {"NAME": manifest["name"], "VERSION": manifest["version"],
            "RELEASE": release_id(manifest, manifest_sha), "ENV_MODE": env["mode"],
            "ENV_SHA256": env.get("sha256", ""), "ENV_OFFSET": "" if blob.get("offset") is None else str(blob["offset"])}
    for key, value in want.items():
        if from_file.get(key) != str(value):
            raise AirlockError(f"bundle.env {key} disagrees with the signed manifest", where=ENV_INFO,
                               fix="the bundle was altered after signing: do not install it")


def verify_bundle(bundle: Path, trusted_key: Path | None = None, *, insecure_no_signature: bool = False,
                  full: bool = True, advance=None) -> dict:
    """Everything that can be checked without installing. Returns a report; raises AirlockError on any failure."""
    bundle = Path(bundle)
    manifest, raw = load_manifest(bundle)
    manifest_sha = hashlib.sha256(raw).hexdigest()
    key_id = check_signature(bundle, raw, trusted_key_path(trusted_key), insecure_no_signature)
    check_consistency(bundle, manifest, manifest_sha)
    report = check_chunks(bundle, manifest["chunks"], full=full, advance=advance)
    if problems := describe_problems(report):
        raise AirlockError("chunks missing or damaged:\n" + problems, where=str(bundle),
                           fix="copy ONLY the chunks named above again from the media, then rerun")
    for name, digest in _root_sums(bundle).items():
        if not name.startswith("chunks/") and (not (bundle / name).is_file() or sha256_path(bundle / name) != digest):
            raise AirlockError(f"{name} is missing or damaged", where=str(bundle), fix=f"copy {name} again")
    return {"name": manifest["name"], "version": manifest["version"], "manifest_sha256": manifest_sha,
            "key_id": key_id, "signed": key_id is not None, "chunks": len(manifest["chunks"]),
            "files": len(manifest["files"]), "payload_size": manifest["payload_size"], "manifest": manifest}


def _root_sums(bundle: Path) -> dict[str, str]:
    out = {}
    if (bundle / SUMS).is_file():
        for line in (bundle / SUMS).read_text().splitlines():
            digest, _, name = line.partition("  ")
            out[name] = digest
    return out

"""minisign's file formats (public key, secret key, signature), with Ed25519 from `cryptography` (or, in a bare
venv, installer.ed25519 for verification).

Signatures use minisign's prehashed algorithm "ED": Ed25519 over BLAKE2b-512(file), followed by a trusted comment
and a global signature over (signature || trusted comment), so stock `minisign -Vm FILE -p KEY` verifies them.
Secret keys are written with the "no password" KDF setting (minisign -W); protect them with file permissions.

Formats (base64 payloads on the second line of each file, after an "untrusted comment:" line):
  public key  = "Ed" | key id (8 bytes) | public key (32)
  secret key  = "Ed" | kdf "\\0\\0" | "B2" | salt (32) | opslimit (8) | memlimit (8) | key id (8) | sk (64) | checksum (32)
                checksum = BLAKE2b-256("Ed" | key id | sk), sk = seed (32) | public key (32)
  signature   = "ED" | key id (8) | Ed25519(BLAKE2b-512(file)) (64), then "trusted comment: ...", then
                base64(Ed25519(signature (64) | trusted comment bytes))
"""

import base64
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import AirlockError


@dataclass
class PublicKey:
    key_id: bytes
    raw: bytes

    @property
    def id_hex(self) -> str:  # how minisign prints key ids: the 8 bytes as a little-endian number, in hex
        return f"{int.from_bytes(self.key_id, 'little'):016X}"


@dataclass
class SecretKey:
    key_id: bytes
    seed: bytes
    public: bytes


def _b64_line(path: Path, text: str, what: str) -> tuple[str, bytes]:
    lines = [line.strip() for line in text.splitlines()]
    if len(lines) < 2 or not lines[0].startswith("untrusted comment:"):
        raise AirlockError(f"not a minisign {what} file", where=str(path), fix=f"give a minisign {what} file")
    try:
        return lines[0], base64.b64decode(lines[1], validate=True)
    except ValueError:
        raise AirlockError(f"damaged minisign {what} (bad base64)", where=str(path), fix="use an intact copy") from None


def read_public_key(path: Path) -> PublicKey:
    path = Path(path)
    if not path.is_file():
        raise AirlockError("trusted public key not found", where=str(path),
                           fix="pass --trusted-key FILE or set AIRLOCK_TRUSTED_KEY to the site's minisign public key")
    _, data = _b64_line(path, path.read_text(errors="replace"), "public key")
    if len(data) != 42 or data[:2] != b"Ed":
        raise AirlockError("not an Ed25519 minisign public key", where=str(path), fix="use a minisign public key")
    return PublicKey(data[2:10], data[10:42])


def read_secret_key(path: Path) -> SecretKey:
    path = Path(path)
    if not path.is_file():
        raise AirlockError("signing key not found", where=str(path), fix="create one with `airlock keys generate`")
    _, data = _b64_line(path, path.read_text(errors="replace"), "secret key")
    if len(data) != 158 or data[:2] != b"Ed" or data[4:6] != b"B2":
        raise AirlockError("not an Ed25519 minisign secret key", where=str(path), fix="use a minisign secret key")
    if data[2:4] != b"\0\0":
        raise AirlockError("this secret key is password-protected", where=str(path),
                           fix="use a key made by `airlock keys generate` (or `minisign -G -W`)")
    key_id, sk, checksum = data[54:62], data[62:126], data[126:158]
    if hashlib.blake2b(b"Ed" + key_id + sk, digest_size=32).digest() != checksum:
        raise AirlockError("secret key checksum mismatch", where=str(path), fix="the key file is damaged")
    return SecretKey(key_id, sk[:32], sk[32:])


def generate(secret_path: Path, public_path: Path) -> PublicKey:
    """Write a new key pair: the secret key 0600 (created with that mode, never world-readable), public 0644."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = os.urandom(8)
    sk = seed + public
    checksum = hashlib.blake2b(b"Ed" + key_id + sk, digest_size=32).digest()
    blob = b"Ed" + b"\0\0" + b"B2" + bytes(32) + bytes(8) + bytes(8) + key_id + sk + checksum
    pk = PublicKey(key_id, public)
    secret_path, public_path = Path(secret_path), Path(public_path)
    secret_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"untrusted comment: minisign secret key {pk.id_hex} (unencrypted)\n"
                 f"{base64.b64encode(blob).decode()}\n")
    public_path.write_text(f"untrusted comment: minisign public key {pk.id_hex}\n"
                           f"{base64.b64encode(b'Ed' + key_id + public).decode()}\n")
    return pk


def sign(data: bytes, key: SecretKey, trusted_comment: str | None = None) -> str:
    """The text of a .minisig file for `data`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(key.seed)
    signature = private.sign(hashlib.blake2b(data, digest_size=64).digest())
    trusted = trusted_comment or f"timestamp:{int(time.time())}"
    if "\n" in trusted or "\r" in trusted:
        raise AirlockError("a trusted comment must be one line")
    global_sig = private.sign(signature + trusted.encode())
    return (f"untrusted comment: signature from airlock secret key {PublicKey(key.key_id, key.public).id_hex}\n"
            f"{base64.b64encode(b'ED' + key.key_id + signature).decode()}\n"
            f"trusted comment: {trusted}\n"
            f"{base64.b64encode(global_sig).decode()}\n")


SIGNATURE_LINES = (  # a .minisig, line by line; install.sh checks the same patterns with grep -E
    re.compile(r"untrusted comment: [\t -~]{0,1024}"),
    re.compile(r"[A-Za-z0-9+/]{99}="),  # base64 of "ED" | key id (8) | signature (64)
    re.compile(r"trusted comment: [\t -~]{0,1024}"),
    re.compile(r"[A-Za-z0-9+/]{86}=="),  # base64 of the global signature (64)
)


def parse_signature(raw: bytes, where: str = "signature") -> tuple[bytes, bytes, bytes, str, bytes]:
    """(algorithm, key id, signature, trusted comment, global signature) of a .minisig, checked line by line."""
    from .format import MAX_SIGNATURE, check_text

    if len(raw) > MAX_SIGNATURE:
        raise AirlockError("the signature file is too large", where=where, fix="copy the bundle again")
    lines = check_text(raw, where, allow_tab=True)
    if len(lines) != 4 or not all(p.fullmatch(line) for p, line in zip(SIGNATURE_LINES, lines)):
        raise AirlockError("the signature file is malformed (four lines: untrusted comment, signature, trusted "
                           "comment, global signature)", where=where, fix="copy the bundle again")
    blob = base64.b64decode(lines[1], validate=True)
    return blob[:2], blob[2:10], blob[10:], lines[2][len("trusted comment: "):], \
        base64.b64decode(lines[3], validate=True)


def _ed25519_verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """`cryptography` where the env has it; the standard-library implementation in a bare venv."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        from .ed25519 import verify

        return verify(public, signature, message)
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        return True
    except InvalidSignature:
        return False


def verify(data: bytes, signature_raw: bytes, key: PublicKey, where: str = "signature") -> str:
    """Check a .minisig (prehashed "ED" only) against `data` and `key`; returns the trusted comment."""
    algorithm, key_id, signature, trusted, global_sig = parse_signature(signature_raw, where)
    if algorithm != b"ED":
        raise AirlockError(f"signature algorithm {algorithm!r} refused (only minisign's prehashed 'ED')",
                           where=where, fix="sign with `airlock bundle create` or a current minisign")
    if key_id != key.key_id:
        raise AirlockError(
            f"signed by key {int.from_bytes(key_id, 'little'):016X}, but the trusted key is {key.id_hex}",
            where=where, fix="this bundle was not signed by your site's trusted key: do not install it "
            "(or configure the right trusted public key)")
    message = hashlib.blake2b(data, digest_size=64).digest()
    if not (_ed25519_verify(key.raw, signature, message)
            and _ed25519_verify(key.raw, global_sig, signature + trusted.encode())):
        raise AirlockError("BAD signature: SHA256SUMS was changed after signing, or the signature is forged",
                           where=where, fix="do not install this bundle; get an intact copy from the builder")
    return trusted

"""API keys for `airlock serve`: shown once, stored only as salted SHA-256 digests, compared in constant time.

    airlock keys api create --name app1 [--rpm 60] [--tpm 20000] [--quota-tokens 1000000]
                            [--expires 2027-01-31] [--models m1,m2]
    airlock keys api list | revoke NAME | rotate NAME

A key reads `alk_<name>_<43 random characters>` (256 random bits): the name lets the server find the record
without trying every hash, and the randomness is what a caller must know. Such keys cannot be guessed, so a salted
SHA-256 is the right store (as for the access tokens of the big hosted APIs); a slow password hash would only
cost every request time. The store is <home>/serve/keys.json, written atomically, mode 0600.
"""

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import AirlockError
from ..paths import home

KEY = re.compile(r"alk_([a-z0-9][a-z0-9-]{0,31})_([A-Za-z0-9_-]{43})")
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


@dataclass
class ApiKey:
    name: str
    salt: str
    digest: str
    created: str
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (prompt + completion) per minute
    quota_tokens: int | None = None  # tokens over the key's life
    expires: str | None = None  # YYYY-MM-DD: valid through that day (UTC)
    models: list[str] = field(default_factory=list)  # empty: every model the server serves
    revoked: str | None = None  # when
    admin: bool = False  # may read /metrics, which names every key and its counts

    def expired(self, now: float | None = None) -> bool:
        return bool(self.expires) and time.strftime("%Y-%m-%d", time.gmtime(now)) > self.expires

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models


def store_path() -> Path:
    return home() / "serve" / "keys.json"


def load(path: Path | None = None) -> dict[str, ApiKey]:
    path = path or store_path()
    if not path.is_file():
        return {}
    try:
        return {k["name"]: ApiKey(**k) for k in json.loads(path.read_text())["keys"]}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AirlockError(f"the key store is damaged ({exc})", where=str(path),
                           fix="restore it from a backup, or move it aside and create the keys again") from None


def save(keys: dict[str, ApiKey], path: Path | None = None) -> None:
    path = path or store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"keys": [asdict(k) for k in keys.values()]}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def overview(path: Path | None = None) -> list[dict]:
    """Each key's state, limits and tokens used so far (never its secret), for `keys api list` and the TUI."""
    usage_file = home() / "serve" / "usage.json"
    usage = json.loads(usage_file.read_text()) if usage_file.is_file() else {}
    return [{"name": k.name, "state": "revoked" if k.revoked else ("expired" if k.expired() else "active"),
             "rpm": k.rpm or "-", "tpm": k.tpm or "-", "quota": k.quota_tokens or "-", "used": usage.get(k.name, 0),
             "expires": k.expires or "-", "models": ",".join(k.models) or "all", "admin": "yes" if k.admin else "no"}
            for k in load(path).values()]


def _audit(action: str, **facts) -> None:
    from ..registry import audit

    audit(action, **facts)


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def _check_limits(rpm, tpm, quota_tokens, expires, models) -> None:
    for label, value in (("--rpm", rpm), ("--tpm", tpm), ("--quota-tokens", quota_tokens)):
        if value is not None and value < 1:
            raise AirlockError(f"{label} must be a positive number", where=label, fix="or leave it out for no limit")
    if expires is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", expires):
        raise AirlockError(f"--expires {expires!r}", where="--expires", fix="a date as YYYY-MM-DD (valid through it)")
    for m in models or []:
        if not m or "," in m:
            raise AirlockError(f"model {m!r}", where="--models", fix="model ids separated by commas")


def create(name: str, *, rpm=None, tpm=None, quota_tokens=None, expires=None, models=None, admin: bool = False,
           path: Path | None = None) -> str:
    """Add a key; returns its secret text, which is never stored."""
    if not NAME.fullmatch(name):
        raise AirlockError(f"key name {name!r}", where="--name", fix="lower-case letters, digits and '-', up to 32")
    _check_limits(rpm, tpm, quota_tokens, expires, models)
    keys = load(path)
    if name in keys and not keys[name].revoked:
        raise AirlockError(f"a key named {name!r} exists", where="--name",
                           fix=f"choose another name, or `airlock keys api rotate {name}` for a new secret")
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    keys[name] = ApiKey(name, salt, _digest(salt, secret), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        rpm, tpm, quota_tokens, expires, list(models or []), admin=admin)
    save(keys, path)
    _audit("api-key-create", name=name, rpm=rpm, tpm=tpm, quota_tokens=quota_tokens, expires=expires,
           models=list(models or []), admin=admin)
    return f"alk_{name}_{secret}"


def revoke(name: str, path: Path | None = None) -> None:
    keys = load(path)
    if name not in keys:
        raise AirlockError(f"no key named {name!r}", where="keys", fix="see `airlock keys api list`")
    keys[name].revoked = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save(keys, path)
    _audit("api-key-revoke", name=name)


def rotate(name: str, path: Path | None = None) -> str:
    """A new secret for `name` with the same limits; the old secret stops working at once."""
    keys = load(path)
    if name not in keys:
        raise AirlockError(f"no key named {name!r}", where="keys", fix="see `airlock keys api list`")
    old = keys[name]
    secret, salt = secrets.token_urlsafe(32), secrets.token_hex(16)
    old.salt, old.digest, old.revoked = salt, _digest(salt, secret), None
    save(keys, path)
    _audit("api-key-rotate", name=name)
    return f"alk_{name}_{secret}"


def authenticate(text: str | None, keys: dict[str, ApiKey]) -> tuple[ApiKey | None, str]:
    """(the key, "") when `text` is a valid, live key; (None, why) otherwise. Constant-time digest compare."""
    match = KEY.fullmatch(text or "")
    record = keys.get(match[1]) if match else None
    if record is None:
        _digest("00" * 16, "x" * 43)  # the same work whether or not the name exists
        return None, "missing or invalid API key"
    if not hmac.compare_digest(_digest(record.salt, match[2]), record.digest):
        return None, "missing or invalid API key"
    if record.revoked:
        return None, "this API key was revoked"
    if record.expired():
        return None, f"this API key expired on {record.expires}"
    return record, ""

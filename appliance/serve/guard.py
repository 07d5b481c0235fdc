"""Who may call `airlock serve`, and how much: API keys (re-read when the store changes, so a revoke takes effect
at once), requests and tokens per minute (moving windows from the `limits` library), token quotas over a key's
life (totals kept in <home>/serve/usage.json), and the audit record of every request.

Each check gives the HTTP status the OpenAI API uses: 401 for a missing, wrong, revoked or expired key, 403 for a
model the key may not use, 429 with Retry-After over a rate, 429 with a clear body over a quota.
"""

import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from limits import RateLimitItemPerMinute, storage, strategies

from . import keys as keystore


@dataclass
class Denied(Exception):
    status: int
    message: str
    kind: str
    retry_after: int | None = None


class Guard:
    def __init__(self, open_access: bool, home: Path, log_prompts: bool = False):
        self.open_access = open_access  # loopback with no keys at all: local use without a key
        self.store = keystore.store_path()
        self.usage_path = home / "serve" / "usage.json"
        self.log_prompts = log_prompts
        self.limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.lock = threading.Lock()
        self._keys, self._mtime = {}, None
        self.usage: dict[str, int] = json.loads(self.usage_path.read_text()) if self.usage_path.is_file() else {}
        self._dirty, self._flushed = False, 0.0

    def keys(self) -> dict:
        mtime = self.store.stat().st_mtime_ns if self.store.is_file() else None
        if mtime != self._mtime:
            self._keys, self._mtime = keystore.load(self.store), mtime
        return self._keys

    def live_keys(self) -> int:
        return sum(1 for k in self.keys().values() if not k.revoked and not k.expired())

    def authenticate(self, authorization: str | None):
        """The caller's key (None for open local access), or Denied(401)."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        # the scheme is case-insensitive (RFC 7235); a bare key with no scheme is taken as it is
        token = (credentials.strip() if scheme.lower() == "bearer" else "" if credentials else scheme) or None
        if token is None and self.open_access and not self.keys():
            return None
        key, why = keystore.authenticate(token, self.keys())
        if key is None:
            raise Denied(401, why, "invalid_api_key")
        return key

    def admit(self, key, model: str, prompt_tokens: int) -> None:
        """Model permission, quota, requests per minute and tokens per minute, in that order."""
        if key is None:
            return
        if not key.allows(model):
            raise Denied(403, f"the key {key.name!r} may not use the model {model!r}", "permission_denied")
        if key.quota_tokens is not None and self.usage.get(key.name, 0) >= key.quota_tokens:
            raise Denied(429, f"the key {key.name!r} has used its quota of {key.quota_tokens} tokens; ask the "
                         "administrator for more (airlock keys api create/rotate)", "insufficient_quota")
        for limit, cost, what in ((key.rpm, 1, "requests"), (key.tpm, max(prompt_tokens, 1), "tokens")):
            if limit is None:
                continue
            item = RateLimitItemPerMinute(limit)
            if not self.limiter.hit(item, f"{what}:{key.name}", cost=cost):
                reset = self.limiter.get_window_stats(item, f"{what}:{key.name}").reset_time
                raise Denied(429, f"rate limit: {limit} {what} per minute for the key {key.name!r}",
                             "rate_limit_exceeded", retry_after=max(1, math.ceil(reset - time.time())))

    def charge(self, key, completion_tokens: int, prompt_tokens: int) -> None:
        """Count what a request used: its completion against tokens per minute, both against the quota."""
        if key is None:
            return
        if key.tpm is not None and completion_tokens:
            self.limiter.hit(RateLimitItemPerMinute(key.tpm), f"tokens:{key.name}", cost=completion_tokens)
        with self.lock:
            self.usage[key.name] = self.usage.get(key.name, 0) + prompt_tokens + completion_tokens
            self._dirty = True
        if time.monotonic() - self._flushed > 1.0:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            if not self._dirty:
                return
            data, self._dirty, self._flushed = json.dumps(self.usage), False, time.monotonic()
        self.usage_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.usage_path.with_name(f".usage.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(data)
        os.replace(tmp, self.usage_path)

    def audit(self, key, model: str | None, status: int, prompt_tokens: int = 0, completion_tokens: int = 0,
              **facts) -> None:
        """One audit line per request: who, which model, tokens, status (the prompt only with --log-prompts)."""
        from ..registry import audit

        if not self.log_prompts:
            facts.pop("prompt", None)
        audit("serve-request", key=key.name if key else None, model=model, status=status,
              prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, **facts)

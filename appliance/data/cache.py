"""The tokenized-data cache: home()/cache/tokenized/<key>.json, key = data sha256 + tokenizer + settings.

A cache entry is only ever a pure function of its key, so a stale entry cannot exist; a damaged one is ignored.
Bump VERSION when rendering or cleaning changes what an entry would hold.
"""

import hashlib
import json

from ..atomic import write_text
from ..paths import home

VERSION = 1


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the token ids: vocabulary and rules (fast tokenizers serialize), specials, chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else str(sorted(tokenizer.get_vocab().items()))
    return digest(body, str(tokenizer.chat_template), json.dumps(tokenizer.special_tokens_map, sort_keys=True,
                                                                  default=str))


def key(data_sha256: str, tokenizer, settings: dict) -> str:
    return digest(str(VERSION), data_sha256, tokenizer_fingerprint(tokenizer), json.dumps(settings, sort_keys=True))


def load(cache_key: str) -> dict | None:
    path = home() / "cache" / "tokenized" / f"{cache_key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def store(cache_key: str, entry: dict) -> None:
    write_text(home() / "cache" / "tokenized" / f"{cache_key}.json", json.dumps(entry, separators=(",", ":")))

"""Shaping a list of conversations before training; every function returns what it removed, never drops silently.

- dedupe: "exact" (same messages) or "normalized" (same after NFKC, case folding, dropping punctuation and
  collapsing whitespace); the first occurrence stays.
- take: max_samples (the first N, as LLaMA-Factory does, so a small run sees the file's head).
- split: a seeded, deterministic hold-out for evaluation (a ratio, or a count when >= 1).
- cut: cutoff_len on tokenized examples, truncating or dropping the long ones.
"""

import json
import random
import unicodedata

from ..errors import AirlockError
from .conversation import Conversation
from .render import IGNORE


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return " ".join(text.split())


def key(conversation: Conversation, mode: str) -> str:
    # Tool calls and definitions count: the same words with another call are another example.
    parts = [[m["role"], m["content"] + (json.dumps(m["tool_calls"], sort_keys=True) if m.get("tool_calls") else "")]
             for m in conversation.messages]
    if conversation.tools:
        parts.append(["tools", json.dumps(conversation.tools, sort_keys=True)])
    parts += [["chosen", conversation.chosen or ""], ["rejected", conversation.rejected or ""]]
    if mode == "normalized":
        parts = [[role, normalize(text)] for role, text in parts]
    return json.dumps(parts, ensure_ascii=False)


def duplicates(conversations: list[Conversation], mode: str) -> list[tuple[int, int]]:
    """(duplicate index, index of the first occurrence) pairs under `mode` (exact | normalized)."""
    seen, pairs = {}, []
    for i, conv in enumerate(conversations):
        k = key(conv, mode)
        if k in seen:
            pairs.append((i, seen[k]))
        else:
            seen[k] = i
    return pairs


def dedupe(conversations: list[Conversation], mode: str) -> tuple[list[Conversation], int]:
    if mode == "none":
        return conversations, 0
    drop = {i for i, _ in duplicates(conversations, mode)}
    return [c for i, c in enumerate(conversations) if i not in drop], len(drop)


def take(conversations: list[Conversation], max_samples: int | None) -> tuple[list[Conversation], int]:
    if max_samples is None or len(conversations) <= max_samples:
        return conversations, 0
    return conversations[:max_samples], len(conversations) - max_samples


def split(conversations: list, val_size: float, seed: int) -> tuple[list, list]:
    """(train, eval): val_size < 1 is a ratio, >= 1 a count; the same seed gives the same split."""
    if not val_size:
        return list(conversations), []
    n_eval = int(val_size) if val_size >= 1 else max(1, round(len(conversations) * val_size))
    if n_eval >= len(conversations):  # holding out everything (or all but a scrap) is a setting mistake
        raise AirlockError(f"val_size {val_size} leaves no training data ({len(conversations)} conversations)",
                           where="data.val_size", fix="use a smaller ratio or count")
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    train = [c for i, c in enumerate(conversations) if i not in held]
    return train, [c for i, c in enumerate(conversations) if i in held]


def cut(examples: list[dict], cutoff_len: int, policy: str) -> tuple[list[dict], dict]:
    """Apply cutoff_len to {"input_ids", "labels"} examples; counts say what happened to the long ones.

    A truncated example whose trained tokens all fell past the cut teaches nothing and is dropped (counted).
    """
    kept, counts = [], {"truncated": 0, "dropped_too_long": 0, "dropped_nothing_to_learn": 0}
    for ex in examples:
        if len(ex["input_ids"]) > cutoff_len:
            if policy == "drop":
                counts["dropped_too_long"] += 1
                continue
            ex = {"input_ids": ex["input_ids"][:cutoff_len], "labels": ex["labels"][:cutoff_len]}
            counts["truncated"] += 1
        if all(label == IGNORE for label in ex["labels"]):
            counts["dropped_nothing_to_learn"] += 1
            continue
        kept.append(ex)
    return kept, counts

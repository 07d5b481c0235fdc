"""prepare(): a DataConfig + tokenizer -> tokenized train/eval samples and a report of everything cleaning did.

Order of work (each step counted in the report, nothing dropped silently):
load (DataError on any bad record) -> duplicates removed (exact or normalized) -> max_samples -> validation split
(seeded) -> render with the chat template -> cutoff (truncate or drop) -> samples without any trained token dropped.
"""

import random
import re
import unicodedata
from dataclasses import dataclass, field

from ..errors import AirlockError
from .config import DataConfig
from .conversation import Conversation
from .load import load_conversations
from .render import IGNORE, render


@dataclass
class Prepared:
    train: list[dict]  # {"input_ids": [...], "labels": [...]}
    eval: list[dict]
    report: dict = field(default_factory=dict)
    sha256: str = ""


def _exact_key(conv: Conversation) -> tuple:
    return tuple((m["role"], m["content"]) for m in conv.for_sft())


_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """NFKC, case-folded, punctuation and whitespace runs collapsed: 'Hello,  World!' == 'hello world'."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _normalized_key(conv: Conversation) -> tuple:
    return tuple((m["role"], normalize_text(m["content"])) for m in conv.for_sft())


def dedupe(conversations: list[Conversation], mode: str) -> tuple[list[Conversation], int]:
    """Keep the first of each duplicate group; returns (kept, removed count)."""
    if mode == "none":
        return conversations, 0
    key = _exact_key if mode == "exact" else _normalized_key
    seen, kept = set(), []
    for conv in conversations:
        k = key(conv)
        if k not in seen:
            seen.add(k)
            kept.append(conv)
    return kept, len(conversations) - len(kept)


def split(conversations: list, val_size: float, seed: int) -> tuple[list, list]:
    """A seeded validation split: val_size < 1 is a ratio, >= 1 a count. Deterministic for a seed."""
    if not val_size:
        return conversations, []
    count = int(val_size) if val_size >= 1 else max(1, round(len(conversations) * val_size))
    if count >= len(conversations):
        raise AirlockError(f"val_size {val_size} leaves no training data ({len(conversations)} conversations)",
                           where="data.val_size", fix="use a smaller ratio or count")
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return ([c for i, c in enumerate(conversations) if i not in held],
            [c for i, c in enumerate(conversations) if i in held])


def percentiles(lengths: list[int]) -> dict:
    if not lengths:
        return {}
    ordered = sorted(lengths)

    def pick(q):
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]

    return {"min": ordered[0], "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1],
            "mean": round(sum(ordered) / len(ordered), 1)}


def tokenize(conversations: list[Conversation], tokenizer, cfg: DataConfig, counts: dict) -> list[dict]:
    samples = []
    for conv in conversations:
        ids, labels = render(conv, tokenizer, cfg.train_on)
        counts["lengths"].append(len(ids))
        if len(ids) > cfg.cutoff_len:
            counts["over_cutoff"] += 1
            if cfg.cutoff_policy == "drop":
                counts["dropped_cutoff"] += 1
                continue
            ids, labels = ids[: cfg.cutoff_len], labels[: cfg.cutoff_len]
            counts["truncated"] += 1
        if all(label == IGNORE for label in labels):
            counts["dropped_no_target"] += 1  # truncation left no reply to learn from
            continue
        samples.append({"input_ids": ids, "labels": labels})
    return samples


def prepare(cfg: DataConfig, tokenizer) -> Prepared:
    """Load, clean, split and tokenize `cfg`'s data; raises DataError / AirlockError on bad input."""
    loaded = load_conversations(cfg.path, cfg.format, cfg.dataset)
    conversations, removed = dedupe(loaded.conversations, cfg.dedupe)
    cut = 0
    if cfg.max_samples is not None and len(conversations) > cfg.max_samples:
        cut = len(conversations) - cfg.max_samples
        conversations = conversations[: cfg.max_samples]
    sha = loaded.sha256
    if cfg.eval_path:
        held = load_conversations(cfg.eval_path, cfg.format)
        train_convs, eval_convs = conversations, held.conversations
        sha = f"{sha}+{held.sha256}"[:64] if held.sha256 != sha else sha
    else:
        train_convs, eval_convs = split(conversations, cfg.val_size, cfg.seed)
    counts = {"lengths": [], "over_cutoff": 0, "truncated": 0, "dropped_cutoff": 0, "dropped_no_target": 0}
    train = tokenize(train_convs, tokenizer, cfg, counts)
    eval_ = tokenize(eval_convs, tokenizer, cfg, counts)
    lengths = counts.pop("lengths")
    report = {
        "files": [str(f) for f in loaded.files],
        "format": loaded.format,
        "records": loaded.records,
        "conversations": len(loaded.conversations),
        "duplicates_removed": removed,
        "dedupe": cfg.dedupe,
        "max_samples_cut": cut,
        "cutoff_len": cfg.cutoff_len,
        "cutoff_policy": cfg.cutoff_policy,
        **counts,
        "train_samples": len(train),
        "eval_samples": len(eval_),
        "trained_tokens": sum(sum(1 for x in s["labels"] if x != IGNORE) for s in train),
        "token_lengths": percentiles(lengths),
        "warnings": [p.render() for p in loaded.warnings],
    }
    if not train:
        raise AirlockError("no training samples are left after cleaning: " + ", ".join(
            f"{k}={v}" for k, v in report.items() if isinstance(v, int) and v), where=str(cfg.path),
            fix="raise data.cutoff_len, use cutoff_policy truncate, or check the data")
    return Prepared(train, eval_, report, sha)

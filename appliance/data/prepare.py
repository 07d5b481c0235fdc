"""prepare(): DataConfig + tokenizer -> tokenized train/eval examples and a report of every count.

    from appliance.data import DataConfig, prepare
    prepared = prepare(DataConfig(path="train.jsonl", val_size=0.1), tokenizer)

Order: load and validate (DataError lists every problem; columns no format reads stop it unless
data.ignore_columns names them) -> dedupe -> per dataset num_samples and max_samples, then mix_strategy
(appliance/data/mix.py) -> split (or the eval file) -> render with the chat template (data.chat_template, set on
the tokenizer so the saved adapter carries it) -> cutoff. Results are cached under home()/cache/tokenized keyed
by the data's sha256, the tokenizer's files and these settings, so a resumed or repeated run skips the work.
"""

from dataclasses import asdict, dataclass, field

from ..errors import AirlockError
from . import cache, clean
from .columns import refuse_unused
from .config import DataConfig
from .load import load_conversations
from .mix import mix
from .render import render
from .template import apply


@dataclass
class Prepared:
    train: list[dict]  # {"input_ids": [...], "labels": [...]}
    eval: list[dict]
    report: dict = field(default_factory=dict)
    sha256: str = ""  # of the training data (and the eval file, when there is one)


def prepare(cfg: DataConfig, tokenizer) -> Prepared:
    loaded = load_conversations(cfg.path, cfg.format, cfg.dataset)
    refuse_unused(loaded.unused, cfg.ignore_columns, where=str(cfg.path))
    eval_loaded = load_conversations(cfg.eval_path, cfg.format) if cfg.eval_path else None
    if eval_loaded is not None:
        refuse_unused(eval_loaded.unused, cfg.ignore_columns, where=str(cfg.eval_path))
    template = apply(tokenizer, cfg.chat_template)  # before the cache key, which includes the template
    sha = loaded.sha256 if eval_loaded is None else cache.digest(loaded.sha256, eval_loaded.sha256)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("path", "eval_path")}
    cache_key = cache.key(sha, tokenizer, settings)
    if (hit := cache.load(cache_key)) is not None:
        return Prepared(hit["train"], hit["eval"], {**hit["report"], "cached": True}, sha)

    report = {"files": [str(f) for f in loaded.files], "format": loaded.format, "records": loaded.records,
              "conversations": len(loaded.conversations), "warnings": len(loaded.warnings),
              "chat_template": template, "ignored_columns": {u.name: u.records for u in loaded.unused}}
    conversations, report["removed_duplicates"] = clean.dedupe(loaded.conversations, cfg.dedupe)
    conversations, mixed = mix(conversations, cfg, loaded.num_samples)
    report.update(mixed)
    if eval_loaded is not None:
        train_convs, eval_convs = conversations, eval_loaded.conversations
    else:
        train_convs, eval_convs = clean.split(conversations, cfg.val_size, cfg.seed)
    train, counts = clean.cut([_example(c, tokenizer, cfg) for c in train_convs], cfg.cutoff_len, cfg.cutoff_policy)
    evals, eval_counts = clean.cut([_example(c, tokenizer, cfg) for c in eval_convs], cfg.cutoff_len,
                                   cfg.cutoff_policy)
    report.update(counts)
    report["eval_" + "cutoff"] = eval_counts
    report["train_examples"], report["eval_examples"] = len(train), len(evals)
    report["train_tokens"] = sum(len(ex["input_ids"]) for ex in train)
    report["trained_tokens"] = sum(sum(1 for x in ex["labels"] if x != -100) for ex in train)
    if not train:
        raise AirlockError(f"no training examples left after cleaning ({_summary(report)})", where=str(cfg.path),
                           fix="raise cutoff_len, use cutoff_policy=truncate, or lower val_size")
    cache.store(cache_key, {"train": train, "eval": evals, "report": report})
    return Prepared(train, evals, report, sha)


def _example(conversation, tokenizer, cfg: DataConfig) -> dict:
    input_ids, labels = render(conversation, tokenizer, cfg.train_on)
    return {"input_ids": input_ids, "labels": labels}


def _summary(report: dict) -> str:
    keys = ("conversations", "removed_duplicates", "removed_max_samples", "truncated", "dropped_too_long",
            "dropped_nothing_to_learn")
    return ", ".join(f"{k}={report[k]}" for k in keys if k in report)

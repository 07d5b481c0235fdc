"""prepare(): DataConfig + tokenizer -> tokenized train/eval examples and a report of every count.

    from appliance.data import DataConfig, prepare
    prepared = prepare(DataConfig(path="train.jsonl", val_size=0.1), tokenizer)
    prepared = prepare(DataConfig(path="corpus.txt", cutoff_len=512), tokenizer, stage="pt")   # documents

Order: load and validate (DataError lists every problem; columns no format reads stop it unless
data.ignore_columns names them) -> dedupe -> per dataset num_samples and max_samples, then mix_strategy
(appliance/data/mix.py) -> split (or the eval file) -> render with the chat template (data.chat_template, set on
the tokenizer so the saved adapter carries it) -> cutoff. Stage pt reads documents instead of conversations
through the same steps (appliance/data/pretrain.py: no chat template, every token trained, EOS after each
document, long documents split into rows of cutoff_len). Results are cached under home()/cache/tokenized keyed
by the data's sha256, the tokenizer's files and these settings, so a resumed or repeated run skips the work.
"""

from dataclasses import asdict, dataclass, field

from ..errors import AirlockError
from . import cache, clean, pretrain
from .columns import refuse_unused
from .config import DataConfig
from .mix import mix
from .pretrain import load_for_stage
from .render import render
from .template import apply


@dataclass
class Prepared:
    train: list[dict]  # {"input_ids": [...], "labels": [...]}
    eval: list[dict]
    report: dict = field(default_factory=dict)
    sha256: str = ""  # of the training data (and the eval file, when there is one)


def prepare(cfg: DataConfig, tokenizer, stage: str = "sft") -> Prepared:
    text = stage == "pt"
    loaded = load_for_stage(stage, cfg.path, cfg.format, cfg.dataset, cfg.skip_invalid_records)
    refuse_unused(loaded.unused, cfg.ignore_columns, where=str(cfg.path))
    eval_loaded = load_for_stage(stage, cfg.eval_path, cfg.format, skip=cfg.skip_invalid_records) if cfg.eval_path else None
    if eval_loaded is not None:
        refuse_unused(eval_loaded.unused, cfg.ignore_columns, where=str(cfg.eval_path))
    template = apply(tokenizer, cfg.chat_template)  # before the cache key, which includes the template
    sha = loaded.sha256 if eval_loaded is None else cache.digest(loaded.sha256, eval_loaded.sha256)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("path", "eval_path")}
    if text:  # the same files give other rows as documents; sft keys stay as they were (no entry goes stale)
        settings["stage"] = stage
    cache_key = cache.key(sha, tokenizer, settings)
    if (hit := cache.load(cache_key)) is not None:
        return Prepared(hit["train"], hit["eval"], {**hit["report"], "cached": True}, sha)

    report = {"files": [str(f) for f in loaded.files], "format": loaded.format, "records": loaded.records,
              ("documents" if text else "conversations"): len(loaded.conversations),
              "warnings": len(loaded.warnings),
              "chat_template": f"{template} (kept with the output, not rendered)" if text else template,
              "ignored_columns": {u.name: u.records for u in loaded.unused}}
    conversations, report["removed_duplicates"] = clean.dedupe(loaded.conversations, cfg.dedupe)
    conversations, mixed = mix(conversations, cfg, loaded.num_samples)
    report.update(mixed)
    if eval_loaded is not None:
        train_convs, eval_convs = conversations, eval_loaded.conversations
    else:
        train_convs, eval_convs = clean.split(conversations, cfg.val_size, cfg.seed)
    if text:
        train, counts = pretrain.rows(train_convs, tokenizer, cfg.cutoff_len, cfg.cutoff_policy)
        evals, eval_counts = pretrain.rows(eval_convs, tokenizer, cfg.cutoff_len, cfg.cutoff_policy)
    else:
        train, counts = clean.cut([_example(c, tokenizer, cfg) for c in train_convs], cfg.cutoff_len,
                                  cfg.cutoff_policy)
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
    keys = ("conversations", "documents", "removed_duplicates", "removed_max_samples", "truncated",
            "split_documents", "dropped_too_long", "dropped_nothing_to_learn")
    return ", ".join(f"{k}={report[k]}" for k in keys if k in report)

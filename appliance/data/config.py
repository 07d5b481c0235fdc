"""DataConfig: the dataset settings shared by `airlock data check`, training configs and the TUI's data form."""

from dataclasses import dataclass
from typing import Literal

from ..errors import AirlockError
from ..schema import setting


@dataclass
class DataConfig:
    """Where the data is and how to shape it before training: the files or LLaMA-Factory datasets, how several are
    mixed, what is held out for evaluation, and how conversations become tokens. Each key's help is in its field's
    metadata (schema.setting; docs/config.md)."""

    path: str = setting("", "required: a .jsonl/.json/.csv/.parquet/.txt file or a dataset_info.json dir",
                        detail="Records in Alpaca or ShareGPT format (see format), {\"text\"} records or .txt lines "
                               "for stage pt; with a LLaMA-Factory directory, dataset names its entries.")
    format: Literal["auto", "alpaca", "sharegpt"] = setting(
        "auto", "auto detects Alpaca or ShareGPT per file; force one if detection guesses wrong")
    dataset: str | None = setting(
        None, "key(s) in dataset_info.json when path is a directory (several: comma-separated)",
        detail="Several keys are mixed by mix_strategy.")
    cutoff_len: int = setting(1024, "maximum tokens per sample (longer ones: see cutoff_policy)")
    cutoff_policy: Literal["truncate", "drop"] = setting(
        "truncate", "truncate samples longer than cutoff_len, or drop them")
    max_samples: int | None = setting(None, "the first N records of each dataset, before mixing (empty = all)")
    val_size: float = setting(
        0.0, "held out for evaluation: a ratio (0.1) or a number of conversations (20)",
        detail="Below 1 a ratio, from 1 up a whole number of conversations; 0 = no evaluation split.")
    eval_path: str | None = setting(None, "a separate evaluation file (instead of val_size)")
    dedupe: Literal["none", "exact", "normalized"] = setting(
        "none", "drop duplicate conversations: exact, normalized (case/space-insensitive) or none")
    train_on: Literal["assistant", "last", "all"] = setting(
        "assistant", "which tokens are trained: every assistant turn, only the last one, or all tokens")
    seed: int = setting(42, "seed for the train/eval split and shuffling")
    mix_strategy: Literal["concat", "interleave_under", "interleave_over"] = setting(
        "concat", "how several datasets are mixed: one after the other, or interleaved",
        detail="concat: one after the other; interleave_under: alternate (or draw by interleave_probs) until the "
               "first dataset runs out; interleave_over: until every dataset has been used once, repeating the "
               "shorter ones.")
    interleave_probs: list[float] = setting(
        help="one probability per dataset for interleaving, adding up to 1 (empty = in turn)", default_factory=list)
    ignore_columns: list[str] = setting(
        help="columns training may leave out (tools, images, id ...); see `airlock data check`",
        default_factory=list,
        detail="Any other dataset column or record key Airlock does not train on stops training.")
    skip_invalid_records: int = setting(
        0, "leave out up to N broken records (counted and named); 0 = refuse them",
        detail="LLaMA-Factory drops a record it cannot read with a warning; here a broken record stops training "
               "unless this allows it. A problem with a whole file is never skipped.")
    chat_template: str = setting(
        "", "the chat template: empty = the model's own, a catalog model id, or a .jinja file",
        detail="A catalog model id means that installed model's template; a Jinja file ends in .jinja or .j2.")

    def validate(self) -> None:
        if not str(self.path):
            raise AirlockError("no dataset path given", where="data.path",
                               fix="set data.path to a .jsonl/.json/.csv/.parquet file or a dataset_info.json directory")
        if self.cutoff_len < 8:
            raise AirlockError(f"cutoff_len {self.cutoff_len} is too small", where="data.cutoff_len",
                               fix="use at least 8 tokens (1024 is the default)")
        if self.skip_invalid_records < 0:
            raise AirlockError(f"skip_invalid_records {self.skip_invalid_records} must be 0 or more",
                               where="data.skip_invalid_records", fix="0 refuses broken records; N leaves out up to N")
        if self.max_samples is not None and self.max_samples < 1:
            raise AirlockError(f"max_samples {self.max_samples} must be at least 1", where="data.max_samples",
                               fix="leave it unset to keep every sample")
        if self.val_size < 0 or (self.val_size >= 1 and not float(self.val_size).is_integer()):
            raise AirlockError(f"val_size {self.val_size} is neither a ratio in [0, 1) nor a whole count",
                               where="data.val_size", fix="use e.g. 0.1 (10%) or 20 (conversations)")
        self._check_mixing()

    def datasets(self) -> list[str]:
        """The dataset_info.json keys named by `dataset`, in order ([] for a plain file)."""
        return [k.strip() for k in (self.dataset or "").split(",") if k.strip()]

    def _check_mixing(self) -> None:
        """LLaMA-Factory's rules for interleave_probs: only with interleaving, one per dataset, a distribution."""
        probs = self.interleave_probs
        if not probs:
            return
        where = "data.interleave_probs"
        if self.mix_strategy == "concat":
            raise AirlockError("interleave_probs only apply to interleaved mixing", where=where,
                               fix="set data.mix_strategy to interleave_under or interleave_over, or remove "
                                   "interleave_probs")
        names = self.datasets()
        if names and len(names) != len(probs):
            raise AirlockError(f"{len(probs)} interleave_probs for {len(names)} dataset(s) ({', '.join(names)})",
                               where=where, fix="give one probability per dataset, in the order of data.dataset")
        if any(p < 0 for p in probs) or sum(probs) <= 0:
            raise AirlockError(f"interleave_probs {probs} are not probabilities", where=where,
                               fix="use numbers >= 0 that add up to 1, e.g. 0.7,0.3")
        if abs(sum(probs) - 1) > 1e-6:
            even = ",".join(f"{p / sum(probs):.4g}" for p in probs)
            raise AirlockError(f"interleave_probs add up to {sum(probs):.6g}, not 1", where=where,
                               fix=f"scale them, e.g. {even}")

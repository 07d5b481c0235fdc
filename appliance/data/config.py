"""DataConfig: the dataset settings shared by `airlock data check`, training configs and the TUI's data form."""

from dataclasses import dataclass, field
from typing import Literal

from ..errors import AirlockError


@dataclass
class DataConfig:
    """Where the data is and how to shape it before training.

    path: a .json/.jsonl/.csv/.parquet file, or a directory holding a LLaMA-Factory dataset_info.json.
    dataset: the key in that dataset_info.json (comma-separated keys are mixed by mix_strategy).
    max_samples: the first N records of each dataset, before mixing (LLaMA-Factory's meaning).
    mix_strategy: concat (one after the other), interleave_under (alternate, or draw by interleave_probs, until
      the first dataset runs out) or interleave_over (until every dataset has been used once, repeating the
      shorter ones); interleave_probs: one probability per dataset, adding up to 1 (empty = take in turn).
    val_size: a ratio in (0, 1) or, when >= 1, a number of conversations held out for evaluation.
    ignore_columns: dataset columns or record keys Airlock does not train on (tools, images, an "id" ...) that
      training may leave out; any other such column stops training (see `airlock data check`).
    chat_template: the template conversations are rendered with: empty = the model's own, a catalog model id
      (that installed model's template), or a Jinja file (.jinja).
    """

    path: str = ""
    format: Literal["auto", "alpaca", "sharegpt"] = "auto"
    dataset: str | None = None
    cutoff_len: int = 1024
    cutoff_policy: Literal["truncate", "drop"] = "truncate"
    max_samples: int | None = None
    val_size: float = 0.0
    eval_path: str | None = None
    dedupe: Literal["none", "exact", "normalized"] = "none"
    train_on: Literal["assistant", "last", "all"] = "assistant"
    seed: int = 42
    mix_strategy: Literal["concat", "interleave_under", "interleave_over"] = "concat"
    interleave_probs: list[float] = field(default_factory=list)
    ignore_columns: list[str] = field(default_factory=list)
    chat_template: str = ""

    def validate(self) -> None:
        if not str(self.path):
            raise AirlockError("no dataset path given", where="data.path",
                               fix="set data.path to a .jsonl/.json/.csv/.parquet file or a dataset_info.json directory")
        if self.cutoff_len < 8:
            raise AirlockError(f"cutoff_len {self.cutoff_len} is too small", where="data.cutoff_len",
                               fix="use at least 8 tokens (1024 is the default)")
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

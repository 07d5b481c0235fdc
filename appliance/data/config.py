"""DataConfig: the dataset settings shared by `airlock data check`, training configs and the TUI's data form."""

from dataclasses import dataclass
from typing import Literal

from ..errors import AirlockError


@dataclass
class DataConfig:
    """Where the data is and how to shape it before training.

    path: a .json/.jsonl/.csv/.parquet file, or a directory holding a LLaMA-Factory dataset_info.json.
    dataset: the key in that dataset_info.json (comma-separated keys are concatenated).
    val_size: a ratio in (0, 1) or, when >= 1, a number of conversations held out for evaluation.
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

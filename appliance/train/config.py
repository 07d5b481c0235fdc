"""TrainConfig: every training setting in one validated dataclass, shared by config files, `--set` and the TUI.

    cfg = load_config("appliance/configs/sft_lora_default.yaml", ["learning_rate=1e-3", "data.cutoff_len=256"])
    cfg.to_dict()  # plain dict, YAML-ready; written to the job's config.yaml

Relative data paths in a config file are read relative to that file, so the shipped configs run from anywhere;
paths given with `--set` are relative to the current directory, as on any command line.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import schema
from ..data import DataConfig
from ..errors import AirlockError
from .distributed_config import DistributedConfig
from .preference import PREF_LOSSES, Preference

SCHEDULERS = Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial",
                     "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay"]


@dataclass
class TrainConfig:
    """One fine-tuning run: supervised (stage sft) or preference optimization (stage dpo).

    model: a repo id in the local HF cache, a local model directory, or a catalog id; empty = the catalog default.
    method: lora (adapters on a frozen base), qlora (adapters on a 4-bit base), full (every weight).
    quantization_type, double_quantization: QLoRA's 4-bit format (nf4 or fp4) and whether the quantization
      constants are quantized too (saves ~0.4 bit a weight); bitsandbytes' options, LLaMA-Factory's names.
    lora_target: module names, or ["all-linear"]; empty = the catalog card's targets (all-linear off-catalog).
    dtype: compute precision. fp16 needs a GPU; bf16 runs on CPU too (mixed precision).
    num_train_epochs is used unless max_steps is set.
    padding_free: a batch is its samples laid end to end with position ids (no pad tokens, no cross-attention
      between them); packing additionally fills rows up to cutoff_len from several samples.
    early_stopping_patience: stop after this many evaluations without a better eval loss (needs eval data).
    num_threads: torch CPU threads; empty = every core this process may use.
    pref_beta, pref_loss, adapter: DPO only (LLaMA-Factory's names). beta: how far the policy may move from the
      reference; pref_loss: the loss (sigmoid = DPO, ipo, hinge, ...); adapter: an SFT job id or adapter directory
      to start from (it is also the reference), empty = a fresh LoRA on the base.
    distributed: several processes (GPUs, hosts) training together; see appliance/train/distributed_config.py.
      per_device_train_batch_size is per process: the global batch is it x gradient_accumulation_steps x ranks.
    """

    data: DataConfig
    model: str = ""
    stage: Literal["sft", "dpo", "kto", "pt"] = "sft"
    method: Literal["lora", "qlora", "full"] = "lora"
    quantization_type: Literal["nf4", "fp4"] = "nf4"
    double_quantization: bool = True
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target: list[str] = field(default_factory=list)
    learning_rate: float = 2e-4
    num_train_epochs: float = 3.0
    max_steps: int | None = None
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: SCHEDULERS = "cosine"
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    eval_steps: int | None = None
    early_stopping_patience: int | None = None
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 5
    seed: int = 42
    packing: bool = False
    padding_free: bool = True
    gradient_checkpointing: bool = False
    num_threads: int | None = None
    pref_beta: float = 0.1
    pref_loss: PREF_LOSSES = "sigmoid"
    adapter: str = ""
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    # Stage kto (its beta is pref_beta; LLaMA-Factory's kto_chosen_weight, kto_rejected_weight): how much the
    # desirable and the undesirable answers weigh in the loss; raise the scarcer kind's weight.
    kto_desirable_weight: float = 1.0
    kto_undesirable_weight: float = 1.0

    def validate(self) -> None:
        positive = ["lora_rank", "lora_alpha", "per_device_train_batch_size", "per_device_eval_batch_size",
                    "gradient_accumulation_steps", "save_steps", "save_total_limit", "logging_steps"]
        for name in positive:
            if getattr(self, name) < 1:
                raise AirlockError(f"{name} must be at least 1, got {getattr(self, name)}", where=name)
        for name in ("max_steps", "eval_steps", "early_stopping_patience", "num_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise AirlockError(f"{name} must be at least 1 (or left empty), got {value}", where=name)
        if not 0 < self.learning_rate < 1:
            raise AirlockError(f"learning_rate {self.learning_rate} is outside (0, 1)", where="learning_rate",
                               fix="typical values: 1e-4 to 1e-3 for LoRA, 1e-5 to 1e-4 for full fine-tuning")
        if not 0 <= self.lora_dropout < 1:
            raise AirlockError(f"lora_dropout {self.lora_dropout} is outside [0, 1)", where="lora_dropout")
        if not 0 <= self.warmup_ratio < 1:
            raise AirlockError(f"warmup_ratio {self.warmup_ratio} is outside [0, 1)", where="warmup_ratio")
        if self.warmup_steps < 0 or self.max_grad_norm <= 0 or self.weight_decay < 0:
            raise AirlockError("warmup_steps and weight_decay must be >= 0 and max_grad_norm > 0",
                               where="warmup_steps/max_grad_norm/weight_decay")
        if self.max_steps is None and self.num_train_epochs <= 0:
            raise AirlockError(f"num_train_epochs {self.num_train_epochs} must be positive", where="num_train_epochs",
                               fix="set num_train_epochs (e.g. 3) or max_steps")
        if self.early_stopping_patience and not self.has_eval:
            raise AirlockError("early stopping needs evaluation data", where="early_stopping_patience",
                               fix="set data.val_size (e.g. 0.1) or data.eval_path, or remove early_stopping_patience")
        if "all-linear" in self.lora_target and len(self.lora_target) > 1:
            raise AirlockError("'all-linear' cannot be combined with module names", where="lora_target",
                               fix="use either all-linear or a list such as q_proj,v_proj")
        if self.method != "qlora" and (self.quantization_type != "nf4" or not self.double_quantization):
            raise AirlockError(f"quantization_type/double_quantization are QLoRA settings; method is {self.method}",
                               where="quantization_type", fix="set method: qlora, or remove them")
        if self.stage == "kto":
            self._check_kto()
        elif (self.kto_desirable_weight, self.kto_undesirable_weight) != (1.0, 1.0):
            raise AirlockError(f"kto_desirable_weight/kto_undesirable_weight are KTO settings; stage is {self.stage}",
                               where="kto_desirable_weight", fix="set stage: kto, or remove them")
        if self.stage == "dpo":
            Preference.of(self)  # pref_beta / pref_loss
            self._check_preference_data()
        elif self.adapter:
            raise AirlockError("adapter (a starting adapter) is only used by stage dpo", where="adapter",
                               fix="remove adapter, or set stage: dpo")

    def _check_kto(self) -> None:
        if self.pref_beta <= 0:
            raise AirlockError(f"pref_beta must be positive, got {self.pref_beta}", where="pref_beta",
                               fix="0.1 is the usual value; larger keeps the model closer to where it started")
        for name in ("kto_desirable_weight", "kto_undesirable_weight"):
            if getattr(self, name) <= 0:
                raise AirlockError(f"{name} must be positive, got {getattr(self, name)}", where=name,
                                   fix="1.0 weighs both kinds alike; raise the weight of the scarcer kind")
        if self.per_device_train_batch_size < 2:
            # KTO's reference point (the KL term) is estimated from the other answers of the same batch.
            raise AirlockError("stage kto needs at least 2 samples per batch", where="per_device_train_batch_size",
                               fix="set per_device_train_batch_size to 2 or more (8 is usual)")

    def _check_preference_data(self) -> None:
        """Refuse, before any job exists, dataset_info.json entries that are not preference ("ranking") data.

        Only the cheap case: a dataset_info.json naming the datasets. Plain files are checked record by record
        when the job loads them (appliance.train.dpo.preference_rows names the first record without a pair).
        """
        from ..data.load import INFO

        folder = Path(self.data.path).expanduser()
        info = folder if folder.name == INFO else folder / INFO
        if not self.data.dataset or not info.is_file():
            return
        try:
            entries = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # the data layer reports a broken index with its line
        for key in (k.strip() for k in self.data.dataset.split(",")):
            entry = entries.get(key) if isinstance(entries, dict) else None
            if isinstance(entry, dict) and entry.get("ranking") is not True:
                raise AirlockError(f"dataset {key!r} is not preference data (no \"ranking\": true in {info})",
                                   where="data.dataset",
                                   fix="DPO needs chosen/rejected pairs: name a dataset with \"ranking\": true "
                                       "(e.g. magic_conch_dpo), or set stage: sft")

    @property
    def has_eval(self) -> bool:
        return bool(self.data.val_size) or bool(self.data.eval_path)

    def to_dict(self) -> dict:
        return schema.to_dict(self)


def _anchor_paths(data: dict, base: Path) -> dict:
    """Relative dataset paths in a config file are relative to that file."""
    section = data.get("data")
    if isinstance(section, dict):
        section = dict(section)
        for key in ("path", "eval_path", "chat_template"):
            value = section.get(key)
            if key == "chat_template" and not (isinstance(value, str) and value.endswith((".jinja", ".j2"))):
                continue  # a catalog id, not a file
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                section[key] = str((base / value).resolve())
        data = {**data, "data": section}
    return data


def from_dict(data: dict, where: str = "config") -> TrainConfig:
    if isinstance(data, dict) and str(data.get("stage", "")).lower() == "pt" and "packing" not in data:
        data = {**data, "packing": True}  # stage pt packs rows full of text unless told (LLaMA-Factory does too)
    return schema.build(TrainConfig, data, where=where)


def shipped_configs() -> list[str]:
    from ..paths import configs_dir

    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def config_path(name: str | Path) -> Path:
    """A config file, or the name of a shipped one (`sft_lora_default`), so an installed Airlock needs no checkout."""
    from ..paths import configs_dir

    path = Path(name)
    if not path.exists() and path.parent == Path(".") and path.stem in shipped_configs():
        return configs_dir() / f"{path.stem}.yaml"
    if not path.is_file():
        raise AirlockError("config file not found", where=str(name),
                           fix=f"give a YAML file, or one of the shipped configs: {', '.join(shipped_configs())}")
    return path


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML/JSON/TOML config (or start from the defaults when path is None), apply `key=value` overrides."""
    data: dict = {}
    where = "config"
    if path is not None:
        path = config_path(path)
        data = _anchor_paths(schema.load_file(path), path.resolve().parent)
        where = str(path)
    if overrides:
        data = schema.merge(data, schema.parse_overrides(overrides))
        where += " (with --set)"
    if "data" not in data:
        raise AirlockError("no data section", where=where, fix="add `data: {path: my_data.jsonl}` or --set data.path=...")
    return from_dict(data, where=where)

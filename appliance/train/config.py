"""TrainConfig: every training setting in one validated dataclass, shared by config files, `--set` and the TUI.

    cfg = load_config("appliance/configs/sft_lora_default.yaml", ["learning_rate=1e-3", "data.cutoff_len=256"])
    cfg.to_dict()  # plain dict, YAML-ready; written to the job's config.yaml

Relative data paths in a config file are read relative to that file, so the shipped configs run from anywhere;
paths given with `--set` are relative to the current directory, as on any command line.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .. import schema
from ..data import DataConfig
from ..errors import AirlockError
from ..schema import setting
from .distributed_config import DistributedConfig
from .preference import PREF_LOSSES, Preference

SCHEDULERS = Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial",
                     "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay"]


@dataclass
class TrainConfig:
    """One fine-tuning run (stage sft, dpo, kto or pt) of a base model, with its data (the `data:` section) and,
    optionally, several processes or hosts (the `distributed:` section).

    Each key's help is in its field's metadata (schema.setting): `airlock train --keys`, the TUI's hints and
    docs/config.md are read from there. Names follow LLaMA-Factory's where it has the setting.
    """

    data: DataConfig = setting(help="the dataset and how it is shaped before training (the data: section)")
    model: str = setting("", "base model: HF-cache repo id, model directory or catalog id (empty = default)",
                         detail="A repo id must already be in the local Hugging Face cache; empty = the catalog's "
                                "default model.")
    stage: Literal["sft", "dpo", "kto", "pt"] = setting(
        "sft", "sft: supervised; dpo: chosen/rejected pairs; kto: tagged answers; pt: raw text",
        detail="pt is continued pre-training on raw text (every token trained, packing on by default); kto learns "
               "from answers tagged desirable or not (kto_tag).")
    method: Literal["lora", "qlora", "full"] = setting(
        "lora", "lora: adapters on a frozen base; qlora: on a 4-bit base; full: every weight",
        detail="qlora needs the least memory (quantization_type, double_quantization set its 4-bit format).")
    quantization_type: Literal["nf4", "fp4"] = setting(
        "nf4", "QLoRA's 4-bit format (method qlora only)",
        detail="bitsandbytes' option, under LLaMA-Factory's name.")
    double_quantization: bool = setting(
        True, "QLoRA: quantize the quantization constants too (saves ~0.4 bit a weight)")
    lora_rank: int = setting(8, "LoRA rank r: adapter size (8-64 typical; higher learns more, costs more)")
    lora_alpha: int = setting(16, "LoRA scaling alpha (often 2 x rank)")
    lora_dropout: float = setting(0.05, "dropout on the LoRA path, in [0, 1)")
    lora_target: list[str] = setting(
        help="modules to adapt, comma-separated, or all-linear (empty = the card's targets)", default_factory=list,
        detail="The card is the model's catalog card; a model not in the catalog gets all-linear. all-linear "
               "cannot be combined with module names.")
    learning_rate: float = setting(2e-4, "peak learning rate: 1e-4..1e-3 for LoRA, 1e-5..1e-4 for full fine-tuning")
    num_train_epochs: float = setting(3.0, "passes over the data (used when max_steps is empty)")
    max_steps: int | None = setting(None, "stop after this many optimizer steps (empty = run num_train_epochs)")
    max_grad_norm: float = setting(1.0, "gradient clipping norm (> 0)")
    weight_decay: float = setting(0.0, "AdamW weight decay (>= 0)")
    dtype: Literal["fp32", "fp16", "bf16"] = setting(
        "fp32", "compute precision: fp32 everywhere, bf16 (CPU or recent GPU), fp16 (GPU only)",
        detail="bf16 and fp16 are mixed precision: trained weights stay fp32 (with lora the frozen base is held "
               "in the lower precision).")
    per_device_train_batch_size: int = setting(
        8, "training samples per step in each process",
        detail="The global batch is per_device_train_batch_size x gradient_accumulation_steps x ranks "
               "(distributed.nproc_per_node x distributed.nnodes).")
    per_device_eval_batch_size: int = setting(8, "samples per evaluation batch in each process")
    gradient_accumulation_steps: int = setting(
        1, "steps accumulated before an update (global batch = batch x this x ranks)")
    lr_scheduler_type: SCHEDULERS = setting("cosine", "how the learning rate changes over the run")
    warmup_ratio: float = setting(0.0, "share of steps spent warming the learning rate up, in [0, 1)")
    warmup_steps: int = setting(0, "warm-up steps (overrides warmup_ratio when > 0)")
    eval_steps: int | None = setting(None, "evaluate every N steps (needs val_size or eval_path; empty = at the end)")
    early_stopping_patience: int | None = setting(
        None, "stop after N evaluations without a better eval loss (needs eval data)")
    save_steps: int = setting(50, "save a resumable checkpoint every N steps")
    save_total_limit: int = setting(2, "keep only the last N checkpoints")
    logging_steps: int = setting(5, "write a metrics line (loss, tokens/s, ETA) every N steps")
    seed: int = setting(42, "random seed of the run")
    packing: bool = setting(False, "fill each row up to data.cutoff_len with several samples")
    padding_free: bool = setting(
        True, "lay samples end to end without pad tokens (faster; no cross-talk)",
        detail="A batch is its samples laid end to end with position ids: no pad tokens and no attention between "
               "samples. packing additionally fills rows up to data.cutoff_len from several samples.")
    gradient_checkpointing: bool = setting(
        False, "recompute activations in the backward pass: less memory, ~30% slower")
    torch_compile: bool = setting(
        False, "compile each decoder layer with torch.compile (pays off on GPUs, not CPUs)",
        detail="Measured: on an H200, LoRA bf16 steps 1.6x faster after a first step of 46 s; on a 2-core CPU "
               "0.86-0.96x (slower: Airlock's CPU path is already hand-fused). Needs a C++ compiler on the host "
               "(g++ or $CXX). See appliance/train/compile.py.")
    num_threads: int | None = setting(None, "CPU threads for torch (empty = every core this process may use)")
    pref_beta: float = setting(0.1, "DPO/KTO: how far the policy may move from the reference model")
    pref_loss: PREF_LOSSES = setting("sigmoid", "DPO: the preference loss (sigmoid = DPO, ipo, hinge, ...)")
    adapter: str = setting(
        "", "DPO: an SFT job id or adapter directory to start from (empty = a fresh LoRA)",
        detail="The starting adapter is also the reference model. Stage dpo only.")
    distributed: DistributedConfig = setting(
        help="several processes (GPUs, hosts) training together (the distributed: section)",
        default_factory=DistributedConfig,
        detail="With the defaults (one process) nothing in it is used. See docs/distributed.md.")
    kto_desirable_weight: float = setting(
        1.0, "KTO: weight of the desirable answers in the loss",
        detail="LLaMA-Factory's kto_chosen_weight. Raise the scarcer kind's weight so both kinds count about "
               "equally.")
    kto_undesirable_weight: float = setting(
        1.0, "KTO: weight of the undesirable answers in the loss",
        detail="LLaMA-Factory's kto_rejected_weight.")

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

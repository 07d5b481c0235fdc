"""Read a LLaMA-Factory training YAML as an Airlock TrainConfig, saying exactly what was and was not carried over.

    airlock llamafactory translate llama3_lora_sft.yaml [--out airlock.yaml]   # print (and write) the translation
    from appliance.llamafactory import translate, load_train_config            # for `airlock train`

Every key of the YAML lands in one of three lists: translated (key -> our setting), not needed here (a
LLaMA-Factory housekeeping key whose job Airlock does another way, with the reason) and unsupported (a key that
would change the run and that this version cannot honour, with the reason). Nothing is dropped silently.

Paths: dataset_dir is read relative to the YAML's folder (LLaMA-Factory reads it from the working directory;
relative to the file, a project folder can move). Its dataset_info.json is read by the data layer.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from . import schema
from .errors import AirlockError

# LLaMA-Factory key -> TrainConfig key (dots for nested) where the value carries over as it is.
SAME = {
    "model_name_or_path": "model", "lora_rank": "lora_rank", "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout", "learning_rate": "learning_rate", "num_train_epochs": "num_train_epochs",
    "per_device_train_batch_size": "per_device_train_batch_size",
    "per_device_eval_batch_size": "per_device_eval_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps", "lr_scheduler_type": "lr_scheduler_type",
    "warmup_ratio": "warmup_ratio", "warmup_steps": "warmup_steps", "logging_steps": "logging_steps",
    "save_steps": "save_steps", "save_total_limit": "save_total_limit", "eval_steps": "eval_steps",
    "seed": "seed", "max_grad_norm": "max_grad_norm", "weight_decay": "weight_decay",
    "gradient_checkpointing": "gradient_checkpointing", "packing": "packing",
    "early_stopping_steps": "early_stopping_patience", "pref_beta": "pref_beta",
    "dataset": "data.dataset", "cutoff_len": "data.cutoff_len", "max_samples": "data.max_samples",
    "val_size": "data.val_size",
}

# Keys whose job Airlock does another way: listed with the reason, no effect on the run.
NOT_NEEDED = {
    "do_train": "`airlock train` always trains",
    "template": "Airlock renders with the model's own chat template (tokenizer_config.json)",
    "output_dir": "every run is a job with its own directory (jobs/<id>/); its last part becomes the job name",
    "overwrite_output_dir": "a new job directory is made for every run",
    "overwrite_cache": "Airlock tokenizes in memory; there is no cache to overwrite",
    "preprocessing_num_workers": "tokenizing the data takes seconds; it runs in one process",
    "dataloader_num_workers": "batches come from memory",
    "plot_loss": "the loss curve is always kept (metrics.jsonl) and drawn by the TUI and `airlock eval`",
    "report_to": "offline: no experiment tracker is ever contacted",
    "ddp_timeout": "multi-process timeouts are set by the launcher",
    "trust_remote_code": "models load without remote code on the offline host",
    "save_only_model": "checkpoints always keep the optimizer state so a killed job resumes",
    "eval_strategy": "evaluation runs every eval_steps when there is evaluation data (val_size or data.eval_path)",
    "evaluation_strategy": "evaluation runs every eval_steps when there is evaluation data",
    "save_strategy": "checkpoints are written every save_steps",
    "logging_strategy": "metrics are logged every logging_steps",
    "flash_attn": "the attention kernel is chosen by transformers for the hardware",
    "quantization_method": "QLoRA uses bitsandbytes NF4",
    "double_quantization": "QLoRA always uses double quantization",
    "quantization_type": "QLoRA always uses NF4",
}

# Keys that would change the run and that this version cannot honour.
UNSUPPORTED = {
    "eval_dataset": "name held-out data by path instead: data.eval_path",
    "do_eval": "evaluate with `airlock eval MODEL --data HELDOUT` after training",
    "do_predict": "generate predictions with `airlock eval`",
    "predict_with_generate": "generate predictions with `airlock eval`",
    "resume_from_checkpoint": "resume a job with `airlock train --resume JOB`",
    "deepspeed": "DeepSpeed configs are not read; multi-GPU runs use torchrun/accelerate",
    "use_dora": "DoRA is not offered", "use_rslora": "rsLoRA is not offered", "pissa_init": "PiSSA is not offered",
    "loraplus_lr_ratio": "LoRA+ is not offered", "additional_target": "extra trainable modules are not offered",
    "adapter_name_or_path": "start DPO from an adapter with `adapter: JOB`; SFT on top of an adapter is not offered",
    "mix_strategy": "datasets are concatenated", "interleave_probs": "datasets are concatenated",
    "streaming": "datasets are read into memory", "neat_packing": "use packing (padding-free, no cross-attention)",
    "rope_scaling": "context extension is not offered", "neftune_noise_alpha": "NEFTune is not offered",
    "freeze_trainable_layers": "freeze tuning is not offered",
    "freeze_trainable_modules": "freeze tuning is not offered",
    "pref_ftx": "an SFT term in the DPO loss is not offered", "simpo_gamma": "SimPO is not offered",
    "tokenized_path": "Airlock tokenizes from the dataset files",
}

STAGES = {"sft": "sft", "dpo": "dpo"}
PREF_LOSSES = {"sigmoid": "sigmoid", "hinge": "hinge", "ipo": "ipo"}


@dataclass
class Translation:
    source: Path
    config: dict  # TrainConfig-shaped mapping (validate with load_train_config / schema.build)
    translated: list[tuple[str, object, str, object]] = field(default_factory=list)  # (lf key, value, ours, value)
    not_needed: list[tuple[str, object, str]] = field(default_factory=list)  # (key, value, reason)
    unsupported: list[tuple[str, object, str]] = field(default_factory=list)  # (key, value, reason)
    name: str | None = None  # a job name from output_dir


def _set(config: dict, dotted: str, value) -> None:
    node = config
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _train_fields() -> set[str]:
    from .data import DataConfig
    from .train.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)} | {
        f"data.{f.name}" for f in dataclasses.fields(DataConfig)}


def translate(path) -> Translation:
    """Translate the YAML at `path`. Raises AirlockError for what cannot mean anything here (freeze, pt/rm/ppo...)."""
    path = Path(path)
    raw = schema.load_file(path)
    known = _train_fields()
    tr = Translation(source=path, config={"data": {}})
    where = lambda key: f"{path}: {key}"  # noqa: E731

    def put(lf_key, value, ours, our_value):
        if ours not in known:  # e.g. pref_beta before this version's TrainConfig has it
            tr.unsupported.append((lf_key, value, f"this version's training config has no '{ours}'"))
            return
        _set(tr.config, ours, our_value)
        tr.translated.append((lf_key, value, ours, our_value))

    stage = str(raw.get("stage", "sft"))
    if stage not in STAGES:
        raise AirlockError(f"stage {stage!r} is not offered (Airlock trains sft and dpo)", where=where("stage"),
                           fix="use stage: sft or stage: dpo")
    method = str(raw.get("finetuning_type", "lora"))
    if method not in ("lora", "full"):
        raise AirlockError(f"finetuning_type {method!r} is not offered", where=where("finetuning_type"),
                           fix="use lora (adapters; add quantization_bit: 4 for QLoRA) or full")
    bits = raw.get("quantization_bit")
    if bits not in (None, 4):
        raise AirlockError(f"quantization_bit {bits} is not offered", where=where("quantization_bit"),
                           fix="use 4 (QLoRA, NF4) or remove it")
    if bits == 4 and method == "full":
        raise AirlockError("quantization_bit 4 needs finetuning_type lora (QLoRA)", where=where("quantization_bit"),
                           fix="set finetuning_type: lora, or remove quantization_bit for full fine-tuning")

    for key, value in raw.items():
        if key == "stage":
            put(key, value, "stage", STAGES[stage])
        elif key == "finetuning_type":
            put(key, value, "method", "qlora" if bits == 4 else method)
        elif key == "quantization_bit":
            tr.translated.append((key, value, "method", "qlora"))
        elif key == "lora_target":
            targets = [t.strip() for t in str(value).split(",") if t.strip()] if isinstance(value, str) else value
            put(key, value, "lora_target", ["all-linear"] if targets == ["all"] else list(targets))
        elif key == "dataset_dir":
            folder = Path(str(value)).expanduser()
            folder = folder if folder.is_absolute() else (path.resolve().parent / folder)
            put(key, value, "data.path", str(folder.resolve()))
        elif key in ("bf16", "fp16", "pure_bf16"):
            if value:
                put(key, value, "dtype", "fp16" if key == "fp16" else "bf16")
            else:
                tr.not_needed.append((key, value, "off; fp32 is the default"))
        elif key == "max_steps":
            if value is not None and int(value) > 0:
                put(key, value, "max_steps", int(value))
            else:
                tr.not_needed.append((key, value, "not positive: num_train_epochs decides"))
        elif key == "pref_loss":
            if value not in PREF_LOSSES:
                tr.unsupported.append((key, value, f"DPO losses offered: {', '.join(PREF_LOSSES)}"))
            else:
                put(key, value, "pref_loss", PREF_LOSSES[value])
        elif key == "train_on_prompt":
            if value:
                put(key, value, "data.train_on", "all")
            else:
                tr.not_needed.append((key, value, "off: replies only, the default"))
        elif key == "mask_history":
            if value:
                put(key, value, "data.train_on", "last")
            else:
                tr.not_needed.append((key, value, "off: every reply is trained, the default"))
        elif key == "output_dir":
            tr.name = Path(str(value)).name or None
            tr.not_needed.append((key, value, NOT_NEEDED[key]))
        elif key in SAME:
            put(key, value, SAME[key], value)
        elif key in NOT_NEEDED:
            tr.not_needed.append((key, value, NOT_NEEDED[key]))
        elif key in UNSUPPORTED:
            if value in (None, False):
                tr.not_needed.append((key, value, "off"))
            else:
                tr.unsupported.append((key, value, UNSUPPORTED[key]))
        else:
            close = schema.suggest(key, list(SAME) + list(NOT_NEEDED) + list(UNSUPPORTED))
            tr.unsupported.append((key, value, f"unknown key ({close})" if close.startswith("did") else "unknown key"))
    if "data.path" not in {t[2] for t in tr.translated} and "dataset" in raw:
        put("dataset_dir", "data", "data.path", str((path.resolve().parent / "data").resolve()))
    return tr


def to_train_config(tr: Translation):
    """The validated TrainConfig of a translation (the same checks `airlock train CONFIG` makes)."""
    from .train.config import from_dict

    return from_dict(tr.config, where=f"{tr.source} (translated from LLaMA-Factory)")


def load_train_config(path, strict: bool = False):
    """For `airlock train --from-llamafactory FILE.yaml`: (TrainConfig, Translation); strict refuses unsupported keys."""
    tr = translate(path)
    if strict and tr.unsupported:
        keys = ", ".join(k for k, _, _ in tr.unsupported)
        raise AirlockError(f"{len(tr.unsupported)} setting(s) cannot be honoured: {keys}", where=str(path),
                           fix="remove them (see `airlock llamafactory translate` for the reasons) or drop --strict")
    return to_train_config(tr), tr


def render(tr: Translation) -> str:
    """The translation as text: what maps to what, what is not needed, what is not supported."""
    fmt = lambda v: repr(v) if isinstance(v, str) else str(v)  # noqa: E731
    lines = [f"LLaMA-Factory config {tr.source}", "", f"translated ({len(tr.translated)}):"]
    width = max([len(k) for k, *_ in tr.translated + tr.not_needed + tr.unsupported] or [10])
    lines += [f"  {k:<{width}}  {fmt(v)}  ->  {ours} = {fmt(ov)}" for k, v, ours, ov in tr.translated]
    lines += ["", f"not needed here ({len(tr.not_needed)}):"]
    lines += [f"  {k:<{width}}  {fmt(v)}  ({why})" for k, v, why in tr.not_needed] or ["  (none)"]
    lines += ["", f"NOT SUPPORTED ({len(tr.unsupported)}) - these settings will not take effect:"]
    lines += [f"  {k:<{width}}  {fmt(v)}  ({why})" for k, v, why in tr.unsupported] or ["  (none)"]
    return "\n".join(lines)


def config_yaml(tr: Translation, out: Path) -> str:
    """The translated config as an Airlock YAML file (data.path relative to the file, as configs are read)."""
    import os

    import yaml

    config = {**tr.config, "data": dict(tr.config.get("data", {}))}
    if config["data"].get("path"):
        config["data"]["path"] = os.path.relpath(config["data"]["path"], Path(out).resolve().parent)
    head = (f"# airlock train {Path(out).name}\n# Translated from the LLaMA-Factory config {Path(tr.source).name} by "
            f"`airlock llamafactory translate`.\n")
    if tr.unsupported:
        head += "# Not carried over: " + ", ".join(k for k, *_ in tr.unsupported) + "\n"
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)

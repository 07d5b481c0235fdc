"""The Trainer settings every training stage takes from a TrainConfig, written out explicitly.

Each stage's config class (trl's SFTConfig, DPOConfig) has defaults of its own (SFTConfig's learning rate is 2e-5,
DPOConfig's 1e-6), so nothing may be carried over by comparing against one class's defaults: every value the user
can set is passed by name, for every stage.
"""

from pathlib import Path

from .config import TrainConfig


def trainer_settings(cfg: TrainConfig, output_dir: Path, device: str, has_eval: bool) -> dict:
    """Keyword arguments for any transformers/trl TrainingArguments subclass."""
    eval_steps = cfg.eval_steps or cfg.save_steps
    return dict(**distributed_settings(cfg),
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps or cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps or -1,
        bf16=cfg.dtype == "bf16",
        fp16=cfg.dtype == "fp16",
        use_cpu=device == "cpu",
        gradient_checkpointing=cfg.gradient_checkpointing,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,  # a loss on screen after one step, also when max_steps < logging_steps
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        metric_for_best_model="eval_loss" if cfg.early_stopping_patience else None,
        greater_is_better=False if cfg.early_stopping_patience else None,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        push_to_hub=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
    )


def distributed_settings(cfg: TrainConfig) -> dict:
    """The Trainer's settings for a run of several ranks (none for one process). The process group itself is
    joined earlier (appliance/train/ranks.py); these tell the Trainer how to use it."""
    d = cfg.distributed
    if not d.enabled:
        return {}
    settings = dict(
        ddp_timeout=d.timeout_s,
        # LoRA leaves most weights frozen and every trainable one is used each step: no search for unused ones.
        ddp_find_unused_parameters=False,
        average_tokens_across_devices=True,  # the loss divides by the labelled tokens of all ranks, as one process
        save_on_each_node=d.nnodes > 1,  # hosts need not share a file system: each keeps its checkpoints
    )
    if d.backend != "auto":
        settings["ddp_backend"] = d.backend
    if d.strategy == "fsdp":
        settings["fsdp"] = True
        settings["fsdp_config"] = {
            "version": 2, "reshard_after_forward": d.fsdp.sharding == "full_shard", "cpu_offload": d.fsdp.offload_params,
            "activation_checkpointing": d.fsdp.activation_checkpointing, "state_dict_type": "FULL_STATE_DICT",
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            **({"transformer_layer_cls_to_wrap": list(d.fsdp.wrap)} if d.fsdp.wrap else {})}
    elif d.strategy == "deepspeed":
        from .zero import deepspeed_config

        settings["deepspeed"] = deepspeed_config(d.deepspeed or "zero2", cfg)
    return settings

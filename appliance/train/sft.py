"""Supervised fine-tuning (LoRA, QLoRA, full) of a local base model, run as a job: setup -> train -> save.
(recipe.run_job runs it for `stage: sft` and `stage: pt`; DPO and KTO are its peers, dpo.py and kto.py; all take
their shared pieces from common.py.)

Stage pt (continued pre-training) is this recipe on documents instead of conversations: raw .txt files, "text"
records or LLaMA-Factory's pt datasets, no chat template, every token trained, an EOS after each document
(appliance/data/pretrain.py), packing on unless the config sets it.

    airlock train appliance/configs/sft_lora_default.yaml            # in the foreground (Ctrl-C stops + checkpoints)
    airlock train appliance/configs/sft_lora_default.yaml --detach   # as a detached job; `airlock jobs logs -f ID`
    airlock train --resume JOB_ID                                    # continue from the last complete checkpoint

Reads top to bottom:
  1. setup: resolve the base model (cache repo id, local dir or catalog id; never the network), check the dtype
     against the hardware, set CPU threads, tokenize the data once with appliance.data.prepare (for the stage).
  2. model: fp32/bf16/fp16 weights (LoRA, full) or a 4-bit NF4 base with double quantization (QLoRA), LoRA
     adapters on the catalog card's target modules (or all-linear) for lora/qlora. On a CPU: per-sample attention
     for padding-free rows and integer-mask LoRA dropout (cpu_levers).
  3. train: trl's SFTTrainer on the pre-tokenized samples. Padding-free batches by default (samples laid end to
     end, position ids restart per sample, attention block-diagonal: no pad tokens, no cross-talk); packing fills
     rows up to cutoff_len. The loss projects only trained positions through the LM head (loss.py).
     Checkpoints every save_steps, published atomically, last save_total_limit kept.
  4. save: the adapter (adapter/) or the full model (model/) with the tokenizer and airlock_provenance.json,
     staged and renamed into the job directory; the registry records it with its lineage.

Errors: AirlockError for a bad config, an unknown model, a dtype the host cannot run, bad data (DataError).
A stop request (SIGTERM/SIGINT) saves a checkpoint at the end of the current step and marks the job `stopped`.
"""

from pathlib import Path

from .. import sources
from ..atomic import write_json
from ..errors import AirlockError
from . import ranks, resources
from .common import base_revision, load_model, resolve_base, resume_point, run_trainer, save_result
from .config import TrainConfig


def cpu_levers(model, cfg: TrainConfig) -> None:
    """Less work and memory for the same numbers on a CPU: each sample of a padding-free row attends only within
    itself (appliance/train/attention.py), LoRA dropout masks come from cheap integer draws (dropout.py), each LoRA
    layer adds its update inside the GEMM that computes it and keeps its input and a bool mask for backward
    (lora_forward.py), and the SwiGLU product keeps only its two inputs (swiglu.py)."""
    from .attention import use_per_sample_attention
    from .dropout import use_fast_lora_dropout
    from .lora_forward import use_fused_lora_forward
    from .swiglu import use_lean_swiglu

    if cfg.padding_free or cfg.packing:
        use_per_sample_attention(model)
    use_fast_lora_dropout(model)
    use_fused_lora_forward(model)
    use_lean_swiglu(model)


def sft_args(cfg: TrainConfig, output_dir: Path, device: str, has_eval: bool):
    from trl import SFTConfig

    from .settings import trainer_settings

    return SFTConfig(
        **trainer_settings(cfg, output_dir, device, has_eval),
        # The data layer already cut every sample to cutoff_len; packing needs the row length.
        max_length=cfg.data.cutoff_len if cfg.packing else None,
        packing=cfg.packing,
        padding_free=cfg.padding_free or cfg.packing,
        # Without padding-free, batch samples of similar length together so little padding is computed.
        train_sampling_strategy="random" if (cfg.padding_free or cfg.packing) else "group_by_length",
        completion_only_loss=False,  # the labels from appliance.data already mask what is not trained on
    )


def train(cfg: TrainConfig, job) -> Path | None:
    """Run (or continue) the job's training; returns the output directory, or None when it was stopped."""
    import datasets
    import transformers
    from transformers import AutoTokenizer, EarlyStoppingCallback, PrinterCallback

    from ..data import prepare
    from .callbacks import JobReporter, StopFlag
    from .trainer import AirlockSFTTrainer

    # 1. setup
    transformers.utils.logging.disable_progress_bar()  # log.txt gets one line per log step, not progress bars
    datasets.disable_progress_bars()
    base_ref, base_path, card = resolve_base(cfg.model)
    device = resources.check_dtype(cfg.dtype, cfg.method)
    threads = resources.set_threads(cfg.num_threads)
    print(f"base model {base_ref} ({base_path}); method {cfg.method}, dtype {cfg.dtype}, device {device}, "
          f"{threads} CPU threads", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    job.set_status(message="preparing data")
    prepared = prepare(cfg.data, tokenizer, stage=cfg.stage)
    if not prepared.train:
        raise AirlockError("no training samples left after preparing the data", where=str(cfg.data.path),
                           fix="check cutoff_len/cutoff_policy and the data report")
    if ranks.is_local_main():
        write_json(job.path / sources.DATA_REPORT, {"sha256": prepared.sha256, **prepared.report})
    print(f"data: {len(prepared.train)} train / {len(prepared.eval)} eval samples, sha256 {prepared.sha256[:12]}",
          flush=True)
    train_set = datasets.Dataset.from_list([{"input_ids": s["input_ids"], "labels": s["labels"]}
                                            for s in prepared.train])
    eval_set = (datasets.Dataset.from_list([{"input_ids": s["input_ids"], "labels": s["labels"]}
                                            for s in prepared.eval]) if prepared.eval else None)

    # 2. model (seeded first: the LoRA weights start random, and the same config must give the same run)
    job.set_status(message="loading the model")
    transformers.set_seed(cfg.seed)
    model = load_model(cfg, base_path, device, card)
    if device == "cpu":
        cpu_levers(model, cfg)
    resources.check_disk(model, cfg, job.path)

    # 3. train, continuing from the last complete checkpoint if this job has one
    ckpt_dir = sources.checkpoints_dir(job.path)
    resume_from, elapsed_before = resume_point(job, ckpt_dir)
    stop = StopFlag()
    reporter = JobReporter(job, stop, elapsed_before)
    callbacks = [reporter]
    if cfg.early_stopping_patience and eval_set is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = AirlockSFTTrainer(model=model, args=sft_args(cfg, ckpt_dir, device, eval_set is not None),
                                train_dataset=train_set, eval_dataset=eval_set, processing_class=tokenizer,
                                callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # JobReporter prints one line per log step instead
    seconds = run_trainer(trainer, cfg, job, stop, reporter, resume_from)
    if seconds is None:
        return None  # stopped on request, at a checkpoint

    # 4. save
    provenance = {"job_id": job.id, "stage": cfg.stage, "method": cfg.method, "base_model": base_ref,
                  "base_path": str(base_path), "base_revision": base_revision(base_path),
                  "dataset_sha256": prepared.sha256, "config": cfg.to_dict(),
                  "steps": trainer.state.global_step, "train_seconds": round(seconds, 1)}
    pretraining = {"stage": "pt"} if cfg.stage == "pt" else {}  # the registry names the stage when it is not sft
    return save_result(trainer, job, cfg, tokenizer, base_ref, provenance,
                       parents=[base_ref, f"dataset:{prepared.sha256}"],
                       audit=("train.pt" if pretraining else "train", {}), **pretraining)

"""Supervised fine-tuning (LoRA, QLoRA, full) of a local base model, run as a job: setup -> train -> save.
(`stage: dpo` jobs run appliance/train/dpo.py, which reuses the pieces here; run_job dispatches on the stage.)

    airlock train appliance/configs/sft_lora_default.yaml            # in the foreground (Ctrl-C stops + checkpoints)
    airlock train appliance/configs/sft_lora_default.yaml --detach   # as a detached job; `airlock jobs logs -f ID`
    airlock train --resume JOB_ID                                    # continue from the last complete checkpoint

Reads top to bottom:
  1. setup: resolve the base model (cache repo id, local dir or catalog id; never the network), check the dtype
     against the hardware, set CPU threads, tokenize the data once with appliance.data.prepare.
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

import json
import shutil
import time
from pathlib import Path

from .. import catalog, registry
from ..atomic import staged_dir, write_json
from ..errors import AirlockError
from ..hfcache import content_revision, resolve_model
from . import checkpoints, resources
from .config import TrainConfig, from_dict

PROVENANCE = "airlock_provenance.json"


def resolve_base(name: str) -> tuple[str, Path, "catalog.ModelCard | None"]:
    """(name as the run records it, local directory, catalog card or None) for a model reference."""
    card = catalog.find(name) if name else catalog.default_card()
    ref = name or card.local_repo_id
    if card is not None and name in (card.id, card.repo_id):
        ref = card.local_repo_id  # the catalog id names the copy installed in the local cache
    return ref, resolve_model(ref).resolve(), card


def base_revision(path: Path) -> str:
    return path.name if path.parent.name == "snapshots" else content_revision(path)


def lora_targets(cfg: TrainConfig, card) -> str | list[str]:
    targets = cfg.lora_target or (card.lora_targets if card else ["all-linear"])
    return "all-linear" if targets == ["all-linear"] else list(targets)


def load_model(cfg: TrainConfig, base_path: Path, device: str, card):
    """The model to train: plain weights for full/LoRA, NF4 4-bit for QLoRA; LoRA adapters attached."""
    import torch
    from transformers import AutoModelForCausalLM

    compute = resources.torch_dtype(cfg.dtype)
    kwargs = {"dtype": torch.float32}
    if cfg.method == "lora" and cfg.dtype != "fp32":
        kwargs["dtype"] = compute  # a frozen base can live in half precision; the adapters stay fp32
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute)
        kwargs["device_map"] = {"": 0} if device == "cuda" else "cpu"
    model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    if cfg.method == "full":
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=lora_targets(cfg, card), task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # peft names the modules it could not find
        raise AirlockError(f"LoRA targets do not match this model: {exc}", where="lora_target",
                           fix="use all-linear or module names of this model (e.g. q_proj,v_proj)") from None


def cpu_levers(model, cfg: TrainConfig) -> None:
    """Less work for the same numbers on a CPU: each sample of a padding-free row attends only within itself
    (appliance/train/attention.py), and LoRA dropout masks come from cheap integer draws (dropout.py)."""
    from .attention import use_per_sample_attention
    from .dropout import use_fast_lora_dropout

    if cfg.padding_free or cfg.packing:
        use_per_sample_attention(model)
    use_fast_lora_dropout(model)


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


def resume_point(job, ckpt_dir: Path) -> tuple[Path | None, float]:
    """(last complete checkpoint or None, wall time of the earlier sessions) for a job that may be resuming.

    Removes what a killed save left behind, and the metrics logged after that checkpoint (they will be logged again).
    """
    checkpoints.clean_incomplete(ckpt_dir)
    step = job.raw_status().get("resume_from_step")
    resume_from = checkpoints.intact_checkpoint(ckpt_dir, step)
    if step is not None:
        job.set_status(resume_from_step=None)
        for later in (c for c in checkpoints.checkpoints(ckpt_dir) if checkpoints.step_of(c) > step):
            shutil.rmtree(later)  # a resume from an earlier step rewrites what came after it
    if resume_from is None:
        return None, 0.0
    kept = [m for m in job.metrics() if m.get("step", 0) <= checkpoints.step_of(resume_from)]
    job.rewrite_metrics(kept)
    print(f"resuming from {resume_from.name}", flush=True)
    return resume_from, max((m.get("elapsed_s") or 0.0 for m in kept), default=0.0)


def finish_stopped(job, trainer, ckpt_dir: Path) -> None:
    """Mark a job stopped on request (its checkpoint is saved) with the command that continues it."""
    last = checkpoints.last_checkpoint(ckpt_dir)
    job.set_status(state="stopped", message=f"stopped at step {trainer.state.global_step} "
                   f"({last.name if last else 'no checkpoint'}); resume: airlock train --resume {job.id}")


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
    prepared = prepare(cfg.data, tokenizer)
    if not prepared.train:
        raise AirlockError("no training samples left after preparing the data", where=str(cfg.data.path),
                           fix="check cutoff_len/cutoff_policy and the data report")
    write_json(job.path / "data_report.json", {"sha256": prepared.sha256, **prepared.report})
    print(f"data: {len(prepared.train)} train / {len(prepared.eval)} eval samples, sha256 {prepared.sha256[:12]}",
          flush=True)
    train_set = datasets.Dataset.from_list([{"input_ids": s["input_ids"], "labels": s["labels"]}
                                            for s in prepared.train])
    eval_set = (datasets.Dataset.from_list([{"input_ids": s["input_ids"], "labels": s["labels"]}
                                            for s in prepared.eval]) if prepared.eval else None)

    # 2. model
    job.set_status(message="loading the model")
    model = load_model(cfg, base_path, device, card)
    if device == "cpu":
        cpu_levers(model, cfg)
    resources.check_disk(model, cfg, job.path)

    # 3. train, continuing from the last complete checkpoint if this job has one
    ckpt_dir = job.path / "checkpoints"
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
    stop.install()  # from here a stop checkpoints first (before, the job runner's handler ends the run at once)
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if reporter.stopped_by_request:
        return finish_stopped(job, trainer, ckpt_dir)

    # 4. save
    job.set_status(message="saving")
    provenance = {"job_id": job.id, "stage": cfg.stage, "method": cfg.method, "base_model": base_ref,
                  "base_path": str(base_path), "base_revision": base_revision(base_path),
                  "dataset_sha256": prepared.sha256, "config": cfg.to_dict(),
                  "steps": trainer.state.global_step, "train_seconds": round(time.monotonic() - started, 1)}
    out = job.path / ("model" if cfg.method == "full" else "adapter")
    with staged_dir(out) as staging:
        if cfg.method == "full":
            trainer.save_model(str(staging))
        else:
            # Name the base as given (a repo id resolves offline through the local cache). Embedding layers are
            # not trained, so peft need not look anything up to decide whether to save them.
            trainer.model.peft_config["default"].base_model_name_or_path = base_ref
            trainer.model.save_pretrained(str(staging), save_embedding_layers=False)
            tokenizer.save_pretrained(str(staging))
        (staging / PROVENANCE).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    kind = "model" if cfg.method == "full" else "adapter"
    registry.record(kind, job.id, out, parents=[base_ref, f"dataset:{prepared.sha256}"], method=cfg.method,
                    steps=trainer.state.global_step)
    registry.audit("train", job=job.id, method=cfg.method, base_model=base_ref, output=str(out))
    job.set_status(state="completed", step=trainer.state.global_step, output=out.name,
                   message=f"done: {out.name}/ written")
    print(f"saved {out}", flush=True)
    return out


def run_job(job) -> None:
    """The job runner for kind `train` (called by `python -m appliance.jobs run JOB_DIR`): SFT here, DPO in dpo.py."""
    cfg = from_dict(job.config(), where=str(job.config_path))
    if cfg.stage == "dpo":
        from . import dpo

        dpo.train(cfg, job)
    else:
        train(cfg, job)

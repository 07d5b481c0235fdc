"""What every training recipe shares (appliance/train/sft.py, dpo.py, kto.py): the base model resolved offline,
the model to train (full weights, LoRA, QLoRA), the resume point of a job, a stop recorded as such, and the result
saved with its provenance. Recipes import this module and never each other.
"""

import json
import shutil
from pathlib import Path

from .. import catalog, registry, sources
from ..atomic import staged_dir
from ..errors import AirlockError
from ..hfcache import content_revision, resolve_model
from . import checkpoints, ranks, resources
from .config import TrainConfig



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

        sharded = cfg.distributed.enabled and cfg.distributed.strategy == "fsdp"
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=cfg.quantization_type,
            bnb_4bit_use_double_quant=cfg.double_quantization,
            bnb_4bit_compute_dtype=compute,
            # FSDP shards tensors of one dtype: 4-bit weights are stored in the compute dtype's width to be sharded
            bnb_4bit_quant_storage=compute if sharded else torch.uint8)
        if not sharded:  # FSDP places the shards itself
            kwargs["device_map"] = {"": ranks.local_rank()} if device == "cuda" else "cpu"
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


def resume_point(job, ckpt_dir: Path) -> tuple[Path | None, float]:
    """(last complete checkpoint or None, wall time of the earlier sessions) for a job that may be resuming.

    Removes what a killed save left behind, and the metrics logged after that checkpoint (they will be logged again).
    In a distributed run the host's local main rank decides and the other ranks take its answer; hosts that hold
    different checkpoints cannot resume together.
    """
    step = None
    if ranks.is_local_main():
        checkpoints.clean_incomplete(ckpt_dir)
        asked = job.raw_status().get("resume_from_step")
        found = checkpoints.intact_checkpoint(ckpt_dir, asked)
        if asked is not None:
            job.set_status(resume_from_step=None)
            for later in (c for c in checkpoints.checkpoints(ckpt_dir) if checkpoints.step_of(c) > asked):
                shutil.rmtree(later)  # a resume from an earlier step rewrites what came after it
        step = checkpoints.step_of(found) if found else None
    picks = {s for s, main in ranks.gather((step, ranks.is_local_main())) if main}
    if len(picks) > 1:
        raise AirlockError(f"the hosts of this run hold different last checkpoints (steps {sorted(picks, key=str)})",
                           where=str(ckpt_dir), fix="copy the newest checkpoint to every host, or resume from one "
                           "they all have: airlock train --resume JOB --from-checkpoint STEP")
    step = picks.pop()
    if step is None:
        return None, 0.0
    resume_from = ckpt_dir / f"checkpoint-{step}"
    kept = [m for m in job.metrics() if m.get("step", 0) <= step]
    job.rewrite_metrics(kept)
    print(f"resuming from {resume_from.name}", flush=True)
    return resume_from, max((m.get("elapsed_s") or 0.0 for m in kept), default=0.0)


def run_trainer(trainer, cfg: TrainConfig, job, stop, reporter, resume_from: Path | None) -> float | None:
    """Train (or continue from `resume_from`) to the end: the seconds it took, or None when a stop request ended it
    at a checkpoint (the job is then marked stopped, with the command that continues it)."""
    import time

    from . import distributed

    distributed.check_applied(trainer, cfg)
    if cfg.torch_compile:
        from .compile import compile_layers

        print(f"torch_compile: {compile_layers(trainer.model)} decoder layers compile on the first step", flush=True)
        if trainer.args.device.type == "cpu":
            print("warning: torch_compile on a CPU measured 0.86-0.96x the uncompiled speed (Airlock's CPU path is "
                  "already fused); it pays off on GPUs. Set torch_compile: false here.", flush=True)
    stop.install()  # from here a stop checkpoints first (before, the job runner's handler ends the run at once)
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if reporter.stopped_by_request:
        finish_stopped(job, trainer, Path(trainer.args.output_dir))
        return None
    return time.monotonic() - started


def finish_stopped(job, trainer, ckpt_dir: Path) -> None:
    """Mark a job stopped on request (its checkpoint is saved) with the command that continues it."""
    last = checkpoints.last_checkpoint(ckpt_dir)
    job.set_status(state="stopped", message=f"stopped at step {trainer.state.global_step} "
                   f"({last.name if last else 'no checkpoint'}); resume: airlock train --resume {job.id}")


def save_result(trainer, job, cfg: TrainConfig, tokenizer, base_ref: str, provenance: dict, *, parents: list[str],
                audit: tuple[str, dict], **record) -> Path:
    """The last stage of every recipe: the adapter (adapter/) or the full model (model/) with the tokenizer and
    airlock_provenance.json, staged and renamed into the job directory by the host's local main rank; the
    registry records it with its lineage and the job is marked completed."""
    out = sources.training_output(job.path, cfg.method)
    if ranks.is_local_main():
        job.set_status(message="saving")
        provenance["world_size"] = cfg.distributed.world_size
        with staged_dir(out) as staging:
            if cfg.method == "full":
                trainer.save_model(str(staging))
            else:
                peft_model = trainer.model
                if "ref" in peft_model.peft_config:  # trl's frozen copy of the starting adapter (DPO, KTO): no output
                    peft_model.delete_adapter("ref")
                # Name the base as given (a repo id resolves offline through the local cache). Embedding layers are
                # not trained, so peft need not look anything up to decide whether to save them.
                peft_model.peft_config["default"].base_model_name_or_path = base_ref
                peft_model.save_pretrained(str(staging), save_embedding_layers=False)
            tokenizer.save_pretrained(str(staging))
            (staging / sources.PROVENANCE).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
        steps = trainer.state.global_step
        registry.record(out.name, job.id, out, parents=parents, method=cfg.method, steps=steps, **record)
        event, details = audit
        registry.audit(event, job=job.id, method=cfg.method, base_model=base_ref, output=str(out), **details)
        job.set_status(state="completed", step=steps, output=out.name, message=f"done: {out.name}/ written")
        print(f"saved {out}", flush=True)
    ranks.barrier()  # no rank exits (and ends the run) before the result is on disk
    return out

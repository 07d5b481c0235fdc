"""Kahneman-Tversky Optimization (KTO) with LoRA/QLoRA (or full weights): single answers, each labelled desirable
or undesirable, where DPO needs pairs.

    airlock train kto.yaml          # stage: kto; data: conversations with a kto_tag; pref_beta, kto_*_weight
    airlock train --resume JOB_ID   # continue from the last complete checkpoint

KTO data is LLaMA-Factory's: a dataset_info.json entry with `columns: {..., kto_tag: NAME}` on ShareGPT/OpenAI or
Alpaca records (true = the final answer is desirable), or a plain file whose records carry "kto_tag" (or trl's
"label"). appliance.data reads the label for stage kto only: any other stage refuses such data unless the label
is named in data.ignore_columns, so an SFT run never trains the undesirable answers as good ones.

Reads top to bottom like its peers (sft.py, dpo.py), with the shared pieces from common.py:
  1. setup: resolve the base model, dtype check, threads, the tokenizer with the run's chat template.
  2. data: one trl unpaired-preference row per record (the prompt messages, the final answer, its label), held-out
     rows by val_size or data.eval_path, the training rows shuffled once with data.seed: trl's KTO reads batches
     in order and estimates its reference point (the KL term) from the other answers in a batch, so each batch
     must mix prompts and kinds.
  3. model: a fresh LoRA on the base (common.load_model), or full weights with a frozen copy as the reference. The
     reference is the starting point (for LoRA, trl keeps a frozen copy of the starting adapter).
  4. train: trl's KTOTrainer; beta = pref_beta, kto_desirable_weight / kto_undesirable_weight. Checkpoints are
     published atomically, and a stopped or crashed job continues with `airlock train --resume`, as every stage.
  5. save: adapter/ (or model/) with the tokenizer and airlock_provenance.json, staged; the registry records it.

Errors: AirlockError for records without a label, records whose prompt alone fills cutoff_len (trl would drop
them unsaid), a batch of one (checked by the config), and what SFT refuses.
`completion_logprobs` measures log p(answer | prompt) per record: KTO raises it for desirable answers and lowers it
for undesirable ones, relative to the reference.
"""

import random
from pathlib import Path

from .. import sources
from ..atomic import write_json
from ..errors import AirlockError
from . import ranks, resources
from .common import base_revision, load_model, resolve_base, resume_point, run_trainer, save_result


def kto_rows(conversations) -> list[dict]:
    """trl's conversational unpaired-preference rows: prompt messages, the final answer, its label (True = good)."""
    rows, missing = [], []
    for conv in conversations:
        if conv.kto_tag is None or not conv.messages or conv.messages[-1]["role"] != "assistant":
            missing.append(conv.source)
            continue
        rows.append({"prompt": conv.messages[:-1], "completion": conv.messages[-1:], "label": conv.kto_tag})
    if missing:
        raise AirlockError(f"{len(missing)} record(s) have no KTO label on a final answer (first: {missing[0]})",
                           where="data", fix="KTO needs each record's last turn to be the answer, with \"kto_tag\": "
                                             "true (desirable) or false (undesirable)")
    return rows


def load_rows(data_cfg) -> tuple[list[dict], list[dict], str]:
    """(train rows, eval rows, dataset sha256) from a DataConfig: max_samples and mixing as SFT, val_size or
    eval_path for the held-out rows, the training rows shuffled once with data.seed."""
    from ..data import clean, load_conversations
    from ..data.columns import refuse_unused
    from ..data.mix import mix

    loaded = load_conversations(data_cfg.path, data_cfg.format, data_cfg.dataset, stage="kto",
                                skip=data_cfg.skip_invalid_records)
    refuse_unused(loaded.unused, data_cfg.ignore_columns, where=str(data_cfg.path))
    conversations, _ = mix(loaded.conversations, data_cfg, loaded.num_samples)
    rows = kto_rows(conversations)
    if data_cfg.eval_path:
        held = load_conversations(data_cfg.eval_path, data_cfg.format, stage="kto",
                                   skip=data_cfg.skip_invalid_records)
        refuse_unused(held.unused, data_cfg.ignore_columns, where=str(data_cfg.eval_path))
        eval_rows = kto_rows(held.conversations)
    else:
        rows, eval_rows = clean.split(rows, data_cfg.val_size, data_cfg.seed)
    random.Random(data_cfg.seed).shuffle(rows)
    return rows, eval_rows, loaded.sha256


def kto_args(cfg, output_dir: Path, device: str, has_eval: bool):
    """KTOConfig: every Trainer setting from the config by name (settings.py says why), plus the KTO ones. trl's
    default sequential sampling stays: the KL term pairs each answer with its neighbours in the batch."""
    from trl import KTOConfig

    from .settings import trainer_settings

    return KTOConfig(**trainer_settings(cfg, output_dir, device, has_eval), beta=cfg.pref_beta,
                     desirable_weight=cfg.kto_desirable_weight, undesirable_weight=cfg.kto_undesirable_weight,
                     max_length=cfg.data.cutoff_len, precompute_ref_log_probs=False)


def train(cfg, job) -> Path | None:
    """Run (or continue) KTO for `cfg` (a TrainConfig with stage kto) in `job`; returns the output directory, or
    None when it was stopped. Jobs reach it through recipe.run_job, which dispatches on the stage."""
    import datasets
    import transformers
    from transformers import AutoTokenizer, PrinterCallback

    from ..data.template import apply as apply_chat_template
    from .callbacks import JobReporter, StopFlag
    from .trainer import AirlockKTOTrainer

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()

    # 1. setup
    base_ref, base_path, card = resolve_base(cfg.model)
    device = resources.check_dtype(cfg.dtype, cfg.method)
    threads = resources.set_threads(cfg.num_threads)
    print(f"KTO on {base_ref} ({base_path}); method {cfg.method}, beta {cfg.pref_beta}, weights "
          f"{cfg.kto_desirable_weight}/{cfg.kto_undesirable_weight}, device {device}, {threads} threads", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    apply_chat_template(tokenizer, cfg.data.chat_template)  # trl renders the rows with it; the output keeps it

    # 2. data
    job.set_status(message="preparing labelled answers")
    rows, eval_rows, sha256 = load_rows(cfg.data)
    desirable = sum(1 for r in rows if r["label"])
    counts = {"desirable": desirable, "undesirable": len(rows) - desirable}
    if ranks.is_local_main():
        write_json(job.path / sources.DATA_REPORT, {"sha256": sha256, "rows": len(rows), **counts,
                                                   "eval_rows": len(eval_rows)})
    print(f"data: {len(rows)} train ({counts['desirable']} desirable, {counts['undesirable']} undesirable) / "
          f"{len(eval_rows)} eval, sha256 {sha256[:12]}", flush=True)
    train_set = datasets.Dataset.from_list(rows)
    eval_set = datasets.Dataset.from_list(eval_rows) if eval_rows else None

    # 3. model (seeded first: a fresh adapter starts random, and the same config must give the same run)
    job.set_status(message="loading the model")
    transformers.set_seed(cfg.seed)
    model = load_model(cfg, base_path, device, card)
    ref_model = load_model(cfg, base_path, device, card).eval() if cfg.method == "full" else None
    resources.check_disk(model, cfg, job.path)

    # 4. train, continuing from the last complete checkpoint if this job has one
    ckpt_dir = sources.checkpoints_dir(job.path)
    resume_from, elapsed_before = resume_point(job, ckpt_dir)
    stop = StopFlag()
    reporter = JobReporter(job, stop, elapsed_before)
    trainer = AirlockKTOTrainer(model=model, ref_model=ref_model,
                                args=kto_args(cfg, ckpt_dir, device, eval_set is not None),
                                train_dataset=train_set, eval_dataset=eval_set, processing_class=tokenizer,
                                callbacks=[reporter])
    trainer.remove_callback(PrinterCallback)
    # trl drops rows whose prompt alone fills max_length (nothing of the answer would be left): never unsaid.
    if len(trainer.train_dataset) < len(rows):
        raise AirlockError(f"{len(rows) - len(trainer.train_dataset)} record(s) have a prompt that alone fills "
                           f"cutoff_len {cfg.data.cutoff_len}: none of their answer would be trained",
                           where="data.cutoff_len", fix="raise data.cutoff_len, or shorten or remove those prompts")
    seconds = run_trainer(trainer, cfg, job, stop, reporter, resume_from)
    if seconds is None:
        return None  # stopped on request, at a checkpoint

    # 5. save
    provenance = {"job_id": job.id, "stage": "kto", "method": cfg.method, "base_model": base_ref,
                  "base_path": str(base_path), "base_revision": base_revision(base_path),
                  "dataset_sha256": sha256, "config": cfg.to_dict(), "pref_beta": cfg.pref_beta,
                  "kto_desirable_weight": cfg.kto_desirable_weight,
                  "kto_undesirable_weight": cfg.kto_undesirable_weight, **counts,
                  "steps": trainer.state.global_step, "train_seconds": round(seconds, 1)}
    return save_result(trainer, job, cfg, tokenizer, base_ref, provenance, parents=[base_ref, f"dataset:{sha256}"],
                       audit=("train.kto", {}), stage="kto", pref_beta=cfg.pref_beta)


def completion_logprobs(model, tokenizer, conversations) -> list[float]:
    """log p(final answer | prompt) of each conversation under `model` (summed over the answer's tokens)."""
    from ..data import render
    from ..evaluate.perplexity import sequence_logprobs

    samples = [render(conv, tokenizer, "last") for conv in conversations]
    return [score for score, _ in sequence_logprobs(model, samples, tokenizer.pad_token_id or 0)]

"""Direct Preference Optimization (DPO) with LoRA/QLoRA (or full weights), from a base model or an SFT adapter.

    airlock train appliance/configs/dpo_lora_demo.yaml   # stage: dpo; data: a preference set; pref_beta, pref_loss
    airlock train appliance/configs/dpo_lora_demo.yaml --set adapter=SFT_JOB   # start from an SFT adapter

Preference data is LLaMA-Factory's (a dataset_info.json entry with "ranking": true), Alpaca-like
(instruction/input + chosen/rejected strings) or ShareGPT-like (conversations ending with a user turn + chosen /
rejected messages); appliance.data parses both into Conversations with `.chosen` / `.rejected`.

Reads top to bottom like its peer, the SFT recipe (appliance/train/sft.py); both take their shared pieces from
appliance/train/common.py:
  1. setup: resolve the base (or the SFT adapter and the base it names), dtype check, threads, tokenizer.
  2. data: preference pairs as trl's conversational prompt/chosen/rejected rows, max_samples, val_size split.
  3. model: a fresh LoRA on the base (common.load_model), or the SFT adapter made trainable. The reference
     policy is the starting point: trl keeps a frozen copy of the starting adapter ("ref"), or of the full model.
  4. train: trl's DPOTrainer; beta (pref_beta) and the loss type (pref_loss: sigmoid = DPO, ipo, hinge, ...).
     Checkpoints are published atomically and a stopped or crashed job continues with `airlock train --resume`,
     exactly as SFT (trainer.AtomicCheckpoints, common.resume_point).
  5. save: adapter/ (or model/) with the tokenizer and airlock_provenance.json, staged; the registry records it
     with its lineage (base or SFT adapter -> DPO adapter).

Errors: AirlockError for records without chosen/rejected, QLoRA from an existing adapter, and what SFT refuses.
`preference_margins` measures log p(chosen) - log p(rejected) per pair, the quantity DPO pushes up.
"""

import dataclasses
import random
from pathlib import Path

from .. import sources
from ..atomic import write_json
from ..errors import AirlockError
from . import ranks, resources
from .common import base_revision, load_model, resolve_base, resume_point, run_trainer, save_result
from .preference import Preference


def preference_rows(conversations) -> list[dict]:
    """trl's conversational preference rows: prompt messages, then one chosen and one rejected assistant message."""
    rows, missing = [], []
    for conv in conversations:
        if conv.chosen is None or conv.rejected is None:
            missing.append(conv.source)
            continue
        rows.append({"prompt": conv.messages,
                     "chosen": [{"role": "assistant", "content": conv.chosen}],
                     "rejected": [{"role": "assistant", "content": conv.rejected}]})
    if missing:
        raise AirlockError(
            f"{len(missing)} record(s) have no chosen/rejected pair (first: {missing[0]})", where="data",
            fix='DPO needs preference data: a dataset_info.json entry with "ranking": true and chosen/rejected '
                "columns (set data.path to its folder and data.dataset to its name)")
    return rows


def load_pairs(data_cfg) -> tuple[list[dict], list[dict], str]:
    """(train rows, eval rows, dataset sha256) from a DataConfig, honouring max_samples, val_size and seed."""
    from ..data import load_conversations
    from ..data.columns import refuse_unused
    from ..data.mix import mix

    loaded = load_conversations(data_cfg.path, data_cfg.format, data_cfg.dataset,
                                skip=data_cfg.skip_invalid_records)
    refuse_unused(loaded.unused, data_cfg.ignore_columns, where=str(data_cfg.path))
    conversations, _ = mix(loaded.conversations, data_cfg, loaded.num_samples)  # max_samples per dataset, as SFT
    rows = preference_rows(conversations)
    eval_rows = []
    if data_cfg.val_size:
        shuffled = rows[:]
        random.Random(data_cfg.seed).shuffle(shuffled)
        n = int(data_cfg.val_size) if data_cfg.val_size >= 1 else max(1, round(len(rows) * data_cfg.val_size))
        eval_rows, rows = shuffled[:n], shuffled[n:]
    if not rows:
        raise AirlockError("no preference pairs left for training", where=str(data_cfg.path),
                           fix="lower val_size or add data")
    return rows, eval_rows, loaded.sha256


def dpo_args(cfg, output_dir: Path, device: str, has_eval: bool, pref: Preference):
    """DPOConfig: every Trainer setting from the config by name (settings.py says why), plus the DPO ones."""
    from trl import DPOConfig

    from .settings import trainer_settings

    return DPOConfig(**trainer_settings(cfg, output_dir, device, has_eval), beta=pref.beta,
                     loss_type=[pref.loss_type], max_length=cfg.data.cutoff_len, padding_free=False,
                     precompute_ref_log_probs=False)


def load_policy(cfg, base_path: Path, device: str, card, pref: Preference, adapter_dir: Path | None):
    """The model to train: a fresh LoRA (or full weights) via the SFT recipe, or the SFT adapter made trainable."""
    if adapter_dir is None:
        return load_model(cfg, base_path, device, card)
    if cfg.method != "lora":
        raise AirlockError(f"starting DPO from an adapter works with method lora (not {cfg.method})", where="method",
                           fix="set method: lora, or merge the SFT adapter (`airlock merge`) and start from the merge")
    from peft import PeftModel

    base = load_model(dataclasses.replace(cfg, method="full"), base_path, device, card)
    return PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)


def train(cfg, job, pref: Preference | None = None) -> Path | None:
    """Run (or continue) DPO for `cfg` (a TrainConfig with stage dpo) in `job`; returns the output directory, or
    None when it was stopped. Jobs reach it through recipe.run_job, which dispatches on the stage."""
    import datasets
    import transformers
    from transformers import AutoTokenizer, PrinterCallback

    from ..sources import base_of, resolve_source, tokenizer_dir
    from .callbacks import JobReporter, StopFlag
    from .trainer import AirlockDPOTrainer

    pref = pref or Preference.of(cfg)
    pref.validate()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()

    # 1. setup: the starting point is the base, or an SFT adapter and the base it was trained on
    adapter_src = resolve_source(pref.adapter) if pref.adapter else None
    if adapter_src is not None and adapter_src.kind != "adapter":
        raise AirlockError(f"{pref.adapter} is a full model, not an adapter", where="adapter",
                           fix=f"set model: {adapter_src.path} (start from it as the base) and leave adapter empty")
    model_ref = cfg.model
    if adapter_src is not None and not model_ref:  # the base the adapter was trained on
        model_ref = (adapter_src.provenance or {}).get("base_model") or str(base_of(adapter_src))
    base_ref, base_path, card = resolve_base(model_ref)
    device = resources.check_dtype(cfg.dtype, cfg.method)
    threads = resources.set_threads(cfg.num_threads)
    print(f"DPO on {base_ref} ({base_path}) from {adapter_src.path if adapter_src else 'a fresh adapter'}; "
          f"method {cfg.method}, beta {pref.beta}, loss {pref.loss_type}, device {device}, {threads} threads",
          flush=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(adapter_src.path if adapter_src else None, base_path))
    from ..data.template import apply as apply_chat_template

    apply_chat_template(tokenizer, cfg.data.chat_template)  # trl renders the pairs with it; the adapter keeps it

    # 2. data
    job.set_status(message="preparing preference pairs")
    rows, eval_rows, sha256 = load_pairs(cfg.data)
    if ranks.is_local_main():
        write_json(job.path / sources.DATA_REPORT, {"sha256": sha256, "pairs": len(rows), "eval_pairs": len(eval_rows)})
    print(f"data: {len(rows)} train / {len(eval_rows)} eval pairs, sha256 {sha256[:12]}", flush=True)
    train_set = datasets.Dataset.from_list(rows)
    eval_set = datasets.Dataset.from_list(eval_rows) if eval_rows else None

    # 3. model (the reference is the starting point: trl copies the starting adapter, or the base for a fresh one)
    job.set_status(message="loading the model")
    transformers.set_seed(cfg.seed)  # a fresh adapter starts random: the same config must give the same run
    model = load_policy(cfg, base_path, device, card, pref, adapter_src.path if adapter_src else None)
    ref_model = None
    if cfg.method == "full":
        ref_model = load_model(cfg, base_path, device, card).eval()
    resources.check_disk(model, cfg, job.path)

    # 4. train, continuing from the last complete checkpoint if this job has one (as SFT does)
    ckpt_dir = sources.checkpoints_dir(job.path)
    resume_from, elapsed_before = resume_point(job, ckpt_dir)
    stop = StopFlag()
    reporter = JobReporter(job, stop, elapsed_before)
    trainer = AirlockDPOTrainer(model=model, ref_model=ref_model,
                                args=dpo_args(cfg, ckpt_dir, device, eval_set is not None, pref),
                                train_dataset=train_set, eval_dataset=eval_set, processing_class=tokenizer,
                                callbacks=[reporter])
    trainer.remove_callback(PrinterCallback)
    seconds = run_trainer(trainer, cfg, job, stop, reporter, resume_from)
    if seconds is None:
        return None  # stopped on request, at a checkpoint

    # 5. save
    provenance = {"job_id": job.id, "stage": "dpo", "method": cfg.method, "base_model": base_ref,
                  "base_path": str(base_path), "base_revision": base_revision(base_path),
                  "dataset_sha256": sha256, "config": cfg.to_dict(),
                  "start_adapter": str(adapter_src.path) if adapter_src else None,
                  "pref_beta": pref.beta, "pref_loss": pref.loss_type,
                  "steps": trainer.state.global_step, "train_seconds": round(seconds, 1)}
    parent = (adapter_src.job_dir.name if adapter_src.job_dir else str(adapter_src.path)) if adapter_src else base_ref
    return save_result(trainer, job, cfg, tokenizer, base_ref, provenance, parents=[parent, f"dataset:{sha256}"],
                       audit=("train.dpo", {"start": parent}), stage="dpo", pref_beta=pref.beta,
                       pref_loss=pref.loss_type)


def preference_margins(model, tokenizer, conversations) -> list[float]:
    """log p(chosen) - log p(rejected) of each preference pair under `model` (sums over the reply tokens)."""
    from ..data import Conversation, render
    from ..evaluate.perplexity import sequence_logprobs

    samples = []
    for conv in conversations:
        for reply in (conv.chosen, conv.rejected):
            whole = Conversation(conv.messages + [{"role": "assistant", "content": reply}], conv.source)
            samples.append(render(whole, tokenizer, "last"))
    scores = sequence_logprobs(model, samples, tokenizer.pad_token_id or 0)
    return [scores[i][0] - scores[i + 1][0] for i in range(0, len(scores), 2)]

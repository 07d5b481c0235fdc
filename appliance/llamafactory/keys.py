"""Every LLaMA-Factory YAML key Airlock knows, with what becomes of it: the one table translation and docs read.

Statuses (docs/llamafactory.md explains them the same way):
  supported      carried over as it is, to the Airlock setting named
  mapped         carried over with another name or value (the text says how; some values are refused)
  not needed     no effect here: Airlock does that job another way (the text says how)
  not supported  listed as NOT SUPPORTED when set, and refused: it would change what is trained (`--lenient`
                 trains without it); the few in LISTED_ONLY change no weight and are only listed
  refused        an error: the YAML is not run as it is
The keys of merge/export, prediction, benchmark and inference YAMLs are in tasks.py's tables, in the same form.
"""

from dataclasses import dataclass

STATUSES = ("supported", "mapped", "not needed", "not supported", "refused")


@dataclass(frozen=True)
class Key:
    status: str
    why: str = ""
    ours: str = ""  # the Airlock setting (dotted for data.*) a supported key carries over to


def S(ours: str, why: str = "") -> Key:
    return Key("supported", why, ours)


def M(why: str) -> Key:
    return Key("mapped", why)


def N(why: str) -> Key:
    return Key("not needed", why)


def U(why: str) -> Key:
    return Key("not supported", why)


EXPORT_AFTER = "export after training: `airlock merge JOB` and `airlock export gguf JOB`"
GENERATION = "generation settings are read by prediction and chat YAMLs (`airlock eval`, `airlock chat`)"
OFFLINE_HUB = "offline: models come from the local cache, nothing is downloaded"
MULTIMODAL = "multimodal training is not offered (text-only models)"

TRAIN_KEYS: dict[str, dict[str, Key]] = {
    "model": {
        "model_name_or_path": S("model", "a catalog id, a repo id in the local cache or a model directory"),
        "adapter_name_or_path": M("stage dpo: adapter (DPO starts from that SFT adapter); stages sft, pt and kto: not "
                                  "supported (training on top of an adapter is not offered: merge it first)"),
        "template": M("data.chat_template: a template name of the model's own family means the model's own "
                      "template; another family's name means a catalog model of that family; names without a "
                      "Hugging Face chat template are refused (see the templates table)"),
        "trust_remote_code": N("models load without remote code on the offline host"),
        "cache_dir": N(OFFLINE_HUB), "hf_hub_token": N(OFFLINE_HUB), "ms_hub_token": N(OFFLINE_HUB),
        "om_hub_token": N(OFFLINE_HUB),
        "model_revision": N("the revision is pinned when the model is bundled"),
        "use_fast_tokenizer": N("the fast tokenizer is used whenever the model has one"),
        "low_cpu_mem_usage": N("models load with transformers' defaults"),
        "flash_attn": N("the attention kernel is chosen by transformers for the hardware"),
        "infer_dtype": N(GENERATION), "infer_backend": N(GENERATION),
        "print_param_status": N("a debugging printout; the job log records the run"),
        "quantization_bit": M("4 -> method qlora (bitsandbytes NF4 4-bit base, LoRA on top); 8 and other values are "
                              "refused (8-bit LLM.int8 training is not offered)"),
        "quantization_method": M("bitsandbytes (or bnb) -> QLoRA as above; hqq and eetq (other on-the-fly "
                                 "quantizers) and gptq, awq, aqlm, quanto, mxfp4, fp8 (models quantized ahead of "
                                 "time) are refused"),
        "quantization_type": S("quantization_type", "with quantization_bit 4: nf4 or fp4 (bitsandbytes' 4-bit "
                               "types); others are refused"),
        "double_quantization": S("double_quantization", "with quantization_bit 4: whether the quantization "
                                 "constants are quantized too"),
        "quantization_device_map": N("QLoRA places the model on the training device"),
        "rope_scaling": U("context extension is not offered"),
        "resize_vocab": U("vocabulary changes are not offered"),
        "new_special_tokens": U("vocabulary changes are not offered"),
        "split_special_tokens": U("special tokens are never split"),
        "shift_attn": U("LongLoRA's shift short attention is not offered"),
        "mixture_of_depths": U("mixture-of-depths is not offered"),
        "use_unsloth": U("unsloth is not bundled"), "use_unsloth_gc": U("unsloth is not bundled"),
        "enable_liger_kernel": U("Liger kernels are not bundled"),
        "moe_aux_loss_coef": U("the MoE router loss coefficient is the model's own"),
        "upcast_layernorm": U("layer norms keep the model's dtype"),
        "upcast_lmhead_output": U("the loss is computed in fp32 already on the trained positions"),
        "train_from_scratch": U("training from random weights is not offered"),
        "disable_gradient_checkpointing": M("gradient_checkpointing = not the value (LLaMA-Factory checkpoints by "
                                            "default, Airlock does not: set gradient_checkpointing: true for the "
                                            "same memory use)"),
        "image_resolution": N(MULTIMODAL), "video_resolution": N(MULTIMODAL), "video_fps": N(MULTIMODAL),
        "video_maxlen": N(MULTIMODAL),
        "export_dir": U(EXPORT_AFTER), "export_size": U(EXPORT_AFTER), "export_device": U(EXPORT_AFTER),
        "export_quantization_bit": U(EXPORT_AFTER), "export_legacy_format": U(EXPORT_AFTER),
        "export_hub_model_id": U("offline: nothing is uploaded"),
    },
    "method": {
        "stage": M("sft, pt, dpo and kto carry over; rm and ppo are refused: reward modelling and PPO (online RL) "
                   "are not offered (PPO needs a reward model and generation in the training loop)"),
        "do_train": N("`airlock train` always trains"),
        "finetuning_type": M("lora -> lora (qlora with quantization_bit: 4), full -> full; freeze and oft are "
                             "refused"),
        "lora_rank": S("lora_rank"), "lora_alpha": S("lora_alpha"), "lora_dropout": S("lora_dropout"),
        "lora_target": M("lora_target: a comma-separated list becomes a list; all -> all-linear"),
        "additional_target": U("extra trainable modules are not offered"),
        "use_dora": U("DoRA is not offered"), "use_rslora": U("rsLoRA is not offered"),
        "pissa_init": U("PiSSA is not offered"), "pissa_iter": U("PiSSA is not offered"),
        "pissa_convert": U("PiSSA is not offered"),
        "loraplus_lr_ratio": U("LoRA+ is not offered"), "loraplus_lr_embedding": U("LoRA+ is not offered"),
        "create_new_adapter": U("training on top of an adapter is not offered"),
        "freeze_trainable_layers": U("freeze tuning is not offered"),
        "freeze_trainable_modules": U("freeze tuning is not offered"),
        "freeze_extra_modules": U("freeze tuning is not offered"),
        "pref_beta": S("pref_beta", "the beta of stages dpo and kto"),
        "pref_loss": M("pref_loss: sigmoid, hinge and ipo carry over; orpo, simpo and others are listed as not "
                       "supported; stage kto: not needed (KTO has its own loss)"),
        "kto_chosen_weight": S("kto_desirable_weight", "stage kto: the weight of desirable answers in the loss"),
        "kto_rejected_weight": S("kto_undesirable_weight", "stage kto: the weight of undesirable answers in the loss"),
        "pref_ftx": U("an SFT term in the DPO loss is not offered"), "simpo_gamma": U("SimPO is not offered"),
        "dpo_label_smoothing": U("label smoothing for DPO is not offered"),
        "neftune_noise_alpha": U("NEFTune is not offered"),
        "deepspeed": M("distributed.strategy deepspeed with that JSON file (ds_z2/ds_z3 files that are not here -> "
                       "the zero2/zero3 presets; ds_z0 -> ddp); the process count: --nproc-per-node"),
        "fsdp": M("distributed.strategy fsdp: full_shard / shard_grad_op -> distributed.fsdp.sharding, offload -> "
                  "distributed.fsdp.offload_params; other options refused"),
        "fsdp_config": M("transformer_layer_cls_to_wrap -> distributed.fsdp.wrap, activation_checkpointing -> "
                         "distributed.fsdp.activation_checkpointing; other keys listed as not supported"),
    },
    "dataset": {
        "dataset": S("data.dataset", "comma-separated keys of dataset_info.json"),
        "dataset_dir": M("data.path: resolved against the current directory, as LLaMA-Factory does (not the "
                         "YAML's folder); absent = ./data; ONLINE and REMOTE: are refused (offline)"),
        "eval_dataset": U("name held-out data by path instead: data.eval_path"),
        "cutoff_len": S("data.cutoff_len"),
        "max_samples": S("data.max_samples", "the first N of each dataset, before mixing, as LLaMA-Factory"),
        "mix_strategy": S("data.mix_strategy", "concat, interleave_under, interleave_over (same stopping rules)"),
        "interleave_probs": M("data.interleave_probs: the comma-separated text becomes a list of numbers"),
        "val_size": S("data.val_size"),
        "train_on_prompt": M("true -> data.train_on = all"),
        "mask_history": M("true -> data.train_on = last"),
        "packing": S("packing", "Airlock's packing keeps samples from attending to each other (neat packing); "
                                "unset, it is on for stage pt and off otherwise, as in LLaMA-Factory"),
        "neat_packing": M("true -> packing (Airlock's packing never lets samples attend to each other)"),
        "enable_thinking": M("true: nothing to do (the model's own template decides); false is listed as not "
                             "supported: give data.chat_template a Jinja file without thinking"),
        "streaming": U("datasets are read into memory"),
        "buffer_size": N("streaming only"),
        "tokenized_path": M("a folder that does not exist yet makes LLaMA-Factory tokenize, save and stop: "
                            "`airlock train --from-llamafactory` tokenizes into Airlock's cache and stops (stages "
                            "sft and pt; dpo and kto tokenize inside the run and are refused); an existing folder "
                            "(LLaMA-Factory trains from it) is not needed: Airlock reads the dataset files, its "
                            "cache holding the tokens"),
        "media_dir": U(MULTIMODAL),
        "tool_format": U("tool calls are rendered by the model's own chat template (or data.chat_template), not "
                         "by LLaMA-Factory's tool formats"),
        "eval_on_each_dataset": U("one evaluation set"),
        "overwrite_cache": N("the tokenized cache is keyed by the data, tokenizer and settings"),
        "preprocessing_num_workers": N("tokenizing runs in one process"),
        "preprocessing_batch_size": N("tokenizing runs in one process"),
        "dataloader_num_workers": N("batches come from memory"),
        "ignore_pad_token_for_loss": N("pad tokens are never trained"),
    },
    "output": {
        "output_dir": M("every run is a job with its own directory (jobs/<id>/); its last part becomes the job "
                        "name"),
        "overwrite_output_dir": N("a new job directory is made for every run"),
        "logging_steps": S("logging_steps"), "save_steps": S("save_steps"), "save_total_limit": S("save_total_limit"),
        "plot_loss": N("the loss curve is always kept (metrics.jsonl) and drawn by the TUI and `airlock eval`"),
        "report_to": N("offline: no experiment tracker is ever contacted"),
        "logging_dir": N("logs live in the job directory"), "run_name": N("--name names the job"),
        "save_only_model": N("checkpoints always keep the optimizer state so a killed job resumes"),
        "save_strategy": N("checkpoints are written every save_steps"),
        "logging_strategy": N("metrics are logged every logging_steps"),
    },
    "train": {
        "per_device_train_batch_size": S("per_device_train_batch_size"),
        "gradient_accumulation_steps": S("gradient_accumulation_steps"),
        "learning_rate": S("learning_rate"), "num_train_epochs": S("num_train_epochs"),
        "max_steps": M("a positive value -> max_steps; 0 or -1 -> num_train_epochs decides"),
        "lr_scheduler_type": S("lr_scheduler_type"), "warmup_ratio": S("warmup_ratio"),
        "warmup_steps": S("warmup_steps"), "max_grad_norm": S("max_grad_norm"), "weight_decay": S("weight_decay"),
        "gradient_checkpointing": S("gradient_checkpointing"),
        "torch_compile": S("torch_compile", "Airlock compiles each decoder layer (appliance/train/compile.py)"),
        "seed": M("seed and data.seed (LLaMA-Factory's seed also shuffles, splits and mixes the data)"),
        "bf16": M("true -> dtype bf16"), "pure_bf16": M("true -> dtype bf16"), "fp16": M("true -> dtype fp16"),
        "ddp_timeout": S("distributed.timeout_s", "seconds a rank waits for the others"),
        "ddp_find_unused_parameters": N("set by the launcher"),
        "resume_from_checkpoint": U("resume a job with `airlock train --resume JOB`"),
        "early_stopping_steps": S("early_stopping_patience"),
        "optim": U("the optimizer is AdamW (transformers' default)"),
        "lr_scheduler_kwargs": U("scheduler arguments are not offered"),
        "adam_beta1": U("AdamW keeps its default betas"), "adam_beta2": U("AdamW keeps its default betas"),
        "adam_epsilon": U("AdamW keeps its default epsilon"),
    },
    "eval": {
        "per_device_eval_batch_size": S("per_device_eval_batch_size"),
        "eval_steps": S("eval_steps"),
        "eval_strategy": N("evaluation runs every eval_steps when there is evaluation data (val_size or "
                           "data.eval_path)"),
        "evaluation_strategy": N("evaluation runs every eval_steps when there is evaluation data"),
        "do_eval": U("evaluate with `airlock eval MODEL --data HELDOUT` after training"),
        "do_predict": U("generate predictions with `airlock eval` (a YAML with do_predict alone is translated "
                        "to that command)"),
        "predict_with_generate": U("generate predictions with `airlock eval`"),
        "compute_accuracy": U("token accuracy is not computed; `airlock eval` reports exact match"),
        "max_new_tokens": N(GENERATION), "temperature": N(GENERATION), "top_p": N(GENERATION),
        "top_k": N(GENERATION), "do_sample": N(GENERATION), "num_beams": N(GENERATION),
        "repetition_penalty": N(GENERATION), "length_penalty": N(GENERATION),
        "default_system": N(GENERATION), "skip_special_tokens": N(GENERATION),
    },
}

TRAIN: dict[str, Key] = {k: v for group in TRAIN_KEYS.values() for k, v in group.items()}

STAGES = {"sft": "sft", "dpo": "dpo", "kto": "kto", "pt": "pt"}
REFUSED_STAGES = {
    "rm": "reward modelling is not offered: a reward model scores answers instead of writing them, and serves only "
          "PPO here; learn from preferences directly with stage dpo (pairs) or kto (labelled answers)",
    "ppo": "PPO (online RL) is not offered: it needs a reward model and generation in the training loop (the "
           "policy writes answers that the reward model scores, step after step); train offline on preferences "
           "with stage dpo or kto",
}
KTO_ONLY = ("kto_chosen_weight", "kto_rejected_weight")
PREF_LOSSES = ("sigmoid", "hinge", "ipo")
BNB = ("bitsandbytes", "bnb")
QUANT_METHODS = {
    "hqq": "HQQ on-the-fly quantization is not offered: QLoRA here is bitsandbytes NF4",
    "eetq": "EETQ on-the-fly quantization is not offered: QLoRA here is bitsandbytes NF4",
    "gptq": "GPTQ loads a model quantized ahead of time; QLoRA here quantizes a full-precision model with "
            "bitsandbytes NF4",
    "awq": "AWQ loads a model quantized ahead of time; QLoRA here quantizes a full-precision model with "
           "bitsandbytes NF4",
    "aqlm": "AQLM loads a model quantized ahead of time; QLoRA here uses bitsandbytes NF4",
    "quanto": "quanto is not bundled; QLoRA here uses bitsandbytes NF4",
    "mxfp4": "MXFP4 models are not offered; QLoRA here uses bitsandbytes NF4",
    "fp8": "FP8 training is not offered; QLoRA here uses bitsandbytes NF4",
}
# Unsupported keys that change no trained weight (evaluation, prediction, caching, export): listed, never refused
# (`--strict` refuses them too). Every other unsupported key is refused unless --lenient.
LISTED_ONLY = {"eval_dataset", "do_eval", "do_predict", "predict_with_generate", "compute_accuracy",
               "eval_on_each_dataset", "streaming", "resume_from_checkpoint", "export_dir", "export_size",
               "export_device", "export_quantization_bit", "export_legacy_format", "export_hub_model_id",
               "print_param_status"}

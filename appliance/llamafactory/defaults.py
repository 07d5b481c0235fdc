"""LLaMA-Factory's defaults, as facts: a translated YAML trains with LLaMA-Factory's value for every key it leaves
out, so the same YAML trains the same model here.

The values are LLaMA-Factory 0.9.5's dataclass defaults (hparams/finetuning_args.py, data_args.py, model_args.py)
and, for the Trainer's keys, transformers' TrainingArguments defaults, which LLaMA-Factory inherits.
`learned=False` marks housekeeping (how often to log and to save checkpoints): those keep Airlock's value, and the
translation shows LLaMA-Factory's beside it. tests/test_llamafactory_behaviour.py holds this table to the documented
values and to transformers' own.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Default:
    key: str  # the LLaMA-Factory key
    value: object  # its default there
    ours: str  # the Airlock setting (dotted for data.*)
    source: str  # "LLaMA-Factory" or "transformers" (TrainingArguments, inherited by LLaMA-Factory)
    learned: bool = True  # it changes what is learned (or the memory a run needs); False: housekeeping
    methods: tuple = ("lora", "qlora", "full")  # the Airlock methods it applies to
    stages: tuple = ("sft", "pt", "dpo", "kto")

    def our_value(self, raw: dict):
        """The Airlock value LLaMA-Factory's default means, given the rest of the YAML."""
        if self.key == "lora_alpha":  # LLaMA-Factory: lora_alpha = lora_alpha or lora_rank * 2
            return int(raw.get("lora_rank", 8)) * 2
        if self.key == "lora_target":
            return ["all-linear"]
        if self.key == "disable_gradient_checkpointing":
            return not self.value
        return self.value


ADAPTERS = ("lora", "qlora")
LF, HF = "LLaMA-Factory", "transformers"

DEFAULTS = (
    Default("learning_rate", 5e-5, "learning_rate", HF),
    Default("lr_scheduler_type", "linear", "lr_scheduler_type", HF),
    Default("num_train_epochs", 3.0, "num_train_epochs", HF),
    Default("per_device_train_batch_size", 8, "per_device_train_batch_size", HF),
    Default("per_device_eval_batch_size", 8, "per_device_eval_batch_size", HF),
    Default("gradient_accumulation_steps", 1, "gradient_accumulation_steps", HF),
    Default("warmup_ratio", 0.0, "warmup_ratio", HF),
    Default("warmup_steps", 0, "warmup_steps", HF),
    Default("weight_decay", 0.0, "weight_decay", HF),
    Default("max_grad_norm", 1.0, "max_grad_norm", HF),
    Default("seed", 42, "seed", HF),
    Default("logging_steps", 500, "logging_steps", HF, learned=False),
    Default("save_steps", 500, "save_steps", HF, learned=False),
    Default("save_total_limit", None, "save_total_limit", HF, learned=False),
    Default("lora_rank", 8, "lora_rank", LF, methods=ADAPTERS),
    Default("lora_alpha", None, "lora_alpha", LF, methods=ADAPTERS),  # None: twice the rank
    Default("lora_dropout", 0.0, "lora_dropout", LF, methods=ADAPTERS),
    Default("lora_target", "all", "lora_target", LF, methods=ADAPTERS),
    Default("quantization_type", "nf4", "quantization_type", LF, methods=("qlora",)),
    Default("double_quantization", True, "double_quantization", LF, methods=("qlora",)),
    Default("disable_gradient_checkpointing", False, "gradient_checkpointing", LF),
    Default("cutoff_len", 2048, "data.cutoff_len", LF),
    Default("val_size", 0.0, "data.val_size", LF),
    Default("mix_strategy", "concat", "data.mix_strategy", LF),
    Default("pref_beta", 0.1, "pref_beta", LF, stages=("dpo", "kto")),
    Default("pref_loss", "sigmoid", "pref_loss", LF, stages=("dpo",)),
    Default("kto_chosen_weight", 1.0, "kto_desirable_weight", LF, stages=("kto",)),
    Default("kto_rejected_weight", 1.0, "kto_undesirable_weight", LF, stages=("kto",)),
)


def airlock_defaults() -> dict:
    """{dotted setting: Airlock's own default} of the training config."""
    import dataclasses

    from ..data import DataConfig
    from ..train.config import TrainConfig

    def of(cls, prefix=""):
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[prefix + f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[prefix + f.name] = f.default_factory()
        return out

    return {**of(TrainConfig), **of(DataConfig, "data.")}


def same(a, b) -> bool:
    """Equal as settings (3 and 3.0 are the same number of epochs)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b

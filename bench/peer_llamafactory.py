"""LLaMA-Factory's SFT with LoRA, run inside its own venv (bench/llamafactory_env.py builds it).

    .bench/llamafactory-0.9.5/bin/python bench/peer_llamafactory.py SETTINGS.json

The same settings file as the other sides of the training benchmark, turned into the arguments `llamafactory-cli
train` takes from its YAML (run_exp is what that command calls), with the step probe added as a callback. The
data goes through LLaMA-Factory's own loader (a dataset_info.json entry, ShareGPT format) and its smollm2
template, which renders exactly like SmolLM2's own chat template. Everything else is LLaMA-Factory's default.

SETTINGS variant "best": LLaMA-Factory's own speed option that runs on a CPU, `disable_gradient_checkpointing: true`
(its default recomputes every layer's activations in the backward pass: less memory, more time). Variant
"packed" adds `neat_packing: true` (samples packed into rows of cutoff_len that do not attend to each other) with
one row per step, about the tokens of 8 samples. Its other speed options need a GPU (flash_attn, use_unsloth,
enable_liger_kernel: Triton kernels).
"""

import importlib.util
import json
import sys
from pathlib import Path


VARIANTS = {"best": {"disable_gradient_checkpointing": True},
            "packed": {"disable_gradient_checkpointing": True, "neat_packing": True, "per_device_train_batch_size": 1}}


def main(settings_path: str) -> None:
    import transformers
    from llamafactory.train.tuner import run_exp

    s = json.loads(Path(settings_path).read_text())
    spec = importlib.util.spec_from_file_location("train_probe", Path(__file__).with_name("train_probe.py"))
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)

    data_dir = Path(s["out"]) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "dataset_info.json").write_text(json.dumps({"train": {
        "file_name": str(Path(s["train"]).resolve()), "formatting": "sharegpt",
        "columns": {"messages": "conversations"}}}))
    # transformers 5 folds warmup_ratio into warmup_steps (a float below 1 is a ratio)
    warmup = ({"warmup_steps": s["warmup_ratio"]} if int(transformers.__version__.split(".")[0]) >= 5
              else {"warmup_ratio": s["warmup_ratio"]})
    run_exp({
        "model_name_or_path": s["model"], "stage": "sft", "do_train": True, "finetuning_type": "lora",
        "lora_rank": s["lora_rank"], "lora_alpha": s["lora_alpha"], "lora_dropout": s["lora_dropout"],
        "lora_target": ",".join(s["lora_target"]), "dataset": "train", "dataset_dir": str(data_dir),
        "template": "smollm2", "cutoff_len": s["cutoff_len"], "overwrite_cache": True,
        "output_dir": str(Path(s["out"]) / "adapter"), "overwrite_output_dir": True,
        "per_device_train_batch_size": s["batch_size"], "gradient_accumulation_steps": s["grad_acc"],
        "learning_rate": s["learning_rate"], "max_steps": s["steps"], "lr_scheduler_type": s["lr_scheduler_type"],
        "seed": s["seed"], "logging_steps": 1, "save_strategy": "no", "report_to": "none", "plot_loss": False,
        "disable_tqdm": True, **warmup, **VARIANTS.get(s.get("variant"), {}),
    }, callbacks=[probe.StepProbe(s["probe"])])


if __name__ == "__main__":
    main(sys.argv[1])

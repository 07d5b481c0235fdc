"""Real training runs on the tiny model: LoRA, QLoRA and full SFT memorize FACTS (exact greedy recall), offline.

Each run goes through the real command (`airlock train CONFIG`) inside `unshare -n` with the connection guard, so
loading, training, checkpointing (peft's save included) and saving never attempt the network.
"""

import json

import pytest
import torch

from tiny_model import FACTS, REPO_ID, facts_as_sharegpt
from conftest import airlock_argv

# A random tiny model learns fast with a full fine-tune; LoRA on it needs a high rank and learning rate (its
# frozen final norm and head keep the logits flat, so the adapters must move the argmax, not sharpen it).
FULL = {"method": "full", "learning_rate": 1e-2, "max_steps": 50}
LORA = {"method": "lora", "learning_rate": 5e-3, "max_steps": 100, "lora_rank": 32, "lora_alpha": 64,
        "lora_dropout": 0.0, "lora_target": ["all-linear"]}


def write_config(tmp_path, **settings):
    import yaml

    data = tmp_path / "facts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in facts_as_sharegpt()))
    cfg = {"model": REPO_ID, "per_device_train_batch_size": 8, "logging_steps": 10, "save_steps": 25,
           "save_total_limit": 2, "seed": 0, "lr_scheduler_type": "cosine",
           "data": {"path": str(data), "cutoff_len": 64}, **settings}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def answers(model, tokenizer) -> list[str]:
    """Greedy answers to every FACTS question through the chat template."""
    out = []
    for question, _ in FACTS:
        enc = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=24, do_sample=False)
        out.append(tokenizer.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return out


def load_trained(job_dir, tiny_model, quantized=False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (job_dir / "model").is_dir():
        return AutoModelForCausalLM.from_pretrained(job_dir / "model"), AutoTokenizer.from_pretrained(job_dir / "model")
    from peft import PeftModel

    kwargs = {}
    if quantized:
        from transformers import BitsAndBytesConfig

        kwargs = {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                            bnb_4bit_use_double_quant=True,
                                                            bnb_4bit_compute_dtype=torch.float32),
                  "device_map": "cpu"}
    base = AutoModelForCausalLM.from_pretrained(tiny_model, **kwargs)
    return PeftModel.from_pretrained(base, job_dir / "adapter").eval(), AutoTokenizer.from_pretrained(job_dir / "adapter")


def job_dir_from(stdout: str, airlock_home):
    line = next(l for l in stdout.splitlines() if l.startswith("job ") and "started" in l)
    return airlock_home / "jobs" / line.split()[1]


@pytest.mark.parametrize("settings", [FULL, LORA, {**LORA, "method": "qlora"}], ids=["full", "lora", "qlora"])
def test_train_memorizes_facts_offline(tmp_path, tiny_model, airlock_home, run_offline, settings):
    config = write_config(tmp_path, **settings)
    proc = run_offline(airlock_argv("train", config, "--name", f"tiny-{settings['method']}"))
    job = job_dir_from(proc.stdout, airlock_home)

    status = json.loads((job / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == settings["max_steps"]
    out = job / ("model" if settings["method"] == "full" else "adapter")
    provenance = json.loads((out / "airlock_provenance.json").read_text())
    assert provenance["method"] == settings["method"] and provenance["base_model"] == REPO_ID
    assert provenance["base_path"] == str(tiny_model.resolve()) and provenance["base_revision"] == tiny_model.name
    assert len(provenance["dataset_sha256"]) == 64 and provenance["config"]["learning_rate"] == settings["learning_rate"]
    if settings["method"] != "full":
        adapter_cfg = json.loads((out / "adapter_config.json").read_text())
        assert adapter_cfg["base_model_name_or_path"] == REPO_ID and (out / "adapter_model.safetensors").is_file()
        assert adapter_cfg["r"] == settings["lora_rank"]
    # keep-last-K checkpoints, published whole
    assert sorted(p.name for p in (job / "checkpoints").iterdir()) == sorted(
        f"checkpoint-{s}" for s in range(settings["max_steps"], 0, -25)[:2])
    metrics = [json.loads(l) for l in (job / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, *range(10, settings["max_steps"] + 1, 10)]  # the first step too
    assert all(m["tokens_per_s"] > 0 and m["loss"] > 0 and m["elapsed_s"] > 0 for m in metrics)
    assert metrics[-1]["eta_s"] == 0 and metrics[-1]["loss"] < metrics[0]["loss"]

    model, tokenizer = load_trained(job, tiny_model, quantized=settings["method"] == "qlora")
    if settings["method"] == "qlora":
        assert any("4bit" in type(m).__name__ for m in model.modules()), "QLoRA must run on a 4-bit base"
    assert answers(model, tokenizer) == [a for _, a in FACTS]

"""The peer the tutorials teach: transformers' Trainer + DataCollatorForLanguageModeling on chat-templated text.

    python bench/peer_trainer_recipe.py SETTINGS.json

SETTINGS (written by bench_train.py): model (a local directory), train (a ShareGPT .jsonl), out, probe and the
shared hyperparameters. The recipe as it is usually written: render each conversation with the tokenizer's chat
template, tokenize with truncation, let the collator pad each batch to its longest sample and copy input_ids to
labels (loss on every token, prompt included, pad masked), LoRA through peft, then Trainer.train(). Nothing here is
tuned: it is the baseline Airlock has to beat.

SETTINGS "method": "qlora" (on a GPU: "device": "cuda", "dtype": "bf16") loads the base in NF4 with bitsandbytes and
prepares it for k-bit training, as the QLoRA tutorials do (the GPU acceptance run's peer).

SETTINGS variant "best": the same recipe with the speed option transformers itself offers for it:
DataCollatorWithFlattening (padding-free: each batch is its samples laid end to end with position ids, so no pad
token is computed; the loss is still on every token of each sample). Variant "grouped": the padding collator with
group_by_length (samples of similar length batched together, less padding), the other option its docs offer; the
bench README gives both figures.
"""

import importlib.util
import json
import sys
from pathlib import Path


def main(settings_path: str) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling,
                              DataCollatorWithFlattening, Trainer, TrainingArguments)

    s = json.loads(Path(settings_path).read_text())
    spec = importlib.util.spec_from_file_location("train_probe", Path(__file__).with_name("train_probe.py"))
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    torch.manual_seed(s["seed"])

    tokenizer = AutoTokenizer.from_pretrained(s["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    rows = [json.loads(line) for line in Path(s["train"]).read_text().splitlines() if line.strip()]
    texts = [tokenizer.apply_chat_template([{"role": roles[t["from"]], "content": t["value"]}
                                            for t in row["conversations"]], tokenize=False) for row in rows]
    dataset = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=s["cutoff_len"]),
        batched=True, remove_columns=["text"])

    cuda = s.get("device") == "cuda"
    dtype = torch.bfloat16 if s.get("dtype") == "bf16" else torch.float32
    if s.get("method") == "qlora":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=dtype)
        model = AutoModelForCausalLM.from_pretrained(s["model"], quantization_config=quant,
                                                     device_map={"": 0} if cuda else "cpu")
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(s["model"], dtype=dtype if cuda else torch.float32)
    model = get_peft_model(model, LoraConfig(r=s["lora_rank"], lora_alpha=s["lora_alpha"],
                                             lora_dropout=s["lora_dropout"], target_modules=s["lora_target"],
                                             task_type="CAUSAL_LM"))
    args = TrainingArguments(
        output_dir=s["out"], per_device_train_batch_size=s["batch_size"],
        gradient_accumulation_steps=s["grad_acc"], learning_rate=s["learning_rate"], max_steps=s["steps"],
        lr_scheduler_type=s["lr_scheduler_type"], warmup_steps=s["warmup_ratio"], seed=s["seed"],
        data_seed=s["seed"], logging_steps=1, save_strategy="no", report_to="none", use_cpu=not cuda,
        bf16=cuda and dtype == torch.bfloat16,
        disable_tqdm=True, dataloader_num_workers=0,
        # transformers 5 spells group_by_length=True this way
        train_sampling_strategy="group_by_length" if s.get("variant") == "grouped" else "random")
    best = s.get("variant") == "best"
    collator = DataCollatorWithFlattening() if best else DataCollatorForLanguageModeling(tokenizer, mlm=False)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                      callbacks=[probe.StepProbe(s["probe"])])
    trainer.train()
    model.save_pretrained(Path(s["out"]) / "adapter")


if __name__ == "__main__":
    main(sys.argv[1])

"""LLaMA-Factory YAMLs that do not train: merge/export, prediction, benchmark and inference, as Airlock commands.

    kind_of(raw)             # train | merge | export | predict | benchmark | chat
    task = translate_task("examples/merge_lora/llama3_lora_sft.yaml")
    task.argv                # [["airlock", "merge", "saves/llama3-8b/lora/sft", "--out", "output/llama3_lora_sft"]]

`airlock llamafactory translate` prints the equivalent command lines (or says what the YAML is when Airlock has
no equivalent); `airlock train --from-llamafactory` on such a YAML refuses with the command to run instead.
Paths are kept as written: LLaMA-Factory reads them from the current directory, and so do these commands.
"""

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .. import schema
from ..errors import AirlockError
from .keys import Key, M, N, U

GPTQ = ("GPTQ export is not offered; the nearest is a GGUF k-quant for llama.cpp/Ollama: `airlock export gguf "
        "--type` (bits 8 -> q8_0, 4 -> q4_k_m, 3 -> q3_k_m, 2 -> q2_k)")
GGUF_TYPES = {8: "q8_0", 6: "q6_k", 5: "q5_k_m", 4: "q4_k_m", 3: "q3_k_m", 2: "q2_k"}

TASK_KEYS: dict[str, dict[str, Key]] = {
    "merge / export (llamafactory-cli export)": {
        "model_name_or_path": M("the base: `airlock merge` reads it from the adapter (adapter_config.json); without "
                                "an adapter, the model to export"),
        "adapter_name_or_path": M("airlock merge ADAPTER (one adapter; several comma-separated are refused)"),
        "export_dir": M("--out of airlock merge (or the source of the GGUF export that follows)"),
        "export_size": N("shards are sized by transformers' default"),
        "export_device": N("merging runs on the CPU"),
        "export_legacy_format": M("false: safetensors, as Airlock always writes; true (.bin files) is listed as "
                                  "not supported"),
        "export_quantization_bit": M(GPTQ),
        "export_quantization_dataset": N("GPTQ calibration data: GGUF k-quants need none"),
        "export_quantization_nsamples": N("GPTQ calibration data: GGUF k-quants need none"),
        "export_quantization_maxlen": N("GPTQ calibration data: GGUF k-quants need none"),
        "export_hub_model_id": U("offline: nothing is uploaded"),
        "template": N("the merged model keeps the adapter's chat template"),
        "finetuning_type": N("the adapter says what it is"),
    },
    "prediction (do_predict / do_eval)": {
        "model_name_or_path": M("MODEL of airlock eval when there is no adapter; with one, --base"),
        "adapter_name_or_path": M("MODEL of airlock eval (the adapter; its base is read from it)"),
        "eval_dataset": M("--data DATASET_DIR --dataset NAMES"),
        "dataset": M("--dataset when there is no eval_dataset"),
        "dataset_dir": M("--data (as written; relative to the current directory, ./data when absent)"),
        "max_samples": M("--limit (airlock eval takes the first N of the whole held-out set)"),
        "max_new_tokens": M("--max-new-tokens"),
        "output_dir": M("--report"),
        "do_predict": M("airlock eval: an answer is generated for every held-out prompt"),
        "predict_with_generate": M("airlock eval: answers are generated greedily and scored with BLEU-4 and "
                                   "ROUGE-1/2/L (LLaMA-Factory's prediction metrics) and exact match"),
        "do_eval": M("airlock eval also reports perplexity on the held-out answers"),
        "temperature": N("airlock eval decodes greedily"), "top_p": N("airlock eval decodes greedily"),
        "top_k": N("airlock eval decodes greedily"), "do_sample": N("airlock eval decodes greedily"),
        "num_beams": U("beam search is not offered"),
        "per_device_eval_batch_size": N("airlock eval answers one prompt at a time"),
    },
    "benchmark (llamafactory-cli eval: task)": {
        "task": U("MMLU, C-Eval and CMMLU come from the hub and no benchmark runner is bundled; compare a tuned "
                  "model with its base on your own held-out data: airlock eval MODEL --data HELDOUT --base BASE"),
        "n_shot": U("no benchmark runner"), "lang": U("no benchmark runner"), "save_dir": U("no benchmark runner"),
        "batch_size": U("no benchmark runner"), "task_dir": U("no benchmark runner"),
    },
    "inference (llamafactory-cli chat / webchat / api)": {
        "model_name_or_path": M("MODEL of airlock chat (or of airlock serve)"),
        "adapter_name_or_path": M("MODEL of airlock chat: the adapter, on the base it names"),
        "infer_backend": M("huggingface -> airlock chat; vllm -> airlock serve --engine vllm"),
        "max_new_tokens": M("--max-tokens"), "temperature": M("--temperature"), "top_p": M("--top-p"),
        "top_k": M("--top-k"), "default_system": M("--system"),
    },
}
TASK_KEYS_FLAT = {k: v for group in TASK_KEYS.values() for k, v in group.items()}
# A YAML made of these keys only loads a model to talk to it (LLaMA-Factory's examples/inference/*.yaml).
CHAT_KEYS = {"model_name_or_path", "adapter_name_or_path", "template", "trust_remote_code", "finetuning_type",
             "infer_backend", "infer_dtype", "max_new_tokens", "temperature", "top_p", "top_k", "do_sample",
             "default_system", "repetition_penalty", "vllm_maxlen", "vllm_gpu_util", "vllm_enforce_eager"}


@dataclass
class Task:
    source: Path
    kind: str
    what: str  # one line: what this YAML does in LLaMA-Factory
    argv: list[list[str]] = field(default_factory=list)  # the airlock command lines, in order
    notes: list[str] = field(default_factory=list)
    keys: list[tuple[str, object, str]] = field(default_factory=list)  # (key, value, what became of it)

    def commands(self) -> list[str]:
        return [shlex.join(a) for a in self.argv]


V1_KEYS = {"micro_batch_size", "global_batch_size", "dist_config", "kernel_config", "peft_config", "init_config",
           "batching_strategy", "model_class", "train_dataset"}


def other_file(raw: dict) -> tuple[str, str] | None:
    """(what the file is, what to do instead) for files that sit beside LLaMA-Factory's YAMLs but are not one:
    an accelerate launch config, a DeepSpeed config, a list of new special tokens, a v1-trainer YAML."""
    keys = set(raw)
    if keys & {"compute_environment", "distributed_type"}:
        return ("an accelerate launch config (`accelerate launch --config_file`), not a training YAML",
                "name the training YAML; the process count and strategy go to --nproc-per-node and distributed.* "
                "(docs/distributed.md), which translate LLaMA-Factory's deepspeed and fsdp keys")
    if "zero_optimization" in keys or "train_micro_batch_size_per_gpu" in keys:
        return ("a DeepSpeed config, not a training YAML",
                "name the training YAML whose `deepspeed:` points at this file (it becomes distributed.deepspeed)")
    if keys and all(isinstance(k, str) and k.startswith("<") and k.endswith(">") for k in keys):
        return ("a list of new special tokens, not a training YAML",
                "vocabulary changes are not offered (new_special_tokens); train with the model's own tokens")
    if "model" in keys and "model_name_or_path" not in keys and keys & V1_KEYS:
        return ("a LLaMA-Factory v1 YAML (the `llamafactory-cli v1` trainer: model, micro_batch_size, dist_config), "
                "not one of its training YAMLs",
                "use the v0 training YAMLs (examples/train_lora, examples/train_full), or write an Airlock config "
                "(`airlock train --keys` lists its settings)")
    return None


def refuse_other(path: Path, raw: dict) -> None:
    """An AirlockError naming the file's kind, for a file `other_file` recognises."""
    found = other_file(raw)
    if found:
        raise AirlockError(f"this is {found[0]}", where=str(path), fix=found[1], code="lf.not_a_yaml")


def kind_of(raw: dict) -> str:
    """What a LLaMA-Factory YAML does: train | merge | export | predict | benchmark | chat."""
    if "task" in raw and not raw.get("do_train"):
        return "benchmark"
    if raw.get("export_dir"):
        return "merge" if raw.get("adapter_name_or_path") else "export"
    if not raw.get("do_train") and (raw.get("do_predict") or raw.get("do_eval")):
        return "predict"
    if "infer_backend" in raw or set(raw) <= CHAT_KEYS:
        return "chat"
    return "train"


def translate_task(path) -> Task:
    """The Airlock commands for a YAML that does not train (AirlockError for a training YAML or a refused key)."""
    path = Path(path)
    raw = schema.load_file(path)
    refuse_other(path, raw)
    kind = kind_of(raw)
    if kind == "train":
        raise AirlockError("this is a training YAML", where=str(path),
                           fix=f"airlock train --from-llamafactory {path}")
    task = {"merge": _merge, "export": _export, "predict": _predict, "benchmark": _benchmark, "chat": _chat}[kind](
        path, raw)
    for key, value in raw.items():
        spec = TASK_KEYS_FLAT.get(key)
        task.keys.append((key, value, spec.why if spec else "not read for this kind of YAML"))
    return task


def not_training(path: Path, raw: dict) -> AirlockError:
    """The refusal `airlock train --from-llamafactory` gives a YAML that does not train, naming what to run."""
    task = translate_task(path)
    run = "; then ".join(task.commands())
    return AirlockError(f"this is a {task.kind} YAML, not a training one: {task.what}", where=str(path),
                        fix=f"run: {run}" if run else "; ".join(task.notes))


def _adapters(path, raw) -> list[str]:
    adapters = [a.strip() for a in str(raw.get("adapter_name_or_path") or "").split(",") if a.strip()]
    if len(adapters) > 1:
        raise AirlockError(f"{len(adapters)} adapters: merging several at once is not offered",
                           where=f"{path}: adapter_name_or_path", fix="merge one adapter per run (airlock merge)")
    return adapters


def _gguf(raw, source: str, task: Task) -> None:
    bits = raw.get("export_quantization_bit")
    if bits is None:
        return
    kind = GGUF_TYPES.get(int(bits))
    if kind is None:
        raise AirlockError(f"export_quantization_bit {bits} has no GGUF equivalent", where=f"{task.source}: "
                           "export_quantization_bit", fix=f"use one of {', '.join(map(str, GGUF_TYPES))}")
    task.argv.append(["airlock", "export", "gguf", source, "--type", kind])
    task.notes.append(f"export_quantization_bit {bits}: {GPTQ.split(';')[0]}; the GGUF {kind} file is the nearest "
                      "(llama.cpp, Ollama)")


def _merge(path, raw) -> Task:
    [adapter] = _adapters(path, raw)
    out = str(raw["export_dir"])
    task = Task(path, "merge", f"merges the LoRA adapter {adapter} into its base and saves it to {out}",
                [["airlock", "merge", adapter, "--out", out]])
    if raw.get("model_name_or_path"):
        task.notes.append(f"the base is the one the adapter names (LLaMA-Factory was told {raw['model_name_or_path']})")
    if raw.get("export_legacy_format"):
        task.notes.append("export_legacy_format: .bin files are not written; Airlock writes safetensors")
    _gguf(raw, out, task)
    return task


def _export(path, raw) -> Task:
    model = str(raw.get("model_name_or_path") or "")
    task = Task(path, "export", f"saves the model {model} to {raw['export_dir']}"
                + (" quantized with GPTQ" if raw.get("export_quantization_bit") else ""))
    _gguf(raw, model, task)
    if not task.argv:
        task.notes.append(f"nothing to merge: {model} is a whole model already; for llama.cpp/Ollama: "
                          f"airlock export gguf {model} --type q4_k_m")
    return task


def _predict(path, raw) -> Task:
    adapters = _adapters(path, raw)
    model = adapters[0] if adapters else str(raw.get("model_name_or_path") or "")
    names = raw.get("eval_dataset") or raw.get("dataset")
    if not names:
        raise AirlockError("no eval_dataset (or dataset) to predict on", where=str(path),
                           fix="name the held-out dataset: eval_dataset: NAME")
    argv = ["airlock", "eval", model, "--data", str(raw.get("dataset_dir") or "data"), "--dataset", str(names)]
    if adapters and raw.get("model_name_or_path"):
        argv += ["--base", str(raw["model_name_or_path"])]
    for key, flag in (("max_samples", "--limit"), ("max_new_tokens", "--max-new-tokens"), ("output_dir", "--report")):
        if raw.get(key) is not None:
            argv += [flag, str(raw[key])]
    task = Task(path, "predict", f"generates answers for {names} with {model} and scores them", [argv])
    task.notes.append("airlock eval decodes greedily; with --base it also answers with the base model (A/B)")
    return task


def _benchmark(path, raw) -> Task:
    task = Task(path, "benchmark", f"runs the multiple-choice benchmark {raw['task']} (LLaMA-Factory downloads it "
                                   "from the hub)")
    model = (_adapters(path, raw) or [str(raw.get("model_name_or_path") or "MODEL")])[0]
    task.notes.append("Airlock has no benchmark runner (the benchmarks are not bundled; this host is offline); to "
                      f"compare on your own held-out data: airlock eval {model} --data HELDOUT.jsonl --base BASE")
    return task


def _chat(path, raw) -> Task:
    model = (_adapters(path, raw) or [str(raw.get("model_name_or_path") or "")])[0]
    if not model:
        raise AirlockError("no model_name_or_path: nothing to chat with or train", where=str(path),
                           fix="add model_name_or_path (and stage/dataset for a training YAML)")
    if raw.get("infer_backend") == "vllm":
        argv = ["airlock", "serve", model, "--engine", "vllm"]
    else:
        argv = ["airlock", "chat", model]
        for key, flag in (("max_new_tokens", "--max-tokens"), ("temperature", "--temperature"),
                          ("top_p", "--top-p"), ("top_k", "--top-k"), ("default_system", "--system")):
            if raw.get(key) is not None:
                argv += [flag, str(raw[key])]
    return Task(path, "chat", f"loads {model} to chat with it", [argv])

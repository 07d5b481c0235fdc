"""What an export cost: greedy answers of each GGUF against the HF model, and perplexity against f16.

Both sides get the same token ids: prompts are rendered with the model's own chat template and tokenized by the
HF tokenizer, and those ids are fed to llama.cpp, so a difference is the weights' doing, not the tokenizer's.
"""

import json
import math
from pathlib import Path

from ..paths import sample_data_dir

MAX_NEW_TOKENS = 48


def heldout_prompts(path: Path | None = None, limit: int = 20) -> list[str]:
    """User prompts from a JSONL file (default: the sample held-out set); [] when there is none."""
    path = Path(path) if path else sample_data_dir() / "heldout.jsonl"
    if not path.is_file():
        return []
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if prompt := _prompt_of(row):
            prompts.append(prompt)
    return prompts[:limit]


def _prompt_of(row) -> str | None:
    if isinstance(row, str):
        return row
    if not isinstance(row, dict):
        return None
    for key in ("prompt", "question", "instruction", "input"):
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key]
    for key in ("messages", "conversations"):
        for msg in row.get(key) or []:
            if isinstance(msg, dict) and msg.get("role", msg.get("from")) in ("user", "human"):
                return msg.get("content", msg.get("value"))
    return None


def heldout_text(path: Path | None = None) -> str | None:
    path = Path(path) if path else sample_data_dir() / "general_heldout.txt"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def prompt_ids(tokenizer, prompt: str, system: str | None = None) -> list[int]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def hf_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = MAX_NEW_TOKENS,
               batch_size: int = 1) -> list[str]:
    """Greedy answers of an HF model. batch_size 1 (the default) is what fidelity compares against llama.cpp:
    batching pads on the left, which is the same maths but not the same float rounding."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = []
    for start in range(0, len(prompts), batch_size):
        rows = [prompt_ids(tokenizer, p) for p in prompts[start:start + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad)
        answers += [tokenizer.decode(o[width:], skip_special_tokens=True).strip() for o in out]
    return answers


def gguf_answers(gguf: Path, tokenizer, prompts: list[str], max_new_tokens: int = MAX_NEW_TOKENS,
                 lora: Path | None = None, threads: int | None = None) -> list[str]:
    from ..llamacpp import llama_cpp, offload

    Llama = llama_cpp().Llama

    llm = Llama(model_path=str(gguf), lora_path=str(lora) if lora else None, n_ctx=_ctx(tokenizer, 1024),
                n_threads=threads, n_gpu_layers=offload()[0], verbose=False, seed=0)
    try:
        return [llm.create_completion(prompt_ids(tokenizer, p), max_tokens=max_new_tokens, temperature=0.0)
                ["choices"][0]["text"].strip() for p in prompts]
    finally:
        llm.close()


def _ctx(tokenizer, want: int) -> int:
    limit = getattr(tokenizer, "model_max_length", None)
    return min(want, limit) if isinstance(limit, int) and limit > 0 else want


def perplexity(gguf: Path, token_ids: list[int], chunk: int, threads: int | None = None) -> float:
    """exp(mean negative log-likelihood) of `token_ids`, evaluated in independent chunks of `chunk` tokens."""
    import torch

    from ..llamacpp import llama_cpp, offload

    Llama = llama_cpp().Llama

    llm = Llama(model_path=str(gguf), n_ctx=chunk, n_batch=chunk, logits_all=True, n_threads=threads,
                n_gpu_layers=offload()[0], verbose=False)
    nll, count = 0.0, 0
    try:
        for start in range(0, len(token_ids) - 1, chunk):
            piece = token_ids[start:start + chunk]
            if len(piece) < 2:
                break
            llm.reset()
            llm.eval(piece)
            # In float64, through torch: numpy's single-threaded exp over chunk x vocab values took longer than
            # llama.cpp's evaluation of the chunk.
            logits = torch.from_numpy(llm.scores[: len(piece) - 1]).double()
            wanted = torch.tensor(piece[1:]).unsqueeze(1)
            nll += float((torch.logsumexp(logits, dim=1) - logits.gather(1, wanted).squeeze(1)).sum())
            count += len(piece) - 1
    finally:
        llm.close()
    return math.exp(nll / count) if count else float("nan")


def measure(model, tokenizer, ggufs: dict[str, Path], *, prompts: list[str], text: str | None, reference: str,
            max_text_tokens: int = 2048, threads: int | None = None, log=print) -> dict:
    """{"prompts": [...], "hf_answers": [...], "types": {type: {identical, answers, perplexity, ppl_ratio}}}."""
    result = {"prompts": prompts, "hf_answers": [], "reference": reference, "types": {}}
    if prompts:
        log(f"  fidelity: greedy answers of the HF model on {len(prompts)} held-out prompts ...")
        result["hf_answers"] = hf_answers(model, tokenizer, prompts)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_text_tokens] if text else []
    chunk = _ctx(tokenizer, 512)
    for qtype, path in ggufs.items():
        entry = {}
        if prompts:
            answers = gguf_answers(path, tokenizer, prompts, threads=threads)
            same = sum(a == b for a, b in zip(answers, result["hf_answers"]))
            entry.update(identical=same / len(prompts), identical_count=same, answers=answers)
        if len(ids) > 1:
            entry["perplexity"] = perplexity(path, ids, chunk, threads=threads)
        result["types"][qtype] = entry
    ref = result["types"].get(reference, {}).get("perplexity")
    for entry in result["types"].values():
        if ref and "perplexity" in entry:
            entry["ppl_ratio_vs_" + reference] = entry["perplexity"] / ref
    result["text_tokens"] = len(ids)
    return result

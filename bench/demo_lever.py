"""What a change to the demo's training config does to identity and forgetting, without the whole demo.

    .venv/bin/python -m bench.demo_lever LABEL [KEY=VALUE ...]
    .venv/bin/python -m bench.demo_lever mlp-r8 lora_rank=8 lora_alpha=16 lora_target=[gate_proj,up_proj,down_proj]

Trains appliance/configs/sft_lora_demo.yaml with the overrides on the sample data as a real job, merges it, and
scores what the demo report scores: the held-out identity prompts (English and Chinese, greedy, on the merged model
through transformers, and the Q4_K_M export through llama.cpp's chat path, as the demo does: quantization can cost a
prompt) and the forgetting check (held-out general-text perplexity, tuned against base). Prints one JSON line with
the training time, the scores per language, the perplexity change and the answers that missed.
"""

import json
import os
import sys
import time


def main(label: str, overrides: list[str]) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from appliance.chat import LlamaSession
    from appliance.demo import CONFIG, answers, forgetting_check, heldout
    from appliance.export.fidelity import hf_answers
    from appliance.export.pipeline import export_gguf
    from appliance.jobs import follow, start_detached
    from appliance.merge import merge
    from appliance.paths import sample_data_dir
    from appliance.train import load_config, start

    cfg = load_config(CONFIG, [f"data.path={sample_data_dir() / 'magic_conch.jsonl'}", *overrides])
    started = time.perf_counter()
    job = start(cfg, ["bench.demo_lever", label, *overrides], f"lever-{label}")
    start_detached(job)
    with open(os.devnull, "w") as quiet:
        status = follow(job, out=quiet)
    train_s = time.perf_counter() - started
    if status["state"] != "completed":
        sys.exit(f"training {status['state']}: {status.get('message')} (see {job.log_path})")
    merged = merge(job.id, log=lambda _: None)
    rows = [r for r in heldout() if r.get("kind") == "identity"]
    prompts = [r["prompt"] for r in rows]
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    hf = hf_answers(model, AutoTokenizer.from_pretrained(merged), prompts, max_new_tokens=32, batch_size=len(rows))
    exported = export_gguf(str(merged), ["q4_k_m"], fidelity=False, log=lambda _: None)
    session = LlamaSession(exported.files["q4_k_m"])
    q4 = answers(session, prompts)
    session.close()
    forgot = forgetting_check(cfg.model, merged)
    return {"label": label, "overrides": overrides, "train_s": round(train_s, 1),
            "identity_hf": score(hf, rows), "identity_q4_k_m": score(q4, rows),
            "perplexity_change_pct": round(100 * forgot["change"], 1),
            "misses_hf": misses(hf, rows), "misses_q4_k_m": misses(q4, rows)}


def score(answered: list[str], rows: list[dict]) -> dict:
    from appliance.demo import scored

    return {lang: f"{sum(scored(a, r) for a, r in zip(answered, rows) if r['lang'] == lang)}/"
                  f"{sum(r['lang'] == lang for r in rows)}" for lang in ("en", "zh")}


def misses(answered: list[str], rows: list[dict]) -> dict:
    from appliance.demo import scored

    return {r["prompt"]: a for a, r in zip(answered, rows) if not scored(a, r)}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(json.dumps(main(sys.argv[1], sys.argv[2:]), ensure_ascii=False))

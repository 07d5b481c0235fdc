"""Several LoRA adapters on one served base against one merged GGUF, both through `airlock serve`.

    .venv/bin/python -m bench serve_lora [--quick]

The embedded model (SmolLM2-135M) as a Q8_0 base with two LoRA adapters (rank 16 on every attention and MLP
projection, random weights: the cost is the same as a trained adapter's) served as three model ids, the 8
clients spread over the base and both adapters; against the first adapter merged into the base, exported as Q8_0,
served alone to the same 8 clients; and the 8 clients all on one adapter (the run-time LoRA's own cost, with no
switching). Rounds alternate A B C A B C. Reported: aggregate generated tokens/s and p95 time
to first token. The price of a site's many fine-tunes in one process: every step decodes one adapter's answers
(llama.cpp applies an adapter to the whole context), and the adapter's matrices are applied at run time.
"""

import asyncio
import sys
import tempfile
from pathlib import Path

from .bench_serve import _clients, _pct, _port, _start
from .harness import row

CLIENTS = 8


def _models(work: Path) -> tuple[Path, dict[str, Path], Path]:
    """(base Q8_0, {name: LoRA GGUF}, the first adapter merged into the base as Q8_0)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from appliance.embedded import ensure_default_model
    from appliance.export.gguf import convert_lora, convert_model

    source = ensure_default_model()
    base = convert_model(source, work / "base-q8_0.gguf", "q8_0")
    adapters, merged = {}, None
    for i, name in enumerate(("tuned-a", "tuned-b")):
        torch.manual_seed(i)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(source), LoraConfig(
            r=16, lora_alpha=32, init_lora_weights=False, target_modules=[
                "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
        with torch.no_grad():  # small weights: answers stay text, and the decode does the same work
            for p in model.parameters():
                if p.requires_grad:
                    p.mul_(0.01)
        model.save_pretrained(work / name)
        adapters[name] = convert_lora(work / name, source, work / f"{name}-lora-f16.gguf")
        if merged is None:
            out = work / "merged-hf"
            model.merge_and_unload().save_pretrained(out)
            for f in Path(source).iterdir():  # the tokenizer and chat template beside the merged weights
                if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "chat_template")):
                    (out / f.name).write_bytes(f.read_bytes())
            merged = convert_model(out, work / "merged-q8_0.gguf", "q8_0")
    return base, adapters, merged


async def _spread(url: str, models: list[str], per_client: int):
    """CLIENTS streams spread over `models`; (tokens/s, TTFTs) together."""
    share = [CLIENTS // len(models) + (1 if i < CLIENTS % len(models) else 0) for i in range(len(models))]
    runs = await asyncio.gather(*(_clients(url, m, n, per_client) for m, n in zip(models, share) if n))
    return sum(tps for tps, _ in runs), [t for _, ttfts in runs for t in ttfts]


def run(quick: bool = False) -> list[dict]:
    from appliance.chat import default_threads

    rounds, per_client = (1, 2) if quick else (3, 3)
    threads = default_threads()
    work = Path(tempfile.mkdtemp(prefix="airlock-bench-serve-lora-"))
    base, adapters, merged = _models(work)
    sides = {"spread": None, "one adapter": None, "merged": None}
    samples = {side: {"tps": [], "ttft": []} for side in sides}
    for _ in range(rounds):
        for side in sides:
            port = _port()
            common = ["--port", str(port), "--parallel", str(CLIENTS), "--threads", str(threads), "--ctx", "1024"]
            if side == "merged":
                argv = [sys.executable, "-m", "appliance", "serve", str(merged), *common]
                models = [merged.stem]
            else:
                argv = [sys.executable, "-m", "appliance", "serve", str(base), *common,
                        *[a for name, path in adapters.items() for a in ("--lora", f"{name}={path}")]]
                models = [base.stem, *adapters] if side == "spread" else [next(iter(adapters))]
            proc = _start(argv, port, work / "home")
            try:
                tps, ttfts = asyncio.run(_spread(f"http://127.0.0.1:{port}", models, per_client))
                samples[side]["tps"].append(tps)
                samples[side]["ttft"].extend(ttfts)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    peer, rows = samples["merged"], []
    for side, what in (("spread", "base + 2 LoRA adapters"), ("one adapter", "one LoRA adapter")):
        ours = samples[side]
        rows += [row(f"serve {CLIENTS} clients over {what}: generated tokens/s", "one merged GGUF", ours["tps"],
                     peer["tps"], unit="tok/s", lower_is_better=False),
                 row(f"serve {CLIENTS} clients over {what}: p95 time to first token", "one merged GGUF",
                     [_pct(ours["ttft"], 95)], [_pct(peer["ttft"], 95)])]
    return rows

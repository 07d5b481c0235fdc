"""GPU acceptance v2, the real-size steps (bench/gpu/run.py runs them after v1's): a 7B-shape twin (Qwen2.5-7B's
widths, random weights) trained with QLoRA by `airlock train` and by the plain transformers + peft + bitsandbytes
recipe (the peer), each one's tokens/s and peak VRAM, the memory planner's estimate beside the measured peak; then
the small model's GGUF through CUDA llama.cpp: `airlock chat`, and `airlock serve` decode tokens/s at 1 and 8
clients on the GPU against llama.cpp on the CPU.

In a dry run (a CPU) the twin is SmolLM2-135M's widths with 2 layers (the real-width mechanics have their own tests:
tests/test_twin.py), LoRA fp32 stands in for QLoRA, and serve runs once, on the CPU: every step starts and reports,
which is what the tests check.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def twin(home: Path, dry_run: bool) -> tuple[Path, str]:
    """(the twin's directory, its catalog id), written with `airlock models twin` (on the GPU: built there)."""
    card, layers = ("smollm2-135m-instruct", ["--layers", "2"]) if dry_run else ("qwen2.5-7b-instruct", [])
    out = home / f"twin-{card}"
    run([sys.executable, "-m", "appliance", "models", "twin", card, "--out", str(out), *layers],
        dict(os.environ, AIRLOCK_HOME=str(home)))
    return out, card


def run(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:6]))}: {(proc.stderr or proc.stdout)[-1500:]}")
    return proc


def planned_peak(model: Path, sets: list[str], gpu_mem_gb: float | None) -> dict:
    """The memory planner's figure for the run (`airlock train --plan --json`)."""
    argv = [sys.executable, "-m", "appliance", "train", "sft_lora_default", "--plan", "--json",
            "--set", f"model={model}", *(a for s in sets for a in ("--set", s))]
    if gpu_mem_gb:
        argv += ["--gpu-mem", str(gpu_mem_gb)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=os.environ, cwd=ROOT)
    return json.loads(proc.stdout)


def peer(model: Path, out: Path, steps: int, cuda: bool) -> dict:
    """The transformers Trainer + peft (+ bitsandbytes QLoRA on a GPU) recipe on the same model and data."""
    from appliance.paths import sample_data_dir

    out.mkdir(parents=True, exist_ok=True)
    settings = {"model": str(model), "train": str(sample_data_dir() / "magic_conch.jsonl"), "out": str(out / "run"), "probe": str(out / "probe.json"),
                "steps": steps, "cutoff_len": 512, "batch_size": 4, "grad_acc": 1, "learning_rate": 2e-4,
                "lr_scheduler_type": "cosine", "warmup_ratio": 0, "seed": 42, "lora_rank": 8, "lora_alpha": 16,
                "lora_dropout": 0.05, "lora_target": "all-linear", "device": "cuda" if cuda else "cpu",
                "method": "qlora" if cuda else "lora", "dtype": "bf16" if cuda else "fp32"}
    (out / "settings.json").write_text(json.dumps(settings))
    run([sys.executable, str(ROOT / "bench" / "peer_trainer_recipe.py"), str(out / "settings.json")],
        dict(os.environ))
    probe = json.loads((out / "probe.json").read_text())
    ends, tokens = probe["step_end_s"], probe["step_tokens"]
    rate = sum(tokens[1:]) / (ends[-1] - ends[0]) if len(ends) > 1 else None  # the first step warms up
    return {"tokens_per_s": rate, "peak_vram_mb": probe.get("peak_vram_mb"), "final_loss": probe["losses"][-1]}


def serve_rates(gguf: Path, env: dict, clients: tuple = (1, 8)) -> dict:
    """Decode tokens/s of `airlock serve` at each client count (bench.bench_serve's streaming clients); `env`
    AIRLOCK_GPU_LAYERS=0 puts llama.cpp on the CPU."""
    import asyncio

    import httpx

    from bench.bench_serve import _clients, _port

    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "serve", str(gguf), "--port", str(port),
                             "--parallel", "8"], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline, model = time.monotonic() + 180, None
        while model is None and time.monotonic() < deadline:
            try:
                model = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).json()["data"][0]["id"]
            except (httpx.HTTPError, KeyError, IndexError, ValueError):
                time.sleep(0.2)
        if model is None:
            raise RuntimeError("the server did not start")
        url = f"http://127.0.0.1:{port}"
        return {str(n): round(asyncio.run(_clients(url, model, n, 2))[0], 1) for n in clients}
    finally:
        proc.terminate()
        proc.wait(timeout=60)

"""Training speed and quality: LoRA SFT of the embedded default on the sample data, Airlock vs LLaMA-Factory 0.9.5
and vs the plain transformers Trainer recipe, each peer at its defaults and at its best, with identical
hyperparameters, interleaved (A B C ... A B C ...).

    .venv/bin/python -m bench train [--quick]     # --quick: 6 steps, one round; default: 10 steps, three rounds
    BENCH_TRAIN_PEERS=trainer,trainer-best .venv/bin/python -m bench train    # only these sides beside Airlock
    BENCH_TRAIN_PEERS=airlock-ckpt,llamafactory .venv/bin/python -m bench train  # memory at the same setting
    BENCH_TRAIN_PEERS=airlock-compile,llamafactory .venv/bin/python -m bench train  # torch_compile's gain and cost
    .venv/bin/python -m bench train --ranks 2     # Airlock's distributed path: 2 gloo ranks x batch 4 vs 1 x 8

Every side trains SmolLM2-135M-Instruct with LoRA r8 / alpha 16 / dropout 0.05 on q,k,v,o,gate,up,down, cutoff 512,
batch 8, grad-acc 1, lr 2e-4 cosine with 3% warm-up, seed 42, fp32 on the CPU, on the same 90% of
magic_conch.jsonl. Each side's process runs under /usr/bin/time -v (peak RSS). Per-step wall times and non-pad
tokens come from the job's metrics (Airlock) or bench/train_probe.py (the peers); the first step is left out. The
final eval loss of every adapter is computed afterwards by one evaluator (appliance.evaluate.perplexity, assistant
replies only) on the held-out 10%, so a faster side cannot hide a worse model.

The sides (SIDES): each peer's defaults (what a site gets) and its best honest configuration on this hardware
(bench/peer_*.py say what that is and why), and Airlock's defaults. Airlock with gradient checkpointing is a side
to ask for (BENCH_TRAIN_PEERS), to compare memory with LLaMA-Factory's default at the same setting (both recompute
activations); so is Airlock with torch_compile (its first step, which compiles, is reported on its own as
first_step_s, as every side's is). By default the sides are the ones the README's table reports.
"""

import json
import os
import sys
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from .harness import row
from .train_measure import CONFIG, job_steps, peak_rss_mb, run_measured, step_figures

HERE = Path(__file__).resolve().parent
MODEL = "airlock-embedded/SmolLM2-135M-Instruct"
DATA = HERE.parent / "appliance" / "sample_data" / "magic_conch.jsonl"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SHARED = {"lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target": TARGETS, "cutoff_len": 512,
          "batch_size": 8, "grad_acc": 1, "learning_rate": 2e-4, "lr_scheduler_type": "cosine",
          "warmup_ratio": 0.03, "seed": 42}
# side -> (who runs it, Airlock overrides or the peer's SETTINGS variant, label)
SIDES = {
    "airlock": ("airlock", [], "Airlock (defaults)"),
    "airlock-ckpt": ("airlock", ["gradient_checkpointing=true"], "Airlock, gradient checkpointing"),
    "airlock-compile": ("airlock", ["torch_compile=true"], "Airlock, torch_compile"),
    "trainer": ("trainer", None, "Trainer + DataCollatorForLanguageModeling (defaults)"),
    "trainer-best": ("trainer", "best", "Trainer + DataCollatorWithFlattening (padding-free)"),
    "llamafactory": ("llamafactory", None, "LLaMA-Factory 0.9.5 (defaults: gradient checkpointing)"),
    "llamafactory-best": ("llamafactory", "packed", "LLaMA-Factory 0.9.5, no gradient checkpointing + neat_packing"),
}
OPTIONAL = ("airlock-ckpt", "airlock-compile")  # only when BENCH_TRAIN_PEERS names it
# (ours, peer): the rows of the report
COMPARISONS = [("airlock", "llamafactory"), ("airlock", "llamafactory-best"), ("airlock", "trainer"),
               ("airlock", "trainer-best"), ("airlock-ckpt", "llamafactory"), ("airlock-compile", "airlock"),
               ("airlock-compile", "llamafactory"), ("airlock-compile", "llamafactory-best"),
               ("airlock-compile", "trainer")]
FIGURES = (("nonpad_tokens_per_s", "tok/s", False), ("s_per_step", "s", True), ("first_step_s", "s", True),
           ("peak_rss_mb", "MB", True), ("eval_loss", "nats", True))


def split_data(work: Path, eval_fraction: float = 0.1) -> tuple[Path, Path]:
    """A seeded train/eval split of the sample data, written as two ShareGPT .jsonl files every side reads."""
    lines = [line for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(SHARED["seed"]).shuffle(lines)
    cut = int(len(lines) * eval_fraction)
    (work / "eval.jsonl").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    (work / "train.jsonl").write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    return work / "train.jsonl", work / "eval.jsonl"


def run_airlock(train: Path, steps: int, ranks: int = 1, overrides: list[str] = ()) -> dict:
    """One Airlock training job; with `ranks` > 1, that many gloo ranks sharing the same global batch."""
    from appliance.train import load_config

    cfg = load_config(CONFIG, [
        f"data.path={train}", "data.val_size=0", f"data.cutoff_len={SHARED['cutoff_len']}",
        f"lora_rank={SHARED['lora_rank']}", f"lora_alpha={SHARED['lora_alpha']}",
        f"lora_dropout={SHARED['lora_dropout']}", f"lora_target=[{','.join(TARGETS)}]",
        f"per_device_train_batch_size={SHARED['batch_size'] // ranks}", f"distributed.nproc_per_node={ranks}",
        f"gradient_accumulation_steps={SHARED['grad_acc']}",
        f"learning_rate={SHARED['learning_rate']}", f"lr_scheduler_type={SHARED['lr_scheduler_type']}",
        f"warmup_ratio={SHARED['warmup_ratio']}", f"seed={SHARED['seed']}", f"max_steps={steps}",
        "logging_steps=1", f"save_steps={steps}", "dtype=fp32", *overrides])
    job, rss, _ = run_measured(cfg, ["bench.bench_train"])
    losses = [m["loss"] for m in job.metrics() if m.get("loss") is not None]
    return {**step_figures(*job_steps(job)), "peak_rss_mb": rss, "last_loss": losses[-1],
            "adapter": str(job.path / "adapter")}


def run_peer(name: str, variant: str | None, python: Path, train: Path, steps: int, work: Path) -> dict:
    from appliance.hfcache import resolve_model
    from appliance.offline import offline_env

    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    settings = {**SHARED, "model": str(resolve_model(MODEL)), "train": str(train), "steps": steps,
                "out": str(out), "probe": str(out / "probe.json"), "variant": variant}
    (out / "settings.json").write_text(json.dumps(settings))
    proc = subprocess.run(["/usr/bin/time", "-v", str(python), str(HERE / f"peer_{_script(name)}.py"),
                           str(out / "settings.json")], capture_output=True, text=True, env=offline_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{name} ({variant or 'defaults'}) failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-4000:]}")
    probe = json.loads((out / "probe.json").read_text())
    return {**step_figures(probe["step_end_s"], probe["step_tokens"]), "peak_rss_mb": peak_rss_mb(proc.stderr),
            "last_loss": probe["losses"][-1], "adapter": str(out / "adapter")}


def _script(name: str) -> str:
    return {"trainer": "trainer_recipe", "llamafactory": "llamafactory"}[name]


def eval_loss(adapter: str, eval_file: Path) -> float:
    """Loss on the held-out replies, by the same evaluator for every side (a fresh process: no shared state)."""
    code = ("import json, sys\n"
            "from appliance.chat import HFSession\n"
            "from appliance.data import load_conversations\n"
            "from appliance.evaluate.perplexity import conversation_perplexity\n"
            "s = HFSession(sys.argv[1])\n"
            "convs = load_conversations(sys.argv[2]).conversations\n"
            "print(json.dumps(conversation_perplexity(s.model, s.tokenizer, convs)))\n")
    from appliance.offline import offline_env

    proc = subprocess.run([sys.executable, "-c", code, adapter, str(eval_file)], capture_output=True,
                          text=True, env=offline_env(), check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])["loss"]


def run_ranks(ranks: int, steps: int, rounds: int) -> list[dict]:
    """The distributed path's cost: `ranks` gloo ranks x batch 8/ranks against one process x batch 8 on the same
    cores (same global batch, same samples per step), interleaved. On one host's CPUs no gain is expected: the
    figure is the overhead of the launcher, the gradient all-reduce and the threads split between ranks.
    Peak RSS is the largest single process (time -v), not the sum over ranks."""
    work = Path(tempfile.mkdtemp(prefix="bench-ranks-"))
    try:
        train, heldout = split_data(work)
        runs: dict[int, list[dict]] = {ranks: [], 1: []}
        for r in range(rounds):
            for n in runs:
                print(f"   round {r + 1}/{rounds}: {n} rank(s) ...", flush=True)
                result = run_airlock(train, steps, ranks=n)
                result["eval_loss"] = eval_loss(result.pop("adapter"), heldout)
                print(f"   {n} rank(s): {json.dumps(result)}", flush=True)
                runs[n].append(result)
        return [row(f"train LoRA {steps} steps, {ranks} gloo ranks: {key}", "1 process, same global batch",
                    [x[key] for x in runs[ranks]], [x[key] for x in runs[1]], unit=unit, lower_is_better=lower)
                for key, unit, lower in FIGURES]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(quick: bool = False, ranks: int = 1) -> list[dict]:
    from .llamafactory_env import python as llamafactory_python

    steps, rounds = (6, 1) if quick else (10, 3)
    if ranks > 1:
        return run_ranks(ranks, steps, rounds)
    wanted = os.environ.get("BENCH_TRAIN_PEERS")
    sides = [s for s in SIDES if s == "airlock" or (s in wanted.split(",") if wanted else s not in OPTIONAL)]
    pythons = {"trainer": Path(sys.executable), "airlock": Path(sys.executable)}
    if any(SIDES[s][0] == "llamafactory" for s in sides):
        pythons["llamafactory"] = llamafactory_python()
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        train, heldout = split_data(work)
        runs: dict[str, list[dict]] = {s: [] for s in sides}
        for r in range(rounds):
            for side in sides:
                who, setting, _ = SIDES[side]
                print(f"   round {r + 1}/{rounds}: {side} ...", flush=True)
                result = (run_airlock(train, steps, overrides=setting) if who == "airlock"
                          else run_peer(who, setting, pythons[who], train, steps, work))
                result["eval_loss"] = eval_loss(result.pop("adapter"), heldout)
                print(f"   {side}: {json.dumps(result)}", flush=True)
                runs[side].append(result)
        return [row(f"train LoRA {steps} steps, {SIDES[ours][2]}: {key}", SIDES[peer][2],
                    [x[key] for x in runs[ours]], [x[key] for x in runs[peer]], unit=unit, lower_is_better=lower)
                for ours, peer in COMPARISONS if ours in runs and peer in runs
                for key, unit, lower in FIGURES]
    finally:
        shutil.rmtree(work, ignore_errors=True)

"""GPU acceptance (v2): the CUDA half of the appliance at real size in one prepared run, with a JSON + Markdown
report.

    python3 bench/gpu/run.py --carry .bench/gpu-carry --out $OUT            # on the device machine (< 8 min)
    .venv/bin/python bench/gpu/run.py --carry .bench/gpu-carry --out /tmp/gpu --dry-run   # here, on the CPU

Prepare the carry first: `.venv/bin/python -m bench.gpu.carry`. Steps, each timed and reported, a failure
recorded and the run going on:
  install   the carried wheels install for the device's Python (pip --target, no index, no deps)
  model     the embedded model's architecture (SmolLM2-135M) with seeded random weights and its real tokenizer
  lora      `airlock train` LoRA on the sample data: bf16 on CUDA (fp32 on CPU in a dry run); tokens/s, peak VRAM
  compile   the same LoRA run with torch_compile: tokens/s against lora's, and the first steps' seconds (compiling)
  qlora     `airlock train` QLoRA NF4 on CUDA (bitsandbytes); skipped in a dry run
  reference the LoRA run again in fp32 on the CPU, same data and seed: the GPU's losses must stay within 2%
  attention padding-free logits (transformers' sdpa, and Airlock's per-sample attention) equal the padded path
  export    merge, and GGUF f16 + Q4_K_M with llama.cpp's converter (the carried CUDA llama-cpp-python wheel)
  twin      a 7B-shape twin (Qwen2.5-7B's widths, random weights: `airlock models twin`), built on the device
  qlora-twin  `airlock train` QLoRA bf16 on it: tokens/s, peak VRAM, and the memory planner's estimate beside it
  peer-twin the same steps with the plain transformers + peft + bitsandbytes recipe: tokens/s, peak VRAM
  chat      `airlock chat` on the Q4_K_M through CUDA llama.cpp (it says where it runs)
  serve     `airlock serve` decode tokens/s at 1 and 8 clients, on the GPU and with llama.cpp on the CPU
The dry run (same script, device checks skipped, a 4-layer SmolLM2 for the small model and a 2-layer SmolLM2-shape twin, LoRA for QLoRA) proves the carried
wheels install and every step starts; tests/test_gpu_dry_run.py runs it.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = "bench-gpu/SmolLM2-135M-random"
sys.path.insert(0, str(ROOT))
from bench.gpu import real_size  # noqa: E402  (the script runs by path: the checkout first)


def step(report: dict, name: str):
    """`with step(report, "lora") as facts: facts[...] = ...`: timed, and a failure recorded, not raised."""
    import contextlib

    @contextlib.contextmanager
    def run():
        facts = {"ok": False}
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            yield facts
            facts["ok"] = True
        except Exception as exc:  # the report says what failed; the run goes on
            facts["error"] = f"{type(exc).__name__}: {str(exc)[-1500:]}"
            print(facts["error"], flush=True)
        finally:
            facts["seconds"] = round(time.perf_counter() - start, 1)
            report["steps"][name] = facts
    return run()


def install(carry: Path, site: Path, dry_run: bool) -> list[str]:
    args = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--target",
            str(site), "--upgrade"]
    if dry_run:  # install for the device's interpreter, to prove the set is complete and installable there
        args += ["--python-version", "3.12", "--only-binary=:all:", "--implementation", "cp"]
        args += [a for n in range(17, 29) for a in ("--platform", f"manylinux_2_{n}_x86_64")]
    wheels = sorted(str(p) for p in (carry / "whl").glob("*.whl"))
    subprocess.run([*args, *wheels], check=True, capture_output=True, text=True,
                   env={k: v for k, v in os.environ.items() if not k.startswith("PIP_")})
    return [Path(w).name for w in wheels]


def build_model(carry: Path, home: Path, layers: int | None = None) -> Path:
    """SmolLM2's architecture with seeded random weights; `layers` (a dry run) keeps only the first few: every
    step still runs the same code at SmolLM2's widths, at a fraction of the CPU time."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from appliance.hfcache import install_snapshot

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(carry / "model")
    if layers:
        config.num_hidden_layers = layers
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out = home / "model-src"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(carry / "model").save_pretrained(out)
    return install_snapshot(out, MODEL, cache=home / "hf-cache")


def airlock_train(env: dict, name: str, sets: list[str]) -> dict:
    """One `airlock train` run; its metrics (loss per logging step, tokens/s, peak memory)."""
    argv = [sys.executable, "-m", "appliance", "train", "sft_lora_default", "--name", name,
            *(a for s in sets for a in ("--set", s))]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:] or proc.stdout[-2000:])
    job = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("job ") and "started" in line)
    metrics = [json.loads(x) for x in (Path(env["AIRLOCK_HOME"]) / "jobs" / job / "metrics.jsonl").read_text()
               .splitlines()]
    losses = [m["loss"] for m in metrics if m.get("loss") is not None]
    speeds = [m["tokens_per_s"] for m in metrics if m.get("tokens_per_s")]
    ends = [m["elapsed_s"] for m in metrics if m.get("loss") is not None]
    return {"job": job, "losses": losses, "final_loss": losses[-1] if losses else None,
            "first_steps_s": [round(b - a, 2) for a, b in zip([0.0, *ends[:2]], ends[:3])],
            "tokens_per_s": statistics.median(speeds[1:] or speeds) if speeds else None,
            "peak_vram_mb": max((m.get("peak_vram_mb") or 0) for m in metrics) or None,
            "peak_rss_mb": max((m.get("peak_rss_mb") or 0) for m in metrics) or None}


def attention_equal(device: str) -> dict:
    """Logits of three samples: padded batch vs padding-free row (sdpa) vs padding-free with per-sample attention,
    without a KV cache as in training (with one, transformers does not split a packed row)."""
    import torch
    from transformers import AutoModelForCausalLM

    from appliance.hfcache import resolve_model
    from appliance.train.attention import use_per_sample_attention

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL), dtype=dtype, attn_implementation="sdpa")
    model.to(device).eval()
    torch.manual_seed(0)
    lengths = [37, 64, 11]
    samples = [torch.randint(0, model.config.vocab_size, (n,)) for n in lengths]
    padded = torch.zeros(len(samples), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(padded)
    for i, s in enumerate(samples):
        padded[i, :len(s)], mask[i, :len(s)] = s, 1
    row = torch.cat(samples)[None]
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    with torch.no_grad():
        ref = model(input_ids=padded.to(device), attention_mask=mask.to(device)).logits
        ref = torch.cat([ref[i, :n] for i, n in enumerate(lengths)])
        sdpa = model(input_ids=row.to(device), position_ids=positions.to(device), use_cache=False).logits[0]
        use_per_sample_attention(model)
        ours = model(input_ids=row.to(device), position_ids=positions.to(device), use_cache=False).logits[0]
    tol = 5e-2 if dtype == torch.bfloat16 else 1e-4
    diffs = {"sdpa_max_abs_diff": float((sdpa - ref).abs().max()), "per_sample_max_abs_diff":
             float((ours - ref).abs().max()), "tolerance": tol}
    diffs["equal"] = max(diffs["sdpa_max_abs_diff"], diffs["per_sample_max_abs_diff"]) <= tol
    return diffs


def markdown(report: dict) -> str:
    lines = [f"# GPU acceptance ({report['device']}, {'dry run' if report['dry_run'] else 'device run'})", "",
             "| step | ok | seconds | facts |", "| --- | --- | --- | --- |"]
    for name, facts in report["steps"].items():
        shown = {k: v for k, v in facts.items() if k not in ("ok", "seconds", "losses")}
        lines.append(f"| {name} | {'yes' if facts['ok'] else 'NO'} | {facts['seconds']} | {json.dumps(shown)} |")
    return "\n".join(lines + ["", *report["notes"]]) + "\n"


def small_model_steps(report: dict, env: dict, device: str, common: list[str], home: Path) -> dict:
    """v1: LoRA (and on a GPU torch_compile, QLoRA, the CPU fp32 reference) on the small model, the attention
    check, merge and GGUF f16 + Q4_K_M. Returns the runs and the GGUF files."""
    runs = {}
    with step(report, "lora") as facts:
        dtype = "bf16" if device == "cuda" else "fp32"
        runs["lora"] = airlock_train(env, "gpu-lora", common + [f"dtype={dtype}"])
        facts.update(runs["lora"], dtype=dtype)
    if device == "cuda":
        with step(report, "compile") as facts:  # torch_compile's gain on a GPU: the same run, layers compiled
            runs["compile"] = airlock_train(env, "gpu-compile", common + ["dtype=bf16", "torch_compile=true"])
            eager = runs.get("lora", {}).get("tokens_per_s")
            facts.update(runs["compile"], speedup=runs["compile"]["tokens_per_s"] / eager if eager else None)
        with step(report, "reference") as facts:
            ref = airlock_train(dict(env, CUDA_VISIBLE_DEVICES=""), "cpu-ref", common + ["dtype=fp32"])
            gpu = runs.get("lora", {}).get("final_loss")
            facts.update(ref, gpu_final_loss=gpu, relative_diff=abs(gpu - ref["final_loss"]) / ref["final_loss"]
                         if gpu else None)
            if facts["relative_diff"] is None or facts["relative_diff"] > 0.02:
                raise AssertionError(f"GPU loss {gpu} vs CPU fp32 {ref['final_loss']}: more than 2% apart")
    with step(report, "attention") as facts:
        facts.update(attention_equal(device))
        if not facts["equal"]:
            raise AssertionError("padding-free logits differ from the padded path")
    with step(report, "export") as facts:
        job = runs["lora"]["job"]
        argvs = [["merge", job, "--out", str(home / "merged")]]
        if importlib.util.find_spec("llama_cpp"):  # the export's tokenizer check runs llama.cpp
            argvs.append(["export", "gguf", str(home / "merged"), "--type", "f16", "--type", "q4_k_m", "--out",
                          str(home / "gguf"), "--no-fidelity"])
        else:
            facts["gguf_skipped"] = "llama-cpp-python is not importable here (carry the CUDA wheel)"
        for argv in argvs:
            real_size.run([sys.executable, "-m", "appliance", *argv], env)
        runs["gguf"] = sorted((home / "gguf").rglob("*q4_k_m.gguf"))
        facts["gguf"] = [p.name for p in (home / "gguf").rglob("*.gguf")]
    return runs


def real_size_steps(report: dict, env: dict, device: str, steps: int, home: Path, runs: dict) -> None:
    """v2: a 7B-shape twin's QLoRA by Airlock and by the plain recipe, against the planner; CUDA llama.cpp chat and
    serve against llama.cpp on the CPU."""
    cuda = device == "cuda"
    sets = [f"max_steps={steps}", "logging_steps=1", "save_steps=1000", "seed=42", "per_device_train_batch_size=4",
            "data.cutoff_len=512", *(["method=qlora", "dtype=bf16"] if cuda else ["dtype=fp32"])]
    model = None
    with step(report, "twin") as facts:
        model, facts["twin_of"] = real_size.twin(home, dry_run=not cuda)
    with step(report, "qlora-twin") as facts:
        measured = airlock_train(env, "twin-qlora", [f"model={model}", *sets])
        plan = real_size.planned_peak(model, sets, None)
        peak = measured["peak_vram_mb" if cuda else "peak_rss_mb"]
        facts.update(measured, planned_peak_mb=round((plan["peak"] if cuda else plan["host"]) / 2**20),
                     planned_over_measured=round((plan["peak"] if cuda else plan["host"]) / 2**20 / peak, 3)
                     if peak else None)
    with step(report, "peer-twin") as facts:
        facts.update(real_size.peer(model, home / "peer", steps, cuda))
        ours = report["steps"].get("qlora-twin", {}).get("tokens_per_s")
        facts["airlock_over_peer"] = round(ours / facts["tokens_per_s"], 2) if ours and facts["tokens_per_s"] else None
    if not runs.get("gguf"):
        report["notes"].append("chat and serve skipped: no GGUF (llama-cpp-python not importable)")
        return
    gguf = runs["gguf"][0]
    with step(report, "chat") as facts:
        proc = real_size.run([sys.executable, "-m", "appliance", "chat", str(gguf), "--prompt", "Who are you?",
                              "--max-tokens", "32"], env)
        facts["runs_on"] = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else None
    with step(report, "serve") as facts:
        facts["tokens_per_s"] = here = real_size.serve_rates(gguf, {})
        if cuda:  # on a CPU both runs would be the same one
            facts["cpu_tokens_per_s"] = cpu = real_size.serve_rates(gguf, {"AIRLOCK_GPU_LAYERS": "0"})
            facts["over_cpu"] = {n: round(here[n] / cpu[n], 2) for n in here if cpu.get(n)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--carry", type=Path, default=ROOT / ".bench" / "gpu-carry")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dry-run", action="store_true", help="on a CPU: skip the CUDA checks, prove the rest starts")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    steps = 2 if args.dry_run else args.steps
    home = Path(os.environ.get("TMPDIR", "/tmp")) / "airlock-gpu-bench"
    site = home / "site-packages"
    args.out.mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    sys.path.insert(0, str(ROOT))
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    report = {"dry_run": args.dry_run, "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
              "torch": torch.__version__, "steps": {}, "notes": [
                  "Peers: the plain transformers + peft + bitsandbytes recipe (bench/peer_trainer_recipe.py); "
                  "LLaMA-Factory and Unsloth do not fit in the 64 MiB carry."]}
    with step(report, "install") as facts:
        facts["wheels"] = install(args.carry, site, args.dry_run)
    env = dict(os.environ, AIRLOCK_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + ([] if args.dry_run else [str(site)])))
    from appliance.tools import converter_home

    shutil.copytree(args.carry / "converter", converter_home(root=home / "tools"))
    os.environ.update(AIRLOCK_HOME=str(home))
    with step(report, "model") as facts:
        facts["snapshot"] = str(build_model(args.carry, home, layers=4 if args.dry_run else None))
    common = [f"model={MODEL}", f"max_steps={steps}", "logging_steps=1", "save_steps=1000", "seed=42",
              "per_device_train_batch_size=8", "data.cutoff_len=512"]
    runs = small_model_steps(report, env, device, common, home)
    real_size_steps(report, env, device, steps, home, runs)
    (args.out / "gpu-report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu-report.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(f["ok"] for f in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""`airlock demo` (what `make demo` runs): the whole product once, end to end, on the embedded default model.

    make demo            # or: .venv/bin/airlock demo

Connected side: build and sign the appliance bundle of bundler/examples/appliance.yaml for this machine as the
target (Airlock itself and its locked stack as wheels, the self-contained llama-cpp-python wheel, the converter,
SmolLM2-135M-Instruct, the sample data), reusing the wheels make setup kept. Offline side, inside `unshare -n`
(no network at all) when this user may, else with the connection guard only (and it says so), and with a clean
environment (`env -i`: no checkout on PATH or PYTHONPATH): `sh install.sh` with the system Python turns an empty
directory into an Airlock home; then the installed `airlock` alone runs data check -> LoRA SFT -> merge -> GGUF
f16 + Q4_K_M -> chat. It prints the base model's and the tuned Q4_K_M's answers to the held-out prompts side by
side, the export's fidelity figures and the time of each stage, and writes them to <site>/demo-report.json.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import AirlockError
from .paths import CHECKOUT, home, sample_data_dir

BUNDLE_NAME = "airlock"
SPEC = CHECKOUT / "bundler" / "examples" / "appliance.yaml"
CONFIG = Path(__file__).resolve().parent / "configs" / "sft_lora_demo.yaml"


class Stages:
    """Times each stage and prints a header for it."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        print(f"\n=== {name}", flush=True)
        start = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - start, 1)
        print(f"--- {name}: {self.times[name]} s", flush=True)


def demo_dir() -> Path:
    return home() / "demo"


def can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


# ---------------------------------------------------------------- connected side
def build_bundle(stages: Stages) -> tuple[Path, Path]:
    """Sign and write the appliance bundle for this machine; returns (bundle dir, public key)."""
    from bundler.create import create_bundle
    from bundler.spec import load_spec
    from installer import minisign

    from .embedded import ensure_default_model
    from .tools import ensure_converter

    work = demo_dir()
    keys = work / "keys"
    with stages("set-up check (embedded model, converter)"):
        ensure_converter()
        ensure_default_model()
    with stages("bundle create (connected side): Airlock + stack + model + converter"):
        if not (keys / "demo.key").is_file():
            minisign.generate(keys / "demo.key", keys / "demo.pub")
        spec = load_spec(SPEC)
        libc, version = platform.libc_ver()
        if libc == "glibc":  # this machine is the target: its glibc is what the wheels built here need
            spec.target.glibc = ".".join(version.split(".")[:2])
        bundle = create_bundle(spec, work / "bundle", key=keys / "demo.key")
    return bundle, keys / "demo.pub"


def clean_env(path: str, site: Path) -> list[str]:
    """`env -i` with only what a login on a bare host has: no checkout, no PYTHONPATH, no virtualenv."""
    keep = [f"{k}={os.environ[k]}" for k in ("TERM", "COLUMNS", "LANG") if k in os.environ]
    return ["env", "-i", f"PATH={path}", f"HOME={site}", *keep]


def isolated(argv: list[str]) -> list[str]:
    return ["unshare", "-n", *argv] if can_unshare() else argv


def install_from_media(bundle: Path, pubkey: Path, site: Path) -> None:
    """sh install.sh from the bundle, with the system Python, offline, in a clean environment."""
    python = getattr(sys, "_base_executable", sys.executable)
    argv = clean_env("/usr/bin:/bin", site) + ["sh", str(bundle / "install.sh"), "--target", str(site),
                                                "--trusted-key", str(pubkey), "--python", python]
    if subprocess.call(isolated(argv)) != 0:
        raise AirlockError("installing the appliance bundle failed (see above)", where=str(bundle))


# ---------------------------------------------------------------- offline side
def heldout() -> list[dict]:
    rows = []
    for line in (sample_data_dir() / "heldout.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def scored(answer: str, row: dict) -> bool:
    expected = row["expected"]
    if row.get("match") == "exact":
        return answer.strip() == expected.strip()
    return expected.casefold() in answer.casefold()


def answers(session, prompts: list[str], max_tokens: int = 32) -> list[str]:
    from .chat import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    return ["".join(session.stream([{"role": "user", "content": p}], params)).strip() for p in prompts]


def base_model_answers(model: str, prompts: list[str], max_tokens: int = 32) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .export.fidelity import hf_answers
    from .hfcache import resolve_model

    path = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return hf_answers(base, tokenizer, prompts, max_new_tokens=max_tokens, batch_size=len(prompts))


def forgetting_check(model: str, merged: Path) -> dict:
    """What tuning cost in general ability: perplexity of held-out general text (not in training) under the base
    and under the tuned (merged) model, through transformers (appliance.evaluate.perplexity.forgetting)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .evaluate.perplexity import forgetting
    from .hfcache import resolve_model
    from .paths import sample_data_dir

    def load(path):
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)

    text = (sample_data_dir() / "general_heldout.txt").read_text(encoding="utf-8")
    return forgetting(*load(resolve_model(model)), *load(merged), text)


def offline_pipeline(site: Path, stages: Stages, steps: int | None = None) -> dict:
    from .data.check import check
    from .jobs import follow, start_detached
    from .train import load_config, start

    dataset = site / "current" / BUNDLE_NAME / "files" / "datasets" / "magic_conch.jsonl"
    if not dataset.is_file():
        raise AirlockError("the installed bundle has no sample data set", where=str(dataset))
    with stages("data check"):
        report = check(dataset)
        print(f"{report.conversations} conversations, format {report.format}, {len(report.errors)} errors, "
              f"{len(report.warnings)} warnings, token p50/p90/max "
              f"{report.token_lengths.get('p50')}/{report.token_lengths.get('p90')}/{report.token_lengths.get('max')}")
        if not report.ok:
            raise AirlockError("the sample data set does not check clean", where=str(dataset))

    with stages("train (LoRA SFT job)"):
        overrides = [f"data.path={dataset}"] + ([f"max_steps={steps}"] if steps else [])
        cfg = load_config(CONFIG, overrides)
        job = start(cfg, ["airlock", "train", str(CONFIG), *(f"--set={o}" for o in overrides)], "demo")
        start_detached(job)
        status = follow(job)
        if status["state"] != "completed":
            raise AirlockError(f"training {status['state']}: {status.get('message')}", where=str(job.log_path))
        metrics = [m for m in job.metrics() if m.get("loss") is not None]

    from .export.pipeline import export_gguf
    from .merge import merge

    with stages("merge"):
        merged = merge(job.id)
    rows = [r for r in heldout() if r.get("kind") == "identity"]
    prompts = [r["prompt"] for r in rows]
    with stages("export GGUF f16 + Q4_K_M (+ fidelity)"):
        result = export_gguf(str(merged), ["f16", "q4_k_m"], prompts=prompts[:6])

    from .chat import LlamaSession
    with stages("chat: base vs tuned Q4_K_M on held-out identity prompts"):
        # The base answers in one batch through transformers; the tuned model through the chat path users use.
        base_answers = base_model_answers(cfg.model, prompts)
        tuned = LlamaSession(result.files["q4_k_m"])
        tuned_answers = answers(tuned, prompts)
        tuned.close()

    with stages("forgetting: base vs tuned perplexity on held-out general text"):
        forgot = forgetting_check(cfg.model, merged)

    return {"job": job.id, "merged": str(merged), "gguf": {k: str(v) for k, v in result.files.items()},
            "forgetting": forgot,
            "fidelity": result.fidelity, "export_timings": result.timings,
            "train": {"steps": status.get("step"), "first_loss": metrics[0]["loss"] if metrics else None,
                      "last_loss": metrics[-1]["loss"] if metrics else None,
                      "tokens_per_s": metrics[-1].get("tokens_per_s") if metrics else None},
            "heldout": [dict(r, base=b, tuned=t, base_ok=scored(b, r), tuned_ok=scored(t, r))
                        for r, b, t in zip(rows, base_answers, tuned_answers)]}


def print_summary(result: dict, stages: Stages, isolation: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=False)
    table = Table(title="held-out identity prompts (not in training): base model vs tuned Q4_K_M", show_lines=True)
    for col in ("prompt", "expected", "base", "tuned Q4_K_M"):
        table.add_column(col, overflow="fold")
    for row in result["heldout"]:
        mark = lambda ok: "✓ " if ok else "✗ "  # noqa: E731
        table.add_row(row["prompt"], row["expected"], mark(row["base_ok"]) + row["base"],
                      mark(row["tuned_ok"]) + row["tuned"])
    console.print(table)
    for lang in ("en", "zh"):
        rows = [r for r in result["heldout"] if r.get("lang") == lang]
        if rows:
            label = {"en": "English identity", "zh": "Chinese identity"}[lang]
            tuned = sum(r["tuned_ok"] for r in rows)
            base = sum(r["base_ok"] for r in rows)
            console.print(f"{label}: tuned {tuned}/{len(rows)} ({100 * tuned / len(rows):.0f}%), "
                          f"base {base}/{len(rows)}")
    forgot = result.get("forgetting")
    if forgot:
        console.print(f"forgetting: held-out general text perplexity base {forgot['before']:.2f} -> tuned "
                      f"{forgot['after']:.2f} ({100 * forgot['change']:+.1f}%, {forgot['verdict']})")
    fid = result.get("fidelity") or {}
    tok = fid.get("tokenizer") or {}
    console.print(f"fidelity (GGUF vs the merged HF model, {len(fid.get('prompts', []))} prompts, greedy): "
                  f"llama.cpp tokenization identical to HF: {tok.get('identical')}")
    for qtype, facts in (fid.get("types") or {}).items():
        console.print(f"  {qtype:7} answers identical to HF {facts.get('identical_count')}/{len(fid.get('prompts', []))}"
                      f", perplexity {facts.get('perplexity', float('nan')):.3f} "
                      f"({facts.get('ppl_ratio_vs_f16', float('nan')):.3f}x f16) on held-out general text")
    times = Table(title=f"stage times ({isolation})")
    times.add_column("stage")
    times.add_column("seconds", justify="right")
    for name, seconds in stages.times.items():
        times.add_row(name, f"{seconds:.1f}")
    offline = [s for n, s in stages.times.items() if "connected" not in n and "set-up" not in n]
    times.add_row("offline pipeline total", f"{sum(offline):.1f}")
    console.print(times)


def run(inside: bool = False, site: Path | None = None, times_before: dict | None = None,
        steps: int | None = None) -> int:
    stages = Stages()
    stages.times.update(times_before or {})
    if not inside:
        bundle, pubkey = build_bundle(stages)
        site = demo_dir() / "site"
        shutil.rmtree(site, ignore_errors=True)  # a fresh site each run, like a new host
        gap = "unshare -n (no network at all)" if can_unshare() else "the connection guard only (unshare -n is " \
            "not permitted here)"
        print(f"\noffline side: {gap}, env -i, nothing but the bundle and the system Python", flush=True)
        with stages("install: sh install.sh on a bare host (offline)"):
            install_from_media(bundle, pubkey, site)
        airlock = site / "bin" / "airlock"
        argv = clean_env(f"{airlock.parent}:/usr/bin:/bin", site) + [
            "airlock", "demo", "--inside", "--site", str(site), "--times", json.dumps(stages.times),
            *(["--steps", str(steps)] if steps else [])]
        if not can_unshare():
            argv.insert(3, "AIRLOCK_DEMO_ISOLATION=guard only")
        return subprocess.call(isolated(argv))
    # From here on this is the installed airlock (bin/airlock set AIRLOCK_HOME to the site).
    os.environ.pop("HF_HUB_CACHE", None)
    from .offline import enforce_offline

    enforce_offline()
    isolation = os.environ.get("AIRLOCK_DEMO_ISOLATION", "unshare -n + env -i + connection guard")
    result = offline_pipeline(site, stages, steps)
    result["stage_times"] = stages.times
    result["isolation"] = isolation
    result["airlock"] = sys.executable
    from .atomic import write_json

    write_json(site / "demo-report.json", result)
    print_summary(result, stages, isolation)
    print(f"\nreport: {site / 'demo-report.json'}")
    return 0

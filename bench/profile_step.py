"""Where the time of one LoRA training step goes, and how close its matmuls run to the machine's limit.

    .venv/bin/python -m bench.profile_step [--steps 3] [--set KEY=VALUE ...] [--out FILE]

The step is Airlock's own: the training bench's settings (SmolLM2-135M, LoRA r8 on q,k,v,o,gate,up,down, batch 8,
cutoff 512, fp32, the sample data), the model and trainer built by appliance.train.sft exactly as a job builds them,
and `trainer.training_step` plus the optimizer step on real batches, after two warm-up steps. The steps are timed alone, then run again under torch's profiler, which records every
operator with its input shapes and FLOPs. The report:
- the step's wall time, and its split by what the time is spent on (self CPU time of each operator, grouped);
- the matmul work of the step (FLOPs of every aten::mm/addmm/bmm) and its achieved GFLOP/s over the whole step;
- the floor: every one of those matmuls replayed alone with torch.mm on tensors of the same shapes, timed. The
  machine's matmul GFLOP/s on these shapes is their FLOPs over that time, and "floor / step" says how much of
  the step is matmul work that no change outside the matmuls can remove.
"""

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm")
# (group, operator names): an operator is in the first group naming it, by its name without "aten::" and leading
# underscores, exactly or (names ending in "*") by prefix
GROUPS = (
    ("matmul", ("mm", "addmm", "bmm")),
    ("attention", ("scaled_dot_product*", "flash_attention*", "efficient_attention*")),
    ("loss (LM head softmax, NLL)", ("log_softmax*", "nll_loss*", "cross_entropy*", "softmax*")),
    ("optimizer (AdamW)", ("foreach*", "fused_adam*", "lerp*", "addcdiv*", "addcmul*", "sqrt*")),
    ("dropout masks", ("random_", "bernoulli*", "uniform_")),
    ("norms and activations", ("rsqrt", "silu*", "pow*", "mean", "sigmoid*", "rms_norm*", "cos", "sin")),
    ("copies and layout", ("copy_", "clone", "contiguous", "cat", "index*", "gather*", "scatter*", "to_copy",
                           "empty*", "zero_", "zeros*", "fill_", "masked_scatter*", "repeat*", "stack")),
    ("elementwise arithmetic", ("mul", "mul_", "add", "add_", "sub", "sub_", "div", "div_", "neg", "sum", "where",
                                "masked_fill*", "clamp*", "ne", "eq", "lt", "ge", "gt")),
)


def build_trainer(overrides: list[str]):
    """Airlock's SFT trainer for the bench settings, built as appliance.train.sft builds it."""
    import datasets
    import transformers
    from transformers import AutoTokenizer

    from appliance.data import prepare
    from appliance.train import load_config, resources
    from appliance.train.common import load_model, resolve_base
    from appliance.train.sft import cpu_levers, sft_args
    from appliance.train.trainer import AirlockSFTTrainer

    from .bench_train import SHARED, TARGETS
    from .train_measure import CONFIG

    cfg = load_config(CONFIG, [
        f"data.cutoff_len={SHARED['cutoff_len']}", f"lora_rank={SHARED['lora_rank']}",
        f"lora_alpha={SHARED['lora_alpha']}", f"lora_dropout={SHARED['lora_dropout']}",
        f"lora_target=[{','.join(TARGETS)}]", f"per_device_train_batch_size={SHARED['batch_size']}",
        f"learning_rate={SHARED['learning_rate']}", f"seed={SHARED['seed']}", "max_steps=100", "dtype=fp32",
        *overrides])
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    _, base_path, card = resolve_base(cfg.model)
    resources.set_threads(cfg.num_threads)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    prepared = prepare(cfg.data, tokenizer, stage=cfg.stage)
    train_set = datasets.Dataset.from_list([{"input_ids": s["input_ids"], "labels": s["labels"]}
                                            for s in prepared.train])
    transformers.set_seed(cfg.seed)
    model = load_model(cfg, base_path, "cpu", card)
    cpu_levers(model, cfg)
    out = Path(tempfile.mkdtemp(prefix="profile-step-"))
    trainer = AirlockSFTTrainer(model=model, args=sft_args(cfg, out, "cpu", False), train_dataset=train_set,
                                processing_class=tokenizer)
    return trainer, cfg


def one_step(trainer, batch) -> None:
    trainer.training_step(trainer.model, batch)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)


def group_of(name: str) -> str:
    op = name.removeprefix("aten::").lstrip("_")
    for group, names in GROUPS:
        if any(op == n or (n.endswith("*") and op.startswith(n[:-1])) for n in names):
            return group
    return "other"


def mm_shapes(events) -> Counter:
    """(m, k, n) of every matmul the step ran, counted, from the profiler's averages grouped by input shape.
    addmm's first input is the bias."""
    shapes: Counter = Counter()
    for event in events:
        if event.key not in MATMUL_OPS or not event.input_shapes:
            continue
        dims = [s for s in event.input_shapes if s]
        if event.key == "aten::addmm":
            dims = dims[1:]
        if event.key == "aten::bmm" and len(dims) >= 2 and len(dims[0]) == 3:
            b, m, k = dims[0]
            shapes[(m * b, k, dims[1][2])] += event.count  # the FLOPs of one mm of b*m rows (in time, near it)
        elif len(dims) >= 2 and len(dims[0]) == 2 and len(dims[1]) == 2:
            shapes[(dims[0][0], dims[0][1], dims[1][1])] += event.count
    return shapes


def matmul_floor(shapes: Counter, repeats: int = 5) -> float:
    """Seconds the step's matmuls take alone: torch.mm of each shape, as many times as the step ran it (best of
    `repeats`, after a warm-up)."""
    import torch

    total = 0.0
    for (m, k, n), count in shapes.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(count):
                torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        total += best
    return total


def profile(overrides: list[str], steps: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    trainer, cfg = build_trainer(overrides)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    trainer.current_gradient_accumulation_steps = 1  # what Trainer's own loop sets before each step
    trainer.model.train()
    batches = iter(trainer.get_train_dataloader())
    for _ in range(2):  # warm-up: threads spin up, the allocator and oneDNN caches fill
        one_step(trainer, next(batches))
    measured = [next(batches) for _ in range(steps)]
    start = time.perf_counter()  # the step's time is taken without the profiler, whose bookkeeping costs time
    for batch in measured:
        one_step(trainer, batch)
    wall = (time.perf_counter() - start) / steps
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for batch in measured:
            one_step(trainer, batch)
    events = prof.key_averages()
    by_group: dict[str, float] = defaultdict(float)
    for event in events:
        by_group[group_of(event.key)] += event.self_cpu_time_total / 1e6 / steps
    profiled = sum(by_group.values())
    top_ops = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    flops = sum(e.flops for e in events if e.key in MATMUL_OPS) / steps
    shapes = mm_shapes(prof.key_averages(group_by_input_shape=True))
    floor = matmul_floor(Counter({s: round(c / steps) or 1 for s, c in shapes.items()}))
    floor_flops = sum(2 * m * k * n * c for (m, k, n), c in shapes.items()) / steps
    tokens = sum(int((b["labels"] != -100).sum()) for b in measured) / steps
    return {
        "config": {k: v for k, v in cfg.to_dict().items() if k in ("lora_rank", "per_device_train_batch_size",
                                                                   "padding_free", "dtype", "gradient_checkpointing")},
        "threads": torch.get_num_threads(), "step_s": round(wall, 3), "trained_tokens_per_step": tokens,
        "breakdown_s": {g: round(s, 3) for g, s in sorted(by_group.items(), key=lambda kv: -kv[1])},
        "breakdown_share": {g: round(s / profiled, 3) for g, s in sorted(by_group.items(), key=lambda kv: -kv[1])},
        "top_operators_s": {f"{e.key} ({group_of(e.key)})": round(e.self_cpu_time_total / 1e6 / steps, 3)
                            for e in top_ops},
        "matmul_gflop_per_step": round(flops / 1e9, 2),
        "achieved_gflops_over_step": round(flops / wall / 1e9, 1),
        "matmul_floor_s": round(floor, 3),
        "machine_mm_gflops_same_shapes": round(floor_flops / floor / 1e9, 1) if floor else None,
        "floor_share_of_step": round(floor / wall, 3),
        "distinct_mm_shapes": len(shapes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = profile(args.overrides, args.steps)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""The memory planner (`airlock train CONFIG --plan`): figures from the architecture alone, verdicts and advice,
preflight's refusal of a GPU run that cannot fit, and the estimate held to a real run's measured peak memory.

    .venv/bin/python -m pytest tests/test_train_plan.py -q
"""

import json

import pytest
import yaml

from appliance.catalog import find
from appliance.errors import AirlockError
from appliance.train import from_dict
from appliance.train import memory
from conftest import airlock_argv

GIB = 1 << 30


def config(**over) -> "object":
    data = {"model": "qwen2.5-7b-instruct", "method": "qlora", "dtype": "bf16", "per_device_train_batch_size": 4,
            "data": {"path": "x.jsonl", "cutoff_len": 1024}}
    data.update({k: v for k, v in over.items() if k != "data"})
    data["data"].update(over.get("data", {}))
    return from_dict(data, where="test")


@pytest.fixture(scope="module")
def qwen7b():
    """Qwen2.5-7B's architecture from its catalog card (not installed here: the card's widths on the meta device)."""
    return memory.architecture("qwen2.5-7b-instruct")


def plan(cfg, arch, device="cuda", capacity=24 * GIB):
    return memory.estimate(cfg, arch, device, find(cfg.model), capacity)


def test_plan_weights_follow_the_method(qwen7b):
    assert 7.5e9 < qwen7b.params < 7.7e9 and qwen7b.hidden == 3584 and qwen7b.layers == 28
    qlora, lora, full = (plan(config(method=m), qwen7b) for m in ("qlora", "lora", "full"))
    # NF4 weights (with fp32 embeddings and head) < a bf16 base < fp32 master weights
    assert qlora.parts["weights"] < lora.parts["weights"] < full.parts["weights"]
    assert lora.parts["weights"] == qwen7b.params * 2 and full.parts["weights"] == qwen7b.params * 4
    # full fine-tuning trains every weight: fp32 gradients and two AdamW moments; LoRA only its adapters
    assert full.parts["gradients"] == qwen7b.params * 4 and full.parts["optimizer"] == qwen7b.params * 8
    assert lora.parts["optimizer"] < qwen7b.params * 8 / 100


def test_plan_checkpointing_batch_and_sharding_move_the_right_parts(qwen7b):
    base = plan(config(), qwen7b)
    ckpt = plan(config(gradient_checkpointing=True), qwen7b)
    half = plan(config(per_device_train_batch_size=2), qwen7b)
    assert ckpt.parts["activations"] < base.parts["activations"] / 5
    assert half.parts["activations"] == pytest.approx(base.parts["activations"] / 2, rel=0.05)
    full = plan(config(method="full"), qwen7b)
    sharded = plan(config(method="full", distributed={"nproc_per_node": 8, "strategy": "fsdp"}), qwen7b)
    assert sharded.parts["weights"] == pytest.approx(full.parts["weights"] / 8, rel=1e-6)
    assert sharded.parts["optimizer"] == pytest.approx(full.parts["optimizer"] / 8, rel=1e-6)
    ddp = plan(config(method="full", distributed={"nproc_per_node": 8, "strategy": "ddp"}), qwen7b)
    assert ddp.parts["weights"] == full.parts["weights"]


def test_plan_verdict_and_advice_on_a_24_gb_card(qwen7b):
    tight = plan(config(), qwen7b)
    assert tight.fits is False and tight.peak > 24 * GIB
    assert any("gradient_checkpointing" in tip for tip in tight.advice)
    fixed = plan(config(gradient_checkpointing=True, per_device_train_batch_size=1), qwen7b)
    assert fixed.fits is True and not fixed.advice


def test_plan_preflight_refuses_a_gpu_run_that_cannot_fit():
    cfg = config(method="full")
    with pytest.raises(AirlockError) as refused:
        memory.check_fits(cfg, gpu_mem_gb=24)
    assert refused.value.code == "plan.does_not_fit" and "method: lora" in refused.value.fix
    memory.check_fits(config(method="qlora", gradient_checkpointing=True, per_device_train_batch_size=1),
                      gpu_mem_gb=24)


def test_plan_cli(run_offline, tmp_path):
    ok = run_offline(airlock_argv("train", "sft_lora_default", "--plan", "--json"))
    planned = json.loads(ok.stdout)
    assert planned["device"] == "cpu" and set(planned["parts"]) >= {"weights", "activations", "process"}
    assert planned["fits"] is True and planned["host"] >= planned["peak"]
    cfg = tmp_path / "big.yaml"
    cfg.write_text(yaml.safe_dump({"model": "llama-3.1-8b-instruct", "method": "full", "dtype": "bf16",
                                   "data": {"path": "x.jsonl"}}))
    tight = run_offline(airlock_argv("train", cfg, "--plan", "--gpu-mem", "24"), check=False)
    assert tight.returncode == 1 and "does NOT fit in 24.0 GiB" in tight.stdout and "to fit:" in tight.stdout
    assert "Traceback" not in tight.stderr


@pytest.mark.slow
def test_plan_within_15_percent_of_a_measured_run(tmp_path):
    """One real run on this CPU (the embedded model, LoRA, every sample at cutoff_len): its peak RSS against the
    planner's host figure. bench/plan_memory.py runs the full set of shapes and methods."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    from bench.plan_memory import run_case

    result = run_case("smollm2-lora-short", tmp_path)
    assert abs(result["ratio"] - 1) <= 0.15, result

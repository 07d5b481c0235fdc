"""torch_compile (appliance/train/compile.py): compiled decoder layers give the model's own loss and gradients,
across row lengths; a training job compiles offline and trains; a host without a compiler is told so by name."""

import json
import os
import shutil

import pytest
import torch

from conftest import airlock_argv
from test_train_run import job_dir_from, write_config


needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                                    reason="no C++ compiler (g++ or $CXX): torch_compile cannot compile on this host")


def _lora_model(tiny_model):
    """A LoRA model on the tiny base with non-zero B matrices and Airlock's CPU levers, as a job trains it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from appliance.train.dropout import use_fast_lora_dropout
    from appliance.train.lora_forward import use_fused_lora_forward
    from appliance.train.swiglu import use_lean_swiglu

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    use_fast_lora_dropout(model)
    use_fused_lora_forward(model)
    use_lean_swiglu(model)
    return model.train()


def _loss_and_grads(model, length: int):
    ids = torch.arange(1, 2 * length + 1).reshape(2, length) % 500 + 1
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@needs_compiler
def test_compiled_layers_give_the_same_loss_and_gradients_at_every_length(tiny_model):
    import copy

    import torch._dynamo
    from torch._dynamo.utils import counters

    from appliance.train.compile import compile_layers, decoder_layers

    plain = _lora_model(tiny_model)
    compiled = copy.deepcopy(plain)
    torch._dynamo.reset()
    counters.clear()
    assert compile_layers(compiled) == len(decoder_layers(plain)) > 0
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # adapters save under the same names
    for length in (7, 12, 19):  # padding-free rows change length every step: no recompile per length
        loss_plain, grads_plain = _loss_and_grads(plain, length)
        loss_compiled, grads_compiled = _loss_and_grads(compiled, length)
        assert torch.allclose(loss_compiled, loss_plain, rtol=1e-5, atol=1e-6), length
        assert grads_compiled.keys() == grads_plain.keys() and grads_plain
        for name, grad in grads_plain.items():
            assert torch.allclose(grads_compiled[name], grad, rtol=1e-4, atol=1e-6), (length, name)
    # it really ran compiled: dynamo captured the layers' graph (the probe's too), and did not capture one per length
    assert counters["stats"]["unique_graphs"] >= 2
    assert counters["stats"]["unique_graphs"] <= 4, dict(counters["stats"])


@needs_compiler
def test_compiled_lora_dropout_draws_at_its_rate():
    """Under compilation the keep mask comes from inductor's generator: same rate, still random."""
    from appliance.train.dropout import IntegerMaskDropout

    dropout = IntegerMaskDropout(0.25).train()
    draw = torch.compile(dropout.keep_mask, dynamic=False)
    x = torch.ones(200_000)
    first, second = draw(x), draw(x)
    assert first.dtype == torch.bool and abs(first.float().mean().item() - 0.75) < 0.01
    assert not torch.equal(first, second)


@needs_compiler
def test_a_job_with_torch_compile_trains_offline(tmp_path, tiny_model, airlock_home, run_offline):
    config = write_config(tmp_path, method="lora", learning_rate=5e-3, max_steps=4, lora_rank=8, lora_alpha=16,
                          lora_dropout=0.1, lora_target=["all-linear"], logging_steps=1, save_steps=4,
                          torch_compile=True)
    proc = run_offline(airlock_argv("train", config, "--name", "tiny-compiled"))
    job = job_dir_from(proc.stdout, airlock_home)
    log = (job / "train.log").read_text() if (job / "train.log").is_file() else proc.stdout
    assert "torch_compile: 2 decoder layers compile on the first step" in proc.stdout + log
    assert "warning: torch_compile on a CPU" in proc.stdout + log  # measured slower there: said, not hidden
    status = json.loads((job / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 4
    losses = [json.loads(l)["loss"] for l in (job / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(l > 0 for l in losses)
    assert (job / "adapter" / "adapter_model.safetensors").is_file()


def test_no_compiler_is_refused_by_name_before_a_job(tmp_path, tiny_model, airlock_home, run_offline):
    config = write_config(tmp_path, method="lora", max_steps=2, torch_compile=True)
    jobs = airlock_home / "jobs"
    before = set(jobs.iterdir()) if jobs.is_dir() else set()
    proc = run_offline(airlock_argv("train", config, "--name", "no-compiler"), check=False,
                       env={"CXX": str(tmp_path / "no-such-g++")})  # inductor's compiler search reads $CXX
    assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout
    assert "torch_compile" in proc.stderr and "C++ compiler" in proc.stderr and "torch_compile: false" in proc.stderr
    assert (set(jobs.iterdir()) if jobs.is_dir() else set()) == before  # refused before a job was made

"""Shape twins: catalog models at their real widths with random weights (`airlock models twin`), and the whole
pipeline run on a 0.5B-shape twin on the CPU: LoRA steps, merge, GGUF f16 + Q4_K_M (with llama.cpp's K-quant
fallbacks at these widths reported), and `airlock serve` answering, all offline.

    .venv/bin/python -m pytest tests/test_twin.py -q
"""

import json
import os
import subprocess

import httpx
import pytest
import yaml

from appliance.catalog import load_catalog, parameter_count
from conftest import airlock_argv, wait_for

CARDS = load_catalog()


@pytest.mark.parametrize("card_id", sorted(CARDS))
def test_twin_shape_gives_the_catalog_parameter_count(card_id):
    """The card's widths build (on the meta device, no memory) a model of the card's stated size: the shape
    facts and the parameter count agree."""
    import torch
    from transformers import AutoModelForCausalLM

    from appliance.twin import twin_config

    card = CARDS[card_id]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(twin_config(card))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / parameter_count(card.parameters) - 1) < 0.03, (count, card.parameters)


def test_twin_unknown_model_and_bad_layers_are_refused(run_offline, tmp_path):
    bad = run_offline(airlock_argv("models", "twin", "qwen2.5-0.5b-instrct", "--out", tmp_path / "t"), check=False)
    assert bad.returncode == 2 and "code: twin.unknown_model" in bad.stderr and "qwen2.5-0.5b-instruct" in bad.stderr
    layers = run_offline(airlock_argv("models", "twin", "qwen2.5-0.5b-instruct", "--out", tmp_path / "t",
                                      "--layers", "99"), check=False)
    assert layers.returncode == 2 and "code: twin.layers" in layers.stderr
    assert not (tmp_path / "t").exists()


@pytest.fixture(scope="module")
def twin_home(tmp_path_factory):
    """A home of its own (the pipeline's jobs and registry) that shares the session's tools and HF cache."""
    home = tmp_path_factory.mktemp("twin-home")
    session = os.environ["AIRLOCK_HOME"]
    for shared in ("tools", "hf-cache"):
        (home / shared).symlink_to(os.path.join(session, shared))
    return home


@pytest.mark.slow
def test_twin_pipeline_at_real_width(run_offline, twin_home, tmp_path):
    env = {"AIRLOCK_HOME": str(twin_home)}
    twin = tmp_path / "qwen2.5-0.5b-twin"
    made = run_offline(airlock_argv("models", "twin", "qwen2.5-0.5b-instruct", "--out", twin), env=env)
    config = json.loads((twin / "config.json").read_text())
    card = CARDS["qwen2.5-0.5b-instruct"].shape
    assert (config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"],
            config["num_attention_heads"], config["num_key_value_heads"]) == (
        card.hidden_size, card.intermediate_size, card.num_hidden_layers, card.num_attention_heads,
        card.num_key_value_heads)
    assert json.loads((twin / "TWIN.json").read_text())["twin_of"] == "qwen2.5-0.5b-instruct"
    assert "--pre-tokenizer qwen2" in made.stdout

    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": str(twin), "method": "lora", "lora_rank": 8, "max_steps": 2, "per_device_train_batch_size": 2,
        "logging_steps": 1, "save_steps": 100, "dtype": "fp32",
        "data": {"path": str(os.path.join(os.path.dirname(__file__), "..", "appliance", "sample_data",
                                          "magic_conch.jsonl")), "cutoff_len": 64, "max_samples": 8}}))
    train = run_offline(airlock_argv("train", cfg, "--name", "twin"), env=env)
    job = next(p.name for p in (twin_home / "jobs").iterdir() if p.name.startswith("twin"))
    assert "step=2" in train.stdout
    run_offline(airlock_argv("merge", job), env=env)
    export = run_offline(airlock_argv("export", "gguf", job, "--type", "f16", "--type", "q4_k_m",
                                      "--pre-tokenizer", "qwen2", "--no-fidelity"), env=env)
    # At hidden 896, rows of the attention and gate/up matrices are not a multiple of 256: llama.cpp cannot
    # K-quantize them, and the export says so (only the down projections, rows of 4864, are Q4_K/Q6_K).
    assert "rows of 896 are not a multiple of 256" in export.stdout, export.stdout
    q4 = next((twin_home / "jobs" / job / "gguf").glob("*-q4_k_m.gguf"))
    from appliance.export.quantize import kquant_report

    report = kquant_report(q4, "q4_k_m")
    assert report["k_quantized"] == card.num_hidden_layers and report["fallback_row_lengths"] == [896]
    _serve_answers(q4, twin_home)


def _serve_answers(gguf, home) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    guard = home / "net-guard.log"
    env = dict(os.environ, AIRLOCK_HOME=str(home), AIRLOCK_NET_GUARD_LOG=str(guard))
    # Not in a network namespace (the client must reach it): the connection guard logs any attempt out.
    proc = subprocess.Popen(list(map(str, airlock_argv("serve", gguf, "--port", port))),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def healthy():
            assert proc.poll() is None, proc.stdout.read()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, "the twin's server", timeout=120)
        model = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"][0]["id"]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120, json={
            "model": model, "messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": 8, "temperature": 0})
        assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] >= 1, answer.text
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert not guard.exists() or not guard.read_text()

"""TrainConfig: one validated schema for files, --set flags and the TUI; errors name the key and the fix."""

import subprocess
from pathlib import Path

import pytest

from appliance import paths
from appliance.errors import AirlockError
from appliance.train import TrainConfig, from_dict, load_config
from conftest import ROOT, airlock_argv

CONFIGS = ROOT / "appliance" / "configs"


def _write(tmp_path, text, name="cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["sft_lora_default.yaml", "sft_lora_demo.yaml"])
def test_shipped_configs_load_and_open_with_their_command(name):
    path = CONFIGS / name
    assert path.read_text().splitlines()[0] == f"# airlock train appliance/configs/{name}"
    cfg = load_config(path)
    assert isinstance(cfg, TrainConfig) and cfg.stage == "sft" and cfg.method == "lora"
    assert Path(cfg.data.path) == paths.sample_data_dir() / "magic_conch.jsonl"  # relative to the config file
    assert from_dict(cfg.to_dict()) == cfg  # the TUI's round trip


def test_overrides_apply_typed_and_nested(tmp_path):
    cfg = load_config(CONFIGS / "sft_lora_default.yaml",
                      ["learning_rate=1e-3", "data.cutoff_len=256", "lora_target=all-linear", "method=full",
                       "max_steps=7", "packing=true", "data.path=mine.jsonl"])
    assert cfg.learning_rate == 1e-3 and cfg.data.cutoff_len == 256 and cfg.lora_target == ["all-linear"]
    assert cfg.method == "full" and cfg.max_steps == 7 and cfg.packing is True
    assert cfg.data.path == "mine.jsonl"  # --set paths stay relative to where the command runs


def test_unknown_keys_suggest_the_nearest(tmp_path):
    with pytest.raises(AirlockError) as err:
        load_config(_write(tmp_path, "data: {path: x.jsonl}\nlora_rnak: 8\n"))
    assert "unknown key 'lora_rnak'" in err.value.render() and "did you mean 'lora_rank'" in err.value.render()
    with pytest.raises(AirlockError) as err:
        load_config(_write(tmp_path, "data: {path: x.jsonl, cutof_len: 8}\n"))
    assert "cutof_len" in err.value.render() and "cutoff_len" in err.value.render()
    with pytest.raises(AirlockError, match="learning_rate"):
        load_config(None, ["data.path=x.jsonl", "learnig_rate=1e-4"])


@pytest.mark.parametrize("override, message", [
    ("method=qlorax", "not one of"),
    ("learning_rate=fast", "expected a number"),
    ("learning_rate=3", "outside"),
    ("lora_rank=0", "at least 1"),
    ("max_steps=2.5", "whole number"),
    ("dtype=fp8", "not one of"),
    ("lora_dropout=1.5", "lora_dropout"),
    ("adapter=some-job", "only used by stage dpo"),
    ("early_stopping_patience=2", "needs evaluation data"),
    ("lora_target=[all-linear, q_proj]", "all-linear"),
])
def test_bad_values_are_refused_clearly(override, message):
    with pytest.raises(AirlockError, match=message):
        load_config(CONFIGS / "sft_lora_default.yaml", [override])


def test_dpo_demo_config_loads_with_its_command():
    path = CONFIGS / "dpo_lora_demo.yaml"
    assert path.read_text().splitlines()[0] == "# airlock train appliance/configs/dpo_lora_demo.yaml"
    cfg = load_config(path)
    assert cfg.stage == "dpo" and cfg.method == "lora" and cfg.model == "airlock-embedded/SmolLM2-135M-Instruct"
    assert Path(cfg.data.path) == paths.sample_data_dir() and cfg.data.dataset == "magic_conch_dpo"
    assert (cfg.pref_beta, cfg.pref_loss, cfg.adapter) == (0.1, "sigmoid", "")
    assert from_dict(cfg.to_dict()) == cfg
    assert load_config(path, ["pref_loss=ipo", "pref_beta=0.5"]).pref_loss == "ipo"
    # A plain data file is checked for chosen/rejected pairs when the job reads it (not by the config).
    assert load_config(CONFIGS / "sft_lora_default.yaml", ["stage=dpo"]).stage == "dpo"
    for override, message in [("pref_loss=orpo", "not one of"), ("pref_beta=0", "pref_beta must be positive"),
                              ("data.dataset=magic_conch", "'magic_conch' is not preference data"),
                              ("data.dataset=magic_conch_dpo,magic_conch", "'magic_conch' is not preference data")]:
        with pytest.raises(AirlockError, match=message):
            load_config(path, [override])


def test_missing_data_section_says_how(tmp_path):
    with pytest.raises(AirlockError, match="no data section"):
        load_config(_write(tmp_path, "method: lora\n"))


def test_cli_refuses_fp16_on_cpu_before_creating_a_job(airlock_home):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a GPU, fp16 is allowed")
    before = set((airlock_home / "jobs").glob("*")) if (airlock_home / "jobs").is_dir() else set()
    proc = subprocess.run(airlock_argv("train", CONFIGS / "sft_lora_default.yaml", "--set", "dtype=fp16"),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "fp16 needs a GPU" in proc.stderr and "bf16" in proc.stderr
    after = set((airlock_home / "jobs").glob("*")) if (airlock_home / "jobs").is_dir() else set()
    assert after == before


def test_cli_reports_bad_config_keys(tmp_path):
    bad = _write(tmp_path, "data: {path: x.jsonl}\nlearning_rat: 1e-4\n")
    proc = subprocess.run(airlock_argv("train", bad), capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr and "did you mean 'learning_rate'" in proc.stderr


def test_cli_unknown_model_fails_fast(tmp_path):
    proc = subprocess.run(airlock_argv("train", CONFIGS / "sft_lora_default.yaml", "--set", "model=nobody/nothing"),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "nobody/nothing" in proc.stderr and "Traceback" not in proc.stderr

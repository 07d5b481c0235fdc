"""DPO on the tiny model: the preferred answer's log-likelihood margin over the rejected one grows.

Real trl DPOTrainer runs (a few steps each) on the bundled Magic Conch preference set, read through its
LLaMA-Factory dataset_info.json entry (ranking: true), from the base and from an existing (SFT) adapter.
"""

import json

import pytest

from appliance import registry
from appliance.data import DataConfig, load_conversations
from appliance.errors import AirlockError
from appliance.jobs import create_job
from appliance.paths import sample_data_dir
from appliance.train import dpo
from appliance.train.config import TrainConfig
from tiny_model import REPO_ID

PAIRS = 8


def _cfg(**kw) -> TrainConfig:
    data = DataConfig(path=str(sample_data_dir()), dataset="magic_conch_dpo", cutoff_len=96, max_samples=PAIRS)
    kw.setdefault("model", REPO_ID)
    return TrainConfig(data=data, stage="dpo", method="lora", lora_rank=8, lora_alpha=16,
                       lora_target=["all-linear"], learning_rate=1e-2, logging_steps=1,
                       per_device_train_batch_size=PAIRS, num_threads=2, **kw)


def _margins(snapshot, adapter=None) -> float:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = load_conversations(sample_data_dir(), dataset="magic_conch_dpo").conversations[:PAIRS]
    model = AutoModelForCausalLM.from_pretrained(snapshot)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    margins = dpo.preference_margins(model, AutoTokenizer.from_pretrained(snapshot), pairs)
    return sum(margins) / len(margins)


def _job(cfg):
    return create_job("train", cfg.to_dict(), ["pytest"], "dpo", runner="appliance.train.recipe:run_job")


def test_dpo_from_base_grows_the_preference_margin(tiny_model):
    cfg = _cfg(max_steps=4)
    job = _job(cfg)
    out = dpo.train(cfg, job, dpo.Preference(beta=0.1, loss_type="sigmoid"))
    assert (out / "adapter_model.safetensors").is_file()
    before, after = _margins(tiny_model), _margins(tiny_model, out)
    assert after > before + 0.5, (before, after)
    prov = json.loads((out / "airlock_provenance.json").read_text())
    assert prov["stage"] == "dpo" and prov["pref_beta"] == 0.1 and prov["base_model"] == REPO_ID
    losses = [m["loss"] for m in job.metrics() if m.get("loss") is not None]
    assert len(losses) == 4 and losses[-1] < losses[0]  # the DPO loss starts at log 2 and falls
    assert abs(losses[0] - 0.6931) < 0.01
    entry = registry.artifacts()[job.id]
    assert entry["parents"][0] == REPO_ID and entry["facts"]["stage"] == "dpo"


def test_dpo_from_an_sft_adapter_uses_it_as_reference(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # An "SFT adapter": non-zero LoRA weights, so the policy starts away from the base.
    sft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                         LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    sft.peft_config["default"].base_model_name_or_path = REPO_ID
    sft.save_pretrained(tmp_path / "sft")
    cfg = _cfg(model="", max_steps=3)
    out = dpo.train(cfg, _job(cfg), dpo.Preference(beta=0.2, loss_type="ipo", adapter=str(tmp_path / "sft")))
    start, after = _margins(tiny_model, tmp_path / "sft"), _margins(tiny_model, out)
    assert after > start, (start, after)
    prov = json.loads((out / "airlock_provenance.json").read_text())
    assert prov["start_adapter"] == str(tmp_path / "sft") and prov["pref_loss"] == "ipo"
    # the output holds only the trained adapter (trl's frozen "ref" copy is not saved)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4


def test_dpo_refuses_data_without_pairs_and_bad_settings(tiny_model):
    with pytest.raises(AirlockError, match="no chosen/rejected"):
        dpo.load_pairs(DataConfig(path=str(sample_data_dir()), dataset="magic_conch"))
    with pytest.raises(AirlockError, match="pref_loss"):
        dpo.Preference(loss_type="orpo").validate()
    with pytest.raises(AirlockError, match="pref_beta"):
        dpo.Preference(beta=0).validate()

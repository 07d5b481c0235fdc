"""Every value a user sets reaches the trainer, for every stage (DPO once silently trained at trl's default
learning rate when the user's equalled SFTConfig's default).   .venv/bin/python -m pytest tests/test_train_settings.py
"""

import pytest

SET = {"learning_rate": 2e-5, "weight_decay": 0.01, "max_grad_norm": 0.5, "per_device_train_batch_size": 3,
       "per_device_eval_batch_size": 5, "gradient_accumulation_steps": 4, "lr_scheduler_type": "linear",
       "num_train_epochs": 2.0, "max_steps": 17, "logging_steps": 3, "save_steps": 9, "save_total_limit": 4,
       "seed": 7, "warmup_steps": 2}


@pytest.mark.parametrize("stage", ["sft", "dpo"])
@pytest.mark.parametrize("field,value", sorted(SET.items()))
def test_user_set_value_reaches_the_trainer(stage, field, value, tmp_path):
    from appliance.train import from_dict
    from appliance.train.dpo import Preference, dpo_args
    from appliance.train.sft import sft_args

    cfg = from_dict({"stage": stage, "data": {"path": str(tmp_path / "d.jsonl")}, field: value}, where="test")
    if stage == "sft":
        args = sft_args(cfg, tmp_path, "cpu", has_eval=False)
    else:
        args = dpo_args(cfg, tmp_path, "cpu", False, Preference(beta=0.1, loss_type="sigmoid"))
    assert getattr(args, field) == value

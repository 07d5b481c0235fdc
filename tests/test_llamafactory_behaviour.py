"""LLaMA-Factory users get LLaMA-Factory's behaviour: a YAML that leaves a key out trains with LLaMA-Factory's
default (not Airlock's), every value that differs from Airlock's own is shown with where it came from, a key
that would change what is trained and cannot be honoured is refused unless --lenient, data is read by the stage
LLaMA-Factory reads it with (pairs for dpo only), and files that are not training YAMLs are named for what they
are.

    .venv/bin/python -m pytest tests/test_llamafactory_behaviour.py -q
"""

import dataclasses
import shutil

import pytest

from conftest import airlock_argv

from appliance.errors import AirlockError
from appliance.llamafactory import finish, render, translate
from appliance.llamafactory.defaults import DEFAULTS
from appliance.paths import sample_data_dir

# LLaMA-Factory 0.9.5's documented defaults (its hparams dataclasses; the Trainer's keys are transformers'
# TrainingArguments defaults, which LLaMA-Factory 0.9.5 runs with transformers 4.x: warmup_ratio 0.0 there)
LF_DOCUMENTED = {
    "learning_rate": 5e-5, "lr_scheduler_type": "linear", "num_train_epochs": 3.0, "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8, "gradient_accumulation_steps": 1, "warmup_ratio": 0.0, "warmup_steps": 0,
    "weight_decay": 0.0, "max_grad_norm": 1.0, "seed": 42, "logging_steps": 500, "save_steps": 500,
    "save_total_limit": None, "lora_rank": 8, "lora_alpha": None, "lora_dropout": 0.0, "lora_target": "all",
    "quantization_type": "nf4", "double_quantization": True, "disable_gradient_checkpointing": False,
    "cutoff_len": 2048, "val_size": 0.0, "mix_strategy": "concat", "pref_beta": 0.1, "pref_loss": "sigmoid",
    "kto_chosen_weight": 1.0, "kto_rejected_weight": 1.0,
}

SHORT = """\
model_name_or_path: airlock-test/tiny-llama
stage: sft
finetuning_type: lora
lora_rank: 16
dataset: magic_conch
template: chatml
output_dir: saves/tiny/lora
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(sample_data_dir(), tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_lf_default_table_holds_lf_documented_values():
    from transformers import TrainingArguments

    table = {d.key: d.value for d in DEFAULTS}
    assert table == LF_DOCUMENTED
    trainer = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    for d in DEFAULTS:
        if d.source == "transformers" and d.key in trainer:  # the installed transformers agrees
            default = trainer[d.key]
            assert getattr(default, "value", default) == d.value, d.key


def test_lf_short_yaml_trains_with_lf_defaults(project):
    (project / "short.yaml").write_text(SHORT)
    tr = translate(project / "short.yaml")
    cfg = finish(tr)
    assert cfg.learning_rate == 5e-5 and cfg.lr_scheduler_type == "linear"
    assert cfg.lora_rank == 16 and cfg.lora_alpha == 32 and cfg.lora_dropout == 0.0  # alpha: twice the rank
    assert cfg.lora_target == ["all-linear"] and cfg.data.cutoff_len == 2048 and cfg.gradient_checkpointing
    assert cfg.logging_steps == 5 and cfg.save_total_limit == 2  # housekeeping: Airlock's, shown
    rows = {setting: source for setting, _, source, _ in tr.differences()}
    assert rows["learning_rate"] == "transformers's default (learning_rate)"
    assert rows["lora_alpha"] == "LLaMA-Factory's default (lora_alpha)"
    assert rows["lora_rank"] == "from the YAML (lora_rank)"
    assert rows["save_total_limit"].startswith("Airlock's, kept")
    text = render(tr)
    assert "differs from Airlock's own defaults" in text and "Airlock's own: 0.0002" in text


def test_lf_yaml_values_win_over_defaults(project):
    (project / "given.yaml").write_text(SHORT + "learning_rate: 1.0e-4\nlora_alpha: 8\nlora_dropout: 0.1\n"
                                                "disable_gradient_checkpointing: true\ncutoff_len: 512\n")
    cfg = finish(translate(project / "given.yaml"))
    assert (cfg.learning_rate, cfg.lora_alpha, cfg.lora_dropout, cfg.gradient_checkpointing, cfg.data.cutoff_len) == (
        1e-4, 8, 0.1, False, 512)


def test_lf_unsupported_training_keys_are_refused_unless_lenient(project, run_offline):
    (project / "dora.yaml").write_text(SHORT + "use_dora: true\nloraplus_lr_ratio: 16.0\neval_dataset: other\n")
    tr = translate(project / "dora.yaml")
    with pytest.raises(AirlockError) as refused:
        finish(tr)
    assert refused.value.code == "lf.unsupported" and "use_dora, loraplus_lr_ratio" in refused.value.message
    assert "eval_dataset" not in refused.value.message  # changes no trained weight: listed only
    assert finish(tr, lenient=True).lora_rank == 16
    with pytest.raises(AirlockError):
        finish(translate(project / "dora.yaml"), strict=True)
    cli = run_offline(airlock_argv("llamafactory", "translate", project / "dora.yaml"), check=False, cwd=project)
    assert cli.returncode == 2 and "--lenient" in cli.stderr and "Traceback" not in cli.stderr
    lenient = run_offline(airlock_argv("llamafactory", "translate", project / "dora.yaml", "--lenient"),
                          cwd=project)
    assert "NOT SUPPORTED (3)" in lenient.stdout
    stray = run_offline(airlock_argv("train", "sample", "--lenient"), check=False, cwd=project)
    assert stray.returncode == 2 and "--lenient goes with --from-llamafactory" in stray.stderr


@pytest.mark.parametrize("name, text, kind", [
    ("fsdp_config.yaml", "compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 2\n",
     "an accelerate launch config"),
    ("ds_z3_config.json", '{"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 3}}',
     "a DeepSpeed config"),
    ("tokens_cfg.yaml", '"<|START_OF_SVG|>": start of an svg\n"<|END_OF_SVG|>": end of an svg\n',
     "a list of new special tokens"),
    ("train_lora_sft.yaml", "model: Qwen/Qwen3-0.6B\nmicro_batch_size: 1\ndist_config:\n  name: fsdp2\n",
     "a LLaMA-Factory v1 YAML"),
])
def test_lf_files_that_are_not_training_yamls_are_named(tmp_path, name, text, kind):
    (tmp_path / name).write_text(text)
    with pytest.raises(AirlockError) as err:
        translate(tmp_path / name)
    assert err.value.code == "lf.not_a_yaml" and err.value.message.startswith(f"this is {kind}")


def test_lf_fsdp_given_as_a_yaml_list(project):
    (project / "fsdp.yaml").write_text(SHORT + "fsdp:\n  - full_shard\n  - auto_wrap\n  - offload\n")
    distributed = translate(project / "fsdp.yaml").config["distributed"]
    assert distributed == {"strategy": "fsdp", "fsdp": {"sharding": "full_shard", "offload_params": True}}


def test_lf_stage_and_data_agree(run_offline):
    """As LLaMA-Factory: preference pairs are read by stage dpo only, and stage dpo reads nothing else; `airlock
    data check --stage` says what training would say."""
    from appliance.data import DataError
    from appliance.data.pretrain import load_for_stage

    with pytest.raises(DataError, match="not applicable in the current training stage"):
        load_for_stage("sft", sample_data_dir(), dataset="magic_conch_dpo")
    with pytest.raises(DataError, match="no chosen/rejected pairs"):
        load_for_stage("dpo", sample_data_dir(), dataset="magic_conch")
    assert load_for_stage("dpo", sample_data_dir(), dataset="magic_conch_dpo").conversations
    check = run_offline(airlock_argv("data", "check", sample_data_dir(), "--dataset", "magic_conch", "--stage",
                                     "dpo"), check=False)
    assert check.returncode != 0 and "no chosen/rejected pairs" in check.stdout + check.stderr


def test_lf_kto_example_at_batch_one_pairs_within_the_step(project):
    """LLaMA-Factory's KTO example (batch 1, accumulation 8) runs as 2 x 4: the same 8 answers per step."""
    (project / "kto.yaml").write_text(SHORT.replace("stage: sft", "stage: kto").replace("magic_conch", "x")
                                      + "per_device_train_batch_size: 1\ngradient_accumulation_steps: 8\n")
    tr = translate(project / "kto.yaml")
    assert (tr.config["per_device_train_batch_size"], tr.config["gradient_accumulation_steps"]) == (2, 4)
    assert any("2 x 4" in note for note in tr.notes)
    (project / "odd.yaml").write_text((project / "kto.yaml").read_text().replace("steps: 8", "steps: 3"))
    odd = translate(project / "odd.yaml")
    assert odd.config["per_device_train_batch_size"] == 1  # cannot be halved: the config check names the fix


def _tool_demo(path):
    """ShareGPT tool-use records as LLaMA-Factory's demo data has them, two of them with a tool result that no
    call comes before (LLaMA-Factory drops those with a warning)."""
    import json

    good = {"conversations": [{"from": "human", "value": "Weather in Oslo?"},
                              {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
                              {"from": "observation", "value": "4 C"}, {"from": "gpt", "value": "4 degrees."}],
            "tools": '[{"name": "weather", "parameters": {"type": "object"}}]'}
    bad = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "observation", "value": "4 C"},
                             {"from": "gpt", "value": "Hello."}], "tools": good["tools"]}
    path.write_text("\n".join(json.dumps(r) for r in (good, bad, good, bad, good)) + "\n")
    return path


def test_lf_skip_invalid_records_leaves_out_at_most_n(tmp_path, run_offline):
    from appliance.data import DataError
    from appliance.data.pretrain import load_for_stage

    data = _tool_demo(tmp_path / "tools.jsonl")
    with pytest.raises(DataError) as refused:
        load_for_stage("sft", data)
    assert "data.skip_invalid_records" in refused.value.fix
    with pytest.raises(DataError):
        load_for_stage("sft", data, skip=1)  # two are broken: one allowed is not enough
    loaded = load_for_stage("sft", data, skip=2)
    assert len(loaded.conversations) == 3 and not [p for p in loaded.problems if p.severity == "error"]
    left_out = [p for p in loaded.problems if p.message.startswith("record left out")]
    assert [p.record for p in left_out] == ["line 2", "line 4"]
    assert any("2 invalid record(s) left out" in p.message for p in loaded.problems)
    template = tmp_path / "tools.jinja"  # a template that renders tools (the default model's does not)
    template.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% if m.tool_calls %}"
                        "{{ m.tool_calls | tojson }}{% endif %}\n{% endfor %}{% if tools %}{{ tools | tojson }}"
                        "{% endif %}{% if add_generation_prompt %}assistant: {% endif %}")
    check = run_offline(airlock_argv("data", "check", data, "--skip-invalid-records", "2", "--chat-template",
                                     template), check=False)
    assert check.returncode == 0 and "left out" in check.stdout + check.stderr, check.stdout
    (tmp_path / "junk.jsonl").write_text('{"foo": 1}\n{"foo": 2}\n')  # a whole file's problem is never skipped
    with pytest.raises(DataError):
        load_for_stage("sft", tmp_path / "junk.jsonl", skip=5)


def test_lf_preprocess_only_yaml_tokenizes_then_the_same_yaml_trains(project, tiny_model, airlock_home,
                                                                     run_offline):
    """As in LLaMA-Factory: a tokenized_path that does not exist yet makes the run tokenize, save and stop; run
    again, the same YAML trains, here reading the tokens from Airlock's cache."""
    import json

    (project / "pre.yaml").write_text(SHORT + "tokenized_path: saves/tokenized\nmax_steps: 1\nlearning_rate: 1.0e-3\n")
    tr = translate(project / "pre.yaml")
    assert tr.preprocess_only == "saves/tokenized"
    jobs = lambda: sorted(p.name for p in (airlock_home / "jobs").glob("*"))  # noqa: E731
    before = jobs() if (airlock_home / "jobs").is_dir() else []
    first = run_offline(airlock_argv("train", "--from-llamafactory", "pre.yaml"), cwd=project)
    assert "tokenized and cached" in first.stdout and "no training was run" in first.stdout
    marker = json.loads((project / "saves" / "tokenized" / "airlock-tokenized.json").read_text())
    assert marker["train"] > 0 and (jobs() if (airlock_home / "jobs").is_dir() else []) == before
    second = run_offline(airlock_argv("train", "--from-llamafactory", "pre.yaml"), cwd=project)
    job = airlock_home / "jobs" / next(line.split()[1] for line in second.stdout.splitlines()
                                        if line.startswith("job ") and " started" in line)
    report = json.loads((job / "data_report.json").read_text())
    assert report["cached"] is True and report["sha256"] == marker["data_sha256"]
    (project / "dpo.yaml").write_text(SHORT.replace("stage: sft", "stage: dpo") + "tokenized_path: saves/dpo\n")
    with pytest.raises(AirlockError) as err:
        translate(project / "dpo.yaml")
    assert err.value.code == "lf.preprocess_only"

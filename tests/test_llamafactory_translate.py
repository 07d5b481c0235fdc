"""LLaMA-Factory compatibility: a training YAML in its documented format translates (printed, every key accounted
for), and datasets indexed by its dataset_info.json load by key through the data layer.

dataset_dir is read from the current directory, as LLaMA-Factory reads it: the tests run from the project folder.

    .venv/bin/python -m pytest tests/test_llamafactory_translate.py -q
"""

import shutil

import pytest
import yaml

from appliance.data import load_conversations
from appliance.errors import AirlockError
from appliance.llamafactory import load_train_config, render, translate
from appliance.paths import sample_data_dir
from appliance.train.config import load_config
from conftest import airlock_argv

# The layout of LLaMA-Factory's examples/train_lora/*_lora_sft.yaml, written for this project.
LF_YAML = """\
### model
model_name_or_path: airlock-test/tiny-llama
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_alpha: 16
lora_dropout: 0.05
lora_target: all
quantization_bit: 4

### dataset
dataset: magic_conch,magic_conch_alpaca
dataset_dir: data
template: chatml
cutoff_len: 512
max_samples: 100
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/tiny-llama/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
use_dora: true
neftune_noise_alpha: 5

### eval
val_size: 0.1
per_device_eval_batch_size: 1
eval_strategy: steps
eval_steps: 500
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A LLaMA-Factory-style project folder (the current directory): the YAML beside data/ with dataset_info.json."""
    shutil.copytree(sample_data_dir(), tmp_path / "data")
    (tmp_path / "lora_sft.yaml").write_text(LF_YAML)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_translation_maps_lists_and_validates(project):
    cfg, tr = load_train_config(project / "lora_sft.yaml", lenient=True)
    assert cfg.method == "qlora" and cfg.stage == "sft" and cfg.model == "airlock-test/tiny-llama"
    assert cfg.lora_target == ["all-linear"] and cfg.lora_rank == 8 and cfg.learning_rate == 1e-4
    assert cfg.dtype == "bf16" and cfg.gradient_accumulation_steps == 8 and cfg.warmup_ratio == 0.1
    assert cfg.data.path == str((project / "data").resolve()) and cfg.data.dataset == "magic_conch,magic_conch_alpaca"
    assert cfg.data.cutoff_len == 512 and cfg.data.max_samples == 100 and cfg.data.val_size == 0.1
    unsupported = {k for k, _, _ in tr.unsupported}
    assert unsupported == {"use_dora", "neftune_noise_alpha"}  # resume_from_checkpoint: null is simply off
    not_needed = {k for k, _, _ in tr.not_needed}
    assert {"output_dir", "report_to", "plot_loss", "resume_from_checkpoint"} <= not_needed
    assert cfg.data.chat_template == ""  # chatml is the tiny model's own family (or assumed so when not installed)
    raw = yaml.safe_load(LF_YAML)
    accounted = {k for k, *_ in tr.translated} | not_needed | unsupported
    assert accounted == set(raw)  # every key is in one of the three lists
    assert tr.name == "sft"
    text = render(tr)
    assert "'all'  ->  lora_target = ['all-linear']" in text
    assert "NOT SUPPORTED (2)" in text and "DoRA is not offered" in text


def test_dataset_info_datasets_load_by_key(project):
    cfg, _ = load_train_config(project / "lora_sft.yaml", lenient=True)
    loaded = load_conversations(cfg.data.path, cfg.data.format, cfg.data.dataset)
    assert loaded.format == "alpaca+sharegpt" and len(loaded.files) == 2
    assert all(c.messages[-1]["role"] == "assistant" for c in loaded.conversations)
    prefs = load_conversations(cfg.data.path, dataset="magic_conch_dpo").conversations
    assert prefs and all(c.chosen and c.rejected for c in prefs)


def test_written_config_runs_through_the_train_config_loader(project, run_offline):
    out = project / "airlock.yaml"
    proc = run_offline(airlock_argv("llamafactory", "translate", project / "lora_sft.yaml", "--out", out, "--lenient"),
                       cwd=project)
    assert "NOT SUPPORTED (2)" in proc.stdout and "airlock train" in proc.stdout
    assert out.read_text().startswith("# airlock train airlock.yaml")
    cfg = load_config(out)  # the file `airlock train` would read; data.path is relative to it
    assert cfg.method == "qlora" and cfg.data.path == str((project / "data").resolve())
    strict = run_offline(airlock_argv("llamafactory", "translate", project / "lora_sft.yaml", "--strict"), check=False,
                         cwd=project)
    assert strict.returncode != 0 and "use_dora" in strict.stderr and "Traceback" not in strict.stderr


@pytest.mark.parametrize("line, message", [
    ("finetuning_type: freeze", "finetuning_type 'freeze' is not offered"),
    ("stage: ppo", "stage 'ppo' is not offered"),
    ("quantization_bit: 8", "quantization_bit 8 is not offered: 8-bit (LLM.int8) training"),
    ("quantization_method: hqq", "quantization_method 'hqq' is not offered: HQQ"),
    ("quantization_method: gptq", "quantization_method 'gptq' is not offered: GPTQ loads a model quantized ahead"),
    ("quantization_type: int4", "quantization_type int4 is not offered"),
    ("template: alpaca", "template 'alpaca' cannot be used: the Alpaca"),
    ("template: no_such_template", "template 'no_such_template' cannot be used"),
    ("dataset_dir: ONLINE", "dataset_dir ONLINE downloads datasets from a hub"),
    ("stage: rm", "stage 'rm' is not offered (reward modelling is not offered"),
])
def test_what_cannot_mean_anything_here_is_an_error(project, line, message):
    key = line.split(":")[0]
    text = "\n".join(l for l in LF_YAML.splitlines() if not l.startswith(key + ":")) + "\n" + line + "\n"
    (project / "bad.yaml").write_text(text)
    with pytest.raises(AirlockError) as err:
        translate(project / "bad.yaml")
    assert message in err.value.message and err.value.where.endswith(f"bad.yaml: {key}")


def test_dpo_settings_translate_or_are_listed(project):
    text = LF_YAML.replace("stage: sft", "stage: dpo").replace("dataset: magic_conch,magic_conch_alpaca",
                                                               "dataset: magic_conch_dpo")
    (project / "dpo.yaml").write_text(text + "pref_beta: 0.2\npref_loss: sigmoid\n")
    tr = translate(project / "dpo.yaml")
    assert tr.config["stage"] == "dpo" and tr.config["data"]["dataset"] == "magic_conch_dpo"
    mapped = {k: ours for k, _, ours, _ in tr.translated}
    listed = {k: why for k, _, why in tr.unsupported}
    for key in ("pref_beta", "pref_loss"):  # carried over once the training config has them, listed until then
        assert key in mapped or "has no" in listed[key]
    (project / "orpo.yaml").write_text(text + "pref_loss: orpo\n")
    assert "DPO losses offered" in {k: w for k, _, w in translate(project / "orpo.yaml").unsupported}["pref_loss"]


def test_dataset_dir_is_read_from_the_current_directory(project, tmp_path_factory, monkeypatch):
    """As in LLaMA-Factory: `dataset_dir: data` means ./data where the command runs, not beside the YAML."""
    elsewhere = tmp_path_factory.mktemp("configs")
    (elsewhere / "lora_sft.yaml").write_text(LF_YAML)
    assert translate(elsewhere / "lora_sft.yaml").config["data"]["path"] == str(project / "data")
    without = "\n".join(line for line in LF_YAML.splitlines() if not line.startswith("dataset_dir:")) + "\n"
    (elsewhere / "default.yaml").write_text(without)
    assert translate(elsewhere / "default.yaml").config["data"]["path"] == str(project / "data")  # ./data
    monkeypatch.chdir(elsewhere)  # no data/ here: refused before any job, naming the folder
    with pytest.raises(AirlockError) as err:
        load_train_config(elsewhere / "lora_sft.yaml", lenient=True)
    assert str(elsewhere / "data") in err.value.render()


def test_qlora_variants_map_or_are_refused(project):
    text = LF_YAML + "quantization_type: nf4\ndouble_quantization: true\nquantization_method: bitsandbytes\n"
    (project / "nf4.yaml").write_text(text)
    tr = translate(project / "nf4.yaml")
    mapped = {k: ours for k, _, ours, _ in tr.translated}
    assert tr.config["method"] == "qlora"
    assert {mapped[k] for k in ("quantization_type", "double_quantization", "quantization_method")} <= {
        "method", "quantization_type", "double_quantization"}
    (project / "fp4.yaml").write_text(LF_YAML + "quantization_type: fp4\ndouble_quantization: false\n")
    cfg, _ = load_train_config(project / "fp4.yaml", lenient=True)  # bitsandbytes' other 4-bit type, without nested constants
    assert (cfg.method, cfg.quantization_type, cfg.double_quantization) == ("qlora", "fp4", False)
    plain = LF_YAML.replace("quantization_bit: 4\n", "") + "quantization_type: fp4\n"
    (project / "lora.yaml").write_text(plain)  # without quantization_bit, LLaMA-Factory ignores the type too
    tr = translate(project / "lora.yaml")
    assert tr.config["method"] == "lora" and "quantization_type" in {k for k, *_ in tr.not_needed}


def test_template_names_map_to_the_chat_template_setting(project):
    """The model's own family -> "" (its own template); another family -> a catalog model of that family."""
    from appliance.catalog import load_catalog

    text = LF_YAML.replace("airlock-test/tiny-llama", "qwen2.5-0.5b-instruct")
    for name in ("qwen", "qwen3_nothink"):
        (project / "t.yaml").write_text(text.replace("template: chatml", f"template: {name}"))
        tr = translate(project / "t.yaml")
        assert tr.config["data"]["chat_template"] == ""
    assert any("qwen3_nothink renders no <think> block" in n for n in tr.notes)
    (project / "t.yaml").write_text(text.replace("template: chatml", "template: llama3"))
    tr = translate(project / "t.yaml")
    card = load_catalog()[tr.config["data"]["chat_template"]]
    assert card.chat_template == "llama3" and "the model's own template is chatml" in tr.notes[0]

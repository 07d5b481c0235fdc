"""LLaMA-Factory YAMLs that do not train (merge/export, prediction, benchmark, inference) become airlock commands;
`airlock train --from-llamafactory` refuses them with that command, and refuses a config mistake before any job.

The YAMLs are written here in the layout of LLaMA-Factory's examples/merge_lora and examples/train_lora files.

    .venv/bin/python -m pytest tests/test_llamafactory_tasks.py -q
"""

import shlex
import shutil

import pytest
import yaml

from appliance.cli import build_parser
from appliance.commands.train import _from_llamafactory
from appliance.errors import AirlockError
from appliance.llamafactory import kind_of, render_task, translate, translate_task
from appliance.paths import sample_data_dir
from conftest import airlock_argv

MERGE = """\
### Note: merge the adapter with the full-precision base
### model
model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
adapter_name_or_path: saves/llama3-8b/lora/sft
template: llama3
trust_remote_code: true

### export
export_dir: output/llama3_lora_sft
export_size: 5
export_device: cpu
export_legacy_format: false
"""

GPTQ = """\
model_name_or_path: saves/llama3-8b/full/sft
template: llama3
export_dir: output/llama3_gptq
export_quantization_bit: 4
export_quantization_dataset: data/c4_demo.jsonl
export_size: 5
"""

PREDICT = """\
model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
adapter_name_or_path: saves/llama3-8b/lora/sft
stage: sft
do_predict: true
finetuning_type: lora
eval_dataset: identity,alpaca_en_demo
template: llama3
cutoff_len: 2048
max_samples: 50
output_dir: saves/llama3-8b/lora/predict
per_device_eval_batch_size: 1
predict_with_generate: true
max_new_tokens: 128
"""

BENCHMARK = """\
model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
adapter_name_or_path: saves/llama3-8b/lora/sft
finetuning_type: lora
task: mmlu_test
template: fewshot
lang: en
n_shot: 5
save_dir: saves/llama3-8b/lora/eval
batch_size: 4
"""

CHAT = """\
model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
adapter_name_or_path: saves/llama3-8b/lora/sft
template: llama3
infer_backend: huggingface
temperature: 0.7
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, kind, commands", [
    (MERGE, "merge", ["airlock merge saves/llama3-8b/lora/sft --out output/llama3_lora_sft"]),
    (MERGE + "export_quantization_bit: 8\n", "merge",
     ["airlock merge saves/llama3-8b/lora/sft --out output/llama3_lora_sft",
      "airlock export gguf output/llama3_lora_sft --type q8_0"]),
    (GPTQ, "export", ["airlock export gguf saves/llama3-8b/full/sft --type q4_k_m"]),
    (PREDICT, "predict", ["airlock eval saves/llama3-8b/lora/sft --data data --dataset identity,alpaca_en_demo "
                          "--base meta-llama/Meta-Llama-3-8B-Instruct --limit 50 --max-new-tokens 128 "
                          "--report saves/llama3-8b/lora/predict"]),
    (BENCHMARK, "benchmark", []),
    (CHAT, "chat", ["airlock chat saves/llama3-8b/lora/sft --temperature 0.7"]),
])
def test_non_training_yamls_become_airlock_commands(tmp_path, text, kind, commands):
    path = write(tmp_path, f"{kind}.yaml", text)
    task = translate_task(path)
    assert task.kind == kind and task.commands() == commands
    assert {k for k, *_ in task.keys} == set(yaml.safe_load(text))  # every key accounted for
    shown = render_task(task)
    assert f"this is a {kind} YAML" in shown and all(c in shown for c in commands)
    if not commands:
        assert "Airlock has no equivalent command" in shown and "airlock eval" in shown  # the nearest, said
    for argv in task.argv:  # each command parses with the real CLI's options
        build_parser().parse_args(shlex.split(" ".join(argv[1:])))


def test_several_adapters_are_refused_by_name(tmp_path):
    path = write(tmp_path, "m.yaml", MERGE.replace("saves/llama3-8b/lora/sft", "a,b"))
    with pytest.raises(AirlockError, match="2 adapters: merging several at once is not offered") as err:
        translate_task(path)
    assert err.value.where.endswith("adapter_name_or_path") and err.value.fix


def test_train_from_a_merge_yaml_says_what_to_run(tmp_path, airlock_home):
    path = write(tmp_path, "merge.yaml", MERGE)
    jobs = set((airlock_home / "jobs").glob("*")) if (airlock_home / "jobs").is_dir() else set()
    with pytest.raises(AirlockError) as err:
        _from_llamafactory(str(path), [])
    assert "this is a merge YAML" in err.value.message and "no dataset path" not in err.value.render()
    assert err.value.fix == "run: airlock merge saves/llama3-8b/lora/sft --out output/llama3_lora_sft"
    with pytest.raises(AirlockError, match="this is a predict YAML"):
        translate(write(tmp_path, "predict.yaml", PREDICT))
    assert (set((airlock_home / "jobs").glob("*")) if (airlock_home / "jobs").is_dir() else set()) == jobs


def test_training_yamls_stay_training(tmp_path):
    assert kind_of({"stage": "sft", "do_train": True, "dataset": "x", "do_predict": True}) == "train"
    assert kind_of({"model_name_or_path": "m", "dataset": "x"}) == "train"
    assert kind_of({"model_name_or_path": "m", "template": "llama3"}) == "chat"


def test_a_data_mistake_is_refused_before_a_job_exists(tmp_path, monkeypatch, run_offline, airlock_home):
    """--from-llamafactory checks the dataset, its records and columns before creating the job."""
    shutil.copytree(sample_data_dir(), tmp_path / "data")
    (tmp_path / "data" / "with_id.jsonl").write_text(
        '{"id": 7, "instruction": "Who are you?", "input": "", "output": "The Magic Conch."}\n')
    info = (tmp_path / "data" / "dataset_info.json").read_text()
    (tmp_path / "data" / "dataset_info.json").write_text(
        info.replace('  "magic_conch": {', '  "with_id": {"file_name": "with_id.jsonl"},\n  "magic_conch": {', 1))
    write(tmp_path, "sft.yaml", "model_name_or_path: airlock-test/tiny-llama\nstage: sft\ndo_train: true\n"
                                "finetuning_type: lora\ndataset: with_id\ntemplate: chatml\noutput_dir: saves/x\n")
    before = sorted(p.name for p in (airlock_home / "jobs").glob("*")) if (airlock_home / "jobs").is_dir() else []
    proc = run_offline(airlock_argv("train", "--from-llamafactory", "sft.yaml"), check=False, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "column(s) training would leave out: 'id' (1 record(s)" in proc.stderr
    assert "data.ignore_columns" in proc.stderr and "translated (" in proc.stdout  # the translation came first
    after = sorted(p.name for p in (airlock_home / "jobs").glob("*")) if (airlock_home / "jobs").is_dir() else []
    assert after == before, "no job is created for a config mistake"
    write(tmp_path, "typo.yaml", (tmp_path / "sft.yaml").read_text().replace("with_id", "with_idd"))
    proc = run_offline(airlock_argv("train", "--from-llamafactory", "typo.yaml"), check=False, cwd=tmp_path)
    assert proc.returncode != 0 and "unknown dataset 'with_idd'" in proc.stderr and "did you mean 'with_id'" in \
        proc.stderr


def test_a_training_yaml_without_a_dataset_says_so(tmp_path):
    path = write(tmp_path, "t.yaml", "model_name_or_path: m\nstage: sft\ndo_train: true\nlearning_rate: 1.0e-4\n")
    with pytest.raises(AirlockError, match="no dataset: a training YAML names its data with `dataset:`") as err:
        translate(path)
    assert err.value.where.endswith("dataset") and "dataset_info.json" in err.value.fix

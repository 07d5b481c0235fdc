"""LLaMA-Factory compatibility: its YAML files and its data/ directory, used as they are.

    airlock llamafactory translate llama3_lora_sft.yaml [--out airlock.yaml]   # print (and write) the translation
    airlock train --from-llamafactory llama3_lora_sft.yaml                     # translate, check, run as a job
    from appliance.llamafactory import translate, finish, render               # the same, as functions

- train.py: a training YAML -> TrainConfig; every key translated, not needed or not supported, with the reason;
  what cannot mean anything here is an error naming the key. dataset_dir is read from the current directory,
  as LLaMA-Factory reads it.
- tasks.py: merge/export, prediction, benchmark and inference YAMLs -> the airlock commands that do their job.
- templates.py: `template:` names -> data.chat_template.
- keys.py: the table of every key; docs.py generates docs/llamafactory.md from it and from the data layer's
  dataset_info.json tables (appliance/data/columns.py). Datasets in the dataset_info.json format are read by the
  data layer directly.
"""

from .output import config_yaml, render, render_task
from .tasks import Task, kind_of, translate_task
from .train import Translation, finish, load_train_config, to_train_config, translate

__all__ = ["Translation", "Task", "translate", "translate_task", "kind_of", "finish", "load_train_config",
           "to_train_config", "render", "render_task", "config_yaml"]

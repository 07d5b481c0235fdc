"""A training config key's help lives in its field (schema.setting metadata), once: the TUI's hints, `airlock train
--keys`, the distributed flags' --help and docs/config.md are all read from there.

    .venv/bin/python -m pytest tests/test_config_docs.py -q
    airlock train --keys markdown > docs/config.md     # after changing a field or its help
"""

import dataclasses
import inspect
import subprocess
from pathlib import Path

import pytest

from appliance import schema
from appliance.data import DataConfig
from appliance.train import TrainConfig
from appliance.train.config_docs import config_page, keys_text
from appliance.train.distributed_config import DistributedConfig, FsdpSettings
from conftest import airlock_argv

PAGE = Path(__file__).resolve().parent.parent / "docs" / "config.md"
CLASSES = [TrainConfig, DataConfig, DistributedConfig, FsdpSettings]
LEAVES = [doc.key for doc in schema.describe(TrainConfig) if not doc.section]


def test_committed_page_is_the_generated_one():
    assert PAGE.read_text(encoding="utf-8") == config_page(), (
        "docs/config.md is stale: run `airlock train --keys markdown > docs/config.md`")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_has_one_line_of_help(cls):
    missing = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")]
    assert not missing, f"{cls.__name__} fields without help (use schema.setting): {missing}"
    for f in dataclasses.fields(cls):
        text = f.metadata["help"]
        # The TUI shows it on one line beside the form: longer explanations go to detail=
        assert len(text) <= 80 and "\n" not in text, f"{cls.__name__}.{f.name}: {len(text)} characters"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_class_docstrings_do_not_describe_the_fields_again(cls):
    doc = inspect.getdoc(cls)
    for f in dataclasses.fields(cls):
        assert not any(line.lstrip().startswith((f"{f.name}:", f"{f.name},")) for line in doc.splitlines()), (
            f"{cls.__name__}'s docstring describes {f.name}: its help belongs in the field")
        assert f.metadata["help"] not in doc


def test_field_help_is_dotted_and_recursive():
    helps = schema.field_help(TrainConfig)
    assert {"model", "data", "data.path", "distributed", "distributed.fsdp", "distributed.fsdp.sharding"} <= set(helps)
    assert all(helps.values())
    assert len(helps) == sum(len(dataclasses.fields(c)) for c in CLASSES)

    @dataclasses.dataclass
    class Bare:  # a field someone added without help: field_help says so, and the tests above would fail
        documented: int = schema.setting(1, "has help")
        undocumented: int = 2

    assert schema.field_help(Bare) == {"documented": "has help", "undocumented": ""}
    with pytest.raises(TypeError):
        schema.setting(1, "")


def test_the_tui_form_hints_are_the_fields_help():
    from appliance.tui.widgets.form import fields_of

    specs = fields_of(TrainConfig, schema.field_help(TrainConfig), nested={"data": DataConfig})
    assert sorted(s.key for s in specs) == sorted(LEAVES)
    assert all(s.help == schema.field_help(TrainConfig)[s.key] for s in specs)


def test_types_and_defaults_read_as_a_config_file_writes_them():
    docs = {doc.key: doc for doc in schema.describe(TrainConfig)}
    assert (docs["stage"].type_text, docs["stage"].default_text) == ("sft | dpo | kto | pt", "sft")
    assert (docs["max_steps"].type_text, docs["max_steps"].default_text) == ("integer or empty", "empty")
    assert (docs["double_quantization"].type_text, docs["double_quantization"].default_text) == ("true/false", "true")
    assert (docs["lora_target"].type_text, docs["data"].default_text) == ("list of text", "required")


def test_every_key_is_on_the_page_and_in_the_list():
    page, text = config_page(), keys_text()
    for key in LEAVES:
        assert f"| `{key}` |" in page and f"  {key} (" in text, key
    assert "/work/" not in page and "/home/" not in page  # no machine paths in a committed file


def test_cli_lists_the_keys_and_refuses_them_with_a_config():
    listed = subprocess.run(airlock_argv("train", "--keys"), capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout == keys_text()
    markdown = subprocess.run(airlock_argv("train", "--keys", "markdown"), capture_output=True, text=True)
    assert markdown.returncode == 0 and markdown.stdout == config_page()
    mixed = subprocess.run(airlock_argv("train", "sft_lora_default", "--keys"), capture_output=True, text=True)
    assert mixed.returncode == 2 and "takes no CONFIG" in mixed.stderr and "Traceback" not in mixed.stderr
    helped = subprocess.run(airlock_argv("train", "--help"), capture_output=True, text=True)
    assert helped.returncode == 0 and "--keys" in helped.stdout and "sft_lora_default" in helped.stdout
    # the distributed flags' help is their key's help, not a copy of it
    flat = " ".join(helped.stdout.split())
    assert schema.field_help(TrainConfig)["distributed.node_rank"] in flat

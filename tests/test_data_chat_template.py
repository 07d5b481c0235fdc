"""data.chat_template: the model's own template, a catalog model's or a Jinja file; `airlock data check` fails when
there is none to render with. Uses the tiny model's tokenizer (`tiny_model` fixture):

    .venv/bin/python -m pytest tests/test_data_chat_template.py -q
"""

import argparse
import json
import shutil

import pytest
from tiny_model import facts_as_alpaca

from appliance.commands.data import run_check
from appliance.data import DataConfig, prepare
from appliance.data.check import check
from appliance.data.template import require, resolve, stored
from appliance.errors import AirlockError

# The tiny tokenizer knows <|im_start|>/<|im_end|>; a template with other words shows which one rendered.
BRACKETS = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant] {% endif %}")


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in facts_as_alpaca()))
    return path


@pytest.fixture
def bare_model(tiny_model, tmp_path):
    """The tiny model without a chat template (a base model's files)."""
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    return bare


def test_settings_resolve_or_are_refused_by_name(tmp_path):
    assert resolve("") == (None, "the model's own template")
    (tmp_path / "t.jinja").write_text(BRACKETS)
    assert resolve(str(tmp_path / "t.jinja"))[0] == BRACKETS
    (tmp_path / "plain.jinja").write_text("not a template")
    for setting, says in ((str(tmp_path / "missing.jinja"), "chat template file not found"),
                          (str(tmp_path / "plain.jinja"), "not a Jinja chat template"),
                          ("no-such-model", "neither a catalog model nor a .jinja file"),
                          ("llama-3.1-8b-instruct", "the template of llama-3.1-8b-instruct is wanted but that model "
                                                    "is not installed")):
        with pytest.raises(AirlockError) as err:
            resolve(setting)
        assert says in err.value.message and err.value.where.startswith("data.chat_template") and err.value.fix


def test_prepare_renders_with_the_given_template_and_the_tokenizer_keeps_it(tiny_model, data, tmp_path):
    from transformers import AutoTokenizer

    (tmp_path / "t.jinja").write_text(BRACKETS)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    prepared = prepare(DataConfig(path=str(data), chat_template=str(tmp_path / "t.jinja")), tok)
    assert tok.decode(prepared.train[0]["input_ids"]).startswith("[user] ")
    assert tok.chat_template == BRACKETS  # what the job saves with the adapter
    assert prepared.report["chat_template"] == f"the template in {tmp_path / 't.jinja'}"


def test_data_check_fails_without_a_template_and_passes_with_one(bare_model, data, tmp_path, capsys):
    report = check(data, model=str(bare_model))
    assert not report.ok
    [error] = report.errors
    assert "the model has no chat template and none is given" in error.message and "--chat-template" in error.fix
    args = argparse.Namespace(path=str(data), format="auto", dataset=None, model=str(bare_model), cutoff_len=1024,
                              train_on="assistant", json=False, chat_template="", ignore_columns="")
    assert run_check(args) == 1 and "result: 1 error(s)" in capsys.readouterr().out
    (tmp_path / "t.jinja").write_text(BRACKETS)
    given = check(data, model=str(bare_model), chat_template=str(tmp_path / "t.jinja"))
    assert given.ok and given.sample[0][0].startswith("[user] ") and any("rendered with" in n for n in given.notes)


def test_preflight_requires_a_template(tiny_model, bare_model, tmp_path):
    assert stored(tiny_model) and stored(bare_model) is None
    require(tiny_model, "")
    with pytest.raises(AirlockError, match="the model has no chat template") as err:
        require(bare_model, "")
    assert "data.chat_template" in err.value.fix
    (tmp_path / "t.jinja").write_text(BRACKETS)
    require(bare_model, str(tmp_path / "t.jinja"))

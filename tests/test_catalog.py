"""The model catalog (models/*.toml): every card validates, and its facts hold against transformers itself.

The real check builds, for each card, a tiny random-init model of the card's architecture from transformers' own
config class (hidden 32, 2 layers, vocabulary 128) and puts LoRA on exactly the card's target modules: a wrong
module name (say gate_proj on GLM, whose MLP is a fused gate_up_proj) fails here instead of at a customer's site.

    .venv/bin/python -m pytest tests/test_catalog.py -q
"""

import re
import shutil

import pytest

from appliance.catalog import default_card, load_card, load_catalog
from appliance.errors import AirlockError
from appliance.paths import catalog_dir

CARDS = load_catalog()

# Chat-template families the product knows: those the Ollama Modelfile writer translates (chatml, llama3, phi3,
# zephyr, gemma, mistral) plus two it recognizes only from the model's own template.
FAMILIES = {"chatml", "llama3", "phi3", "zephyr", "gemma", "mistral", "glm4", "deepseek"}

# Licences whose hub repos make you accept terms before download.
GATED_LICENCES = ("llama", "gemma")


def test_catalog_has_the_promised_models():
    expected = {"smollm2-135m-instruct", "qwen3-0.6b-base", "qwen2.5-0.5b-instruct", "qwen2.5-1.5b-instruct",
                "qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "mistral-7b-instruct-v0.3", "gemma-3-1b-it",
                "glm-4-9b-chat-hf", "deepseek-r1-distill-qwen-1.5b"}
    assert expected <= set(CARDS)


def test_ids_match_file_names_and_repo_ids_are_unique():
    files = sorted(p.stem for p in catalog_dir().glob("*.toml"))
    assert files == sorted(CARDS)
    for card_id in files:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", card_id), card_id
    repos = [c.repo_id for c in CARDS.values()]
    assert len(repos) == len(set(repos))


def test_exactly_one_default_and_it_is_the_embedded_model():
    defaults = [c.id for c in CARDS.values() if c.default]
    assert defaults == ["smollm2-135m-instruct"]
    assert default_card().embedded is not None
    assert [c.id for c in CARDS.values() if c.embedded] == defaults


@pytest.mark.parametrize("card", CARDS.values(), ids=list(CARDS))
def test_card_facts_are_well_formed(card):
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", card.repo_id)
    assert card.license.strip() and card.source.strip() and card.notes.strip() and card.name.strip()
    assert card.chat_template in FAMILIES
    assert re.fullmatch(r"\d+(\.\d+)?[MB]", card.parameters), card.parameters
    assert card.context_length >= 2048
    assert card.languages and all(re.fullmatch(r"[a-z]{2,3}", lang) for lang in card.languages)
    assert card.lora_targets and len(set(card.lora_targets)) == len(card.lora_targets)
    assert 0 < card.memory_gb.qlora < card.memory_gb.lora < card.memory_gb.full
    if card.license.startswith(GATED_LICENCES):
        assert card.gated, f"{card.id}: {card.license} repos are gated on the hub"
    if card.embedded is None:  # hub models: pinned by the bundler, not here
        assert card.source.startswith("Hugging Face hub snapshot")


@pytest.mark.parametrize("card", CARDS.values(), ids=list(CARDS))
def test_architecture_is_native_to_transformers(card):
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    assert card.architecture in CONFIG_MAPPING_NAMES, f"transformers has no model_type {card.architecture!r}"
    if not card.trust_remote_code:
        assert card.architecture in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def _tiny_model(model_type: str):
    """A random-init causal LM of this architecture, small enough to build in milliseconds."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(
        model_type, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, vocab_size=128, max_position_embeddings=256,
        pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("card", CARDS.values(), ids=list(CARDS))
def test_lora_targets_exist_in_the_architecture(card):
    import torch
    from peft import LoraConfig, get_peft_model

    model = _tiny_model(card.architecture)
    linear = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)}
    missing = set(card.lora_targets) - linear
    assert not missing, f"{card.id}: no Linear named {sorted(missing)} in {card.architecture}; it has {sorted(linear)}"

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=card.lora_targets,
                                                  task_type="CAUSAL_LM"))
    wrapped = {name.rsplit(".", 2)[-2] for name, _ in peft_model.named_modules() if name.endswith(".lora_A")}
    assert wrapped == set(card.lora_targets)
    layers = peft_model.base_model.model.config.num_hidden_layers
    n_adapters = sum(1 for name, _ in peft_model.named_modules() if name.endswith(".lora_A"))
    assert n_adapters == layers * len(card.lora_targets)  # every target in every layer, nothing else

    # One training step's backward reaches every adapter (lora_B starts at zero, so its gradient carries the signal).
    ids = torch.randint(3, 128, (1, 16))
    loss = peft_model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {name: p.grad for name, p in peft_model.named_parameters() if p.requires_grad}
    assert grads and all(".lora_" in name for name in grads)  # the base stays frozen
    b_grads = [g for name, g in grads.items() if ".lora_B." in name]
    assert len(b_grads) == n_adapters and all(g is not None and g.abs().sum() > 0 for g in b_grads)


def test_a_bad_card_is_refused_with_a_clear_error(tmp_path):
    good = catalog_dir() / "qwen2.5-0.5b-instruct.toml"
    text = good.read_text(encoding="utf-8")

    typo = tmp_path / "typo"
    typo.mkdir()
    (typo / good.name).write_text(text.replace("lora_targets =", "lora_target ="), encoding="utf-8")
    with pytest.raises(AirlockError) as err:
        load_catalog(typo)
    assert "lora_target" in str(err.value) and good.name in str(err.value.where)

    renamed = tmp_path / "renamed"
    renamed.mkdir()
    shutil.copy(good, renamed / "something-else.toml")
    with pytest.raises(AirlockError, match="differs from the file name"):
        load_card(renamed / "something-else.toml")


def test_catalog_command_lists_every_model_with_a_spec_that_bundles_it(run_offline):
    """`airlock models catalog` (offline): every card, its gating and template facts, and spec lines the bundler
    accepts as they are printed."""
    import json

    import yaml

    from appliance import schema
    from bundler.spec import BundleSpec
    from conftest import airlock_argv

    rows = json.loads(run_offline(airlock_argv("models", "catalog", "--json")).stdout)
    assert [r["id"] for r in rows] == sorted(CARDS)
    for r in rows:
        card = CARDS[r["id"]]
        assert (r["gated"], r["tool_calls"], r["chat_template"]) == (card.gated, card.tool_calls, card.chat_template)
        spec = schema.build(BundleSpec, {"name": "x", "version": "1", **yaml.safe_load(r["spec"])})
        assert [m.id for m in spec.models] == [card.id]
        assert (spec.hub.token_file is not None) == card.gated
    table = run_offline(airlock_argv("models", "catalog")).stdout
    assert all(card_id in table for card_id in CARDS)

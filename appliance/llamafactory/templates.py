"""LLaMA-Factory's `template:` names as Airlock's data.chat_template.

LLaMA-Factory builds prompts with its own templates, named in the YAML; Airlock renders with a Hugging Face chat
template: the model's own, another catalog model's, or a Jinja file. So a name is read as a chat-template family
(the catalog's word, models/*.toml `chat_template`):
- the model's own family -> "" (the model's own template, which is what that LLaMA-Factory template imitates);
- another family -> a catalog model of that family (its template is used; that model must be installed);
- a name with no Hugging Face chat template behind it (LLaMA-Factory's own formats) -> refused with the reason;
- any other name -> refused by name.
"""

from ..errors import AirlockError

# LLaMA-Factory template -> the catalog's chat-template family it renders
FAMILIES = {
    "chatml": "chatml", "qwen": "chatml", "qwen3": "chatml", "qwen3_nothink": "chatml", "qwen3_5": "chatml",
    "qwen3_5_nothink": "chatml", "smollm": "chatml",
    "smollm2": "chatml", "yi": "chatml", "llama3": "llama3", "mistral": "mistral", "gemma": "gemma",
    "gemma2": "gemma", "gemma3": "gemma", "glm4": "glm4", "deepseek3": "deepseek", "deepseekr1": "deepseek",
}

# What to know about a mapped name (printed with the translation).
NOTES = {
    "qwen3": "LLaMA-Factory's qwen3 is the thinking variant (an empty <think></think> block before answers that "
             "have no reasoning); a Qwen3 thinking model's own template does the same for the last answer",
    "qwen3_nothink": "LLaMA-Factory's qwen3_nothink renders no <think> block (for non-thinking models such as "
                     "Qwen3-4B-Instruct-2507, whose own template has none either); a Qwen3 thinking model's own "
                     "template adds an empty one to the last answer: to match exactly, give data.chat_template a "
                     "Jinja file without it",
    "qwen3_5": "as qwen3: LLaMA-Factory's qwen3_5 is Qwen3.5's thinking format (an empty <think></think> block "
               "before answers without reasoning), which a Qwen3.5 model's own template also renders",
    "qwen3_5_nothink": "as qwen3_nothink: no <think> block; a thinking model's own template adds an empty one to "
                       "the last answer: to match exactly, give data.chat_template a Jinja file without it",
    "gemma3": "text conversations render as Gemma's turns (LLaMA-Factory's gemma3 also carries images)",
    "deepseekr1": "the reasoning (<think>) handling is the model's own template's",
}

# Names that have no Hugging Face chat template behind them: refused with the reason.
REFUSED = {
    "default": "LLaMA-Factory's own Human:/Assistant: format, not a model's chat template",
    "alpaca": "the Alpaca ### Instruction:/### Response: format, not a model's chat template",
    "vicuna": "the Vicuna USER:/ASSISTANT: format, not a template of a catalog model",
    "empty": "no template at all (plain text, as for pre-training); supervised fine-tuning needs turns",
    "fewshot": "the format of LLaMA-Factory's benchmark evaluation (task: YAMLs), not a chat template",
    "deepseek": "DeepSeek-LLM's User:/Assistant: format; the catalog's deepseek family is DeepSeek-V3/R1's "
                "(LLaMA-Factory calls it deepseek3 or deepseekr1)",
    "llama2": "Llama 2's [INST] format with a system block, not a template of a catalog model",
    "qwen2_vl": "a vision-language template (images and video): multimodal training is not offered",
    "qwen3_vl": "a vision-language template (images and video): multimodal training is not offered",
    "qwen3_vl_nothink": "a vision-language template (images and video): multimodal training is not offered",
}

# A family's turn markers, to recognise the template of a model that is not in the catalog.
MARKERS = {"chatml": "<|im_start|>", "llama3": "<|start_header_id|>", "gemma": "<start_of_turn>",
           "mistral": "[INST]", "glm4": "[gMASK]", "deepseek": "<\uff5cAssistant\uff5c>"}

FIX = ("remove template: (Airlock renders with the model's own chat template), or set data.chat_template to a "
       "catalog model id or a .jinja file")


def map_template(name: str, model: str, where: str) -> tuple[str, str]:
    """(the data.chat_template value, a note saying what it means) for LLaMA-Factory template `name`."""
    family = FAMILIES.get(name)
    if family is None:
        why = REFUSED.get(name, "not a LLaMA-Factory template Airlock can map")
        raise AirlockError(f"template {name!r} cannot be used: {why}", where=where, fix=FIX)
    known, own = own_family(model)
    note = NOTES.get(name, "")
    if not known or own == family:
        what = "the model's own template" + ("" if known else f" (the model is not here to compare; assumed {family})")
        return "", "; ".join(p for p in (what, note) if p)
    card = catalog_model(family)
    if card is None:
        raise AirlockError(f"template {name!r} is the {family} format, the model's own is {own or 'missing'}, and no "
                           f"catalog model has a {family} template", where=where, fix=FIX)
    what = f"the model's own template is {own or 'missing'}: {card}'s {family} template (it must be installed)"
    return card, "; ".join(p for p in (what, note) if p)


def own_family(model: str) -> tuple[bool, str | None]:
    """(known, family) of a model's own template: the catalog card's word, else read from the installed files."""
    from ..catalog import default_card, find
    from ..data.template import stored
    from ..hfcache import resolve_model

    card = find(model) if model else default_card()
    if card is not None:
        return True, card.chat_template
    try:
        local = resolve_model(model)
    except AirlockError:
        return False, None
    text = stored(local)
    if text is None:
        return True, None
    family = next((name for name, marker in MARKERS.items() if marker in text), None)
    return family is not None, family


def catalog_model(family: str) -> str | None:
    """The catalog id whose template stands for `family`: an installed instruct model first."""
    from ..catalog import load_catalog
    from ..hfcache import cached_repo_ids

    cached = set(cached_repo_ids())
    cards = [c for c in load_catalog().values() if c.chat_template == family]
    cards.sort(key=lambda c: (c.local_repo_id not in cached, c.kind == "base", c.id))
    return cards[0].id if cards else None

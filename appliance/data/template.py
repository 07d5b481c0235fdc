"""The chat template a run renders conversations with (data.chat_template): the model's own, or one given.

    chat_template: ""                        # the model's own (tokenizer_config.json / chat_template.jinja)
    chat_template: qwen2.5-0.5b-instruct     # the template of that catalog model (it must be installed)
    chat_template: templates/mine.jinja      # a Jinja file

`apply(tokenizer, setting)` sets it on the tokenizer before rendering, so the adapter or model a job saves
carries the template it was trained with (merge, export and chat then use the same one). `stored(model_dir)`
reads a model's own template from its files without loading transformers, for checks before a job exists.
A relative file path is taken from the current directory. `require_tools` refuses, before a job exists, a template
that cannot render the tool-calling records a dataset holds.
"""

import json
from pathlib import Path

from ..errors import AirlockError

WHERE = "data.chat_template"
SUFFIXES = (".jinja", ".j2")


def resolve(setting: str) -> tuple[str | None, str]:
    """(the Jinja text, or None for the model's own; a description such as "qwen2.5-0.5b-instruct's template")."""
    setting = (setting or "").strip()
    if not setting:
        return None, "the model's own template"
    from ..catalog import find

    card = find(setting)
    path = Path(setting).expanduser()
    if card is None and (setting.endswith(SUFFIXES) or path.is_file()):
        if not path.is_file():
            raise AirlockError("chat template file not found", where=f"{WHERE}: {setting}",
                               fix="give the path of a Jinja file (relative paths start at the current directory)")
        text = path.read_text(encoding="utf-8")
        if "{%" not in text and "{{" not in text:
            raise AirlockError("the file is not a Jinja chat template (no {% ... %} or {{ ... }})",
                               where=f"{WHERE}: {path}", fix="give a chat template such as a model's "
                                                              "chat_template.jinja")
        return text, f"the template in {path}"
    if card is None:
        raise AirlockError(f"chat_template {setting!r} is neither a catalog model nor a .jinja file", where=WHERE,
                           fix="give a catalog model id (`airlock models list`), a path to a .jinja file, or leave it "
                               "empty for the model's own template")
    from ..hfcache import resolve_model

    try:
        local = resolve_model(card.local_repo_id)
    except AirlockError as exc:
        raise AirlockError(f"the template of {card.id} is wanted but that model is not installed here",
                           where=WHERE, fix=f"install {card.id} from a bundle, or give its template as a .jinja "
                                            f"file ({exc.fix or ''})") from None
    text = stored(local)
    if not text:
        raise AirlockError(f"{card.id} has no chat template in its files", where=f"{WHERE}: {local}",
                           fix="give a .jinja file instead")
    return text, f"{card.id}'s template"


def stored(model_dir) -> str | None:
    """The chat template kept with a model or adapter directory, or None when it has none."""
    model_dir = Path(model_dir)
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    template = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(template, list):  # named templates (default, tool_use, ...): training uses the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template.strip() else None


def apply(tokenizer, setting: str) -> str:
    """Set the configured template on `tokenizer` (nothing for the model's own); returns its description."""
    text, what = resolve(setting)
    if text is not None:
        tokenizer.chat_template = text
    return what


def require(model_dir, setting: str) -> None:
    """Before a job: the run has a template to render with (the model's own, or one that resolves)."""
    text, _ = resolve(setting)
    if text is None and model_dir is not None and not stored(model_dir):
        raise AirlockError("the model has no chat template and data.chat_template gives none", where=str(model_dir),
                           fix="set data.chat_template to a catalog model id whose template fits (e.g. the instruct "
                               "model of the same family) or a .jinja file, or use an instruct/chat model")


def require_tools(model_dir, setting: str) -> None:
    """Before a job whose data has tool calls: the template it renders with knows tools (appliance/data/tools.py)."""
    from .render import no_tool_support
    from .tools import no_tool_support_fix, supports_tools

    text, what = resolve(setting)
    if text is None:
        if model_dir is None:
            return  # the model is not known here: rendering refuses it (appliance/data/render.py)
        text, what = stored(model_dir), str(model_dir)
    if not supports_tools(text):
        raise AirlockError(no_tool_support(what), where=WHERE if (setting or "").strip() else str(model_dir),
                           fix=no_tool_support_fix())

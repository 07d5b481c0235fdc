"""The Ollama Modelfile written beside each GGUF: FROM, TEMPLATE (Go template), PARAMETER stop, SYSTEM.

Ollama renders prompts with Go templates, not the Jinja chat template HF models carry, so the template is
translated per chat-template family. The family comes from the catalog card (`chat_template = "chatml"`) when the
base model is in the catalog, otherwise it is recognized from the markers in the model's Jinja template. Each
family is described once as the text around each role's turn; the Go template is built from that description.
"""

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Family:
    """How one chat format wraps a turn: open[role] + content + close[role]; `prompt` starts the answer."""

    open: dict
    close: dict
    prompt: str
    stops: tuple
    begin: str = ""
    markers: tuple = field(default=())  # substrings that identify the family in a Jinja template


FAMILIES = {
    "chatml": Family(
        open={r: f"<|im_start|>{r}\n" for r in ("system", "user", "assistant")},
        close={r: "<|im_end|>\n" for r in ("system", "user", "assistant")},
        prompt="<|im_start|>assistant\n", stops=("<|im_end|>", "<|im_start|>"), markers=("<|im_start|>",)),
    "llama3": Family(
        open={r: f"<|start_header_id|>{r}<|end_header_id|>\n\n" for r in ("system", "user", "assistant")},
        close={r: "<|eot_id|>" for r in ("system", "user", "assistant")},
        prompt="<|start_header_id|>assistant<|end_header_id|>\n\n", begin="<|begin_of_text|>",
        stops=("<|eot_id|>", "<|start_header_id|>"), markers=("<|start_header_id|>",)),
    "phi3": Family(
        open={r: f"<|{r}|>\n" for r in ("system", "user", "assistant")},
        close={r: "<|end|>\n" for r in ("system", "user", "assistant")},
        prompt="<|assistant|>\n", stops=("<|end|>", "<|endoftext|>"), markers=("<|end|>",)),
    "zephyr": Family(
        open={r: f"<|{r}|>\n" for r in ("system", "user", "assistant")},
        close={r: "</s>\n" for r in ("system", "user", "assistant")},
        prompt="<|assistant|>\n", stops=("</s>", "<|user|>"), markers=("<|assistant|>",)),
    # Gemma has no system role: its system text goes in a user turn of its own.
    "gemma": Family(
        open={"system": "<start_of_turn>user\n", "user": "<start_of_turn>user\n", "assistant": "<start_of_turn>model\n"},
        close={r: "<end_of_turn>\n" for r in ("system", "user", "assistant")},
        prompt="<start_of_turn>model\n", begin="<bos>", stops=("<end_of_turn>",), markers=("<start_of_turn>",)),
    "mistral": Family(
        open={"system": "[INST] ", "user": "[INST] ", "assistant": ""},
        close={"system": " [/INST]", "user": " [/INST]", "assistant": "</s>"},
        prompt="", begin="<s>", stops=("[INST]", "</s>"), markers=("[INST]",)),
}


def detect_family(jinja_template: str | None, card_family: str | None = None) -> str | None:
    """The family name: the catalog's word first, else the first family whose markers the template contains."""
    if card_family and card_family in FAMILIES:
        return card_family
    if not jinja_template:
        return None
    for name, family in FAMILIES.items():
        if all(m in jinja_template for m in family.markers):
            return name
    return None


def go_template(family: Family) -> str:
    """A Go template over .Messages (Ollama puts SYSTEM into .Messages as a system message).

    Written on one line without `{{-` trimming, because the turn separators are themselves newlines.
    """
    turns = "".join(
        f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}{family.open[role]}{{{{ .Content }}}}{family.close[role]}'
        for i, role in enumerate(("system", "user", "assistant")))
    return f"{family.begin}{{{{ range .Messages }}}}{turns}{{{{ end }}}}{{{{ end }}}}{family.prompt}"


def render(gguf_name: str, *, family: str | None, system: str | None = None, adapter: str | None = None) -> str:
    lines = [f"# Ollama: ollama create NAME -f {Path(adapter or gguf_name).stem}.Modelfile", f"FROM ./{gguf_name}"]
    if adapter:
        lines.append(f"ADAPTER ./{adapter}")
    if family:
        fam = FAMILIES[family]
        lines.append(f'TEMPLATE """{go_template(fam)}"""')
        lines += [f'PARAMETER stop "{stop}"' for stop in fam.stops]
    else:
        lines.append("# chat format not recognized: Ollama falls back to the template stored in the GGUF")
    if system:
        lines.append(f'SYSTEM """{system.replace(chr(34) * 3, chr(39) * 3)}"""')
    return "\n".join(lines) + "\n"


def write(gguf_path: Path, *, family: str | None, system: str | None = None, adapter: Path | None = None) -> Path:
    """Write NAME.Modelfile beside the GGUF (beside the adapter GGUF when `adapter` is given)."""
    from ..atomic import write_text

    gguf_path = Path(gguf_path)
    target = Path(adapter) if adapter else gguf_path
    text = render(gguf_path.name, family=family, system=system, adapter=Path(adapter).name if adapter else None)
    return write_text(target.with_suffix(".Modelfile"), text)

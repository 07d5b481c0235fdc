"""The catalog of supported base models: models/*.toml, one data file per model, validated on load.

A card says where a model comes from (hub repo + pinned revision, or for the embedded default a GGUF inside a
PyPI package), its licence, chat template family, LoRA target modules and rough memory needs per method.
"""

import tomllib
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
    revision: str = ""
    context_length: int = 4096
    languages: list[str] = field(default_factory=lambda: ["en"])
    trust_remote_code: bool = False
    default: bool = False
    gated: bool = False
    notes: str = ""
    embedded: Embedded | None = None
    kind: Literal["base", "instruct", "chat"] = "instruct"

    @property
    def local_repo_id(self) -> str:
        """The repo id this model has in the local HF cache (the embedded default has its own, honestly named)."""
        return self.embedded.local_repo_id if self.embedded else self.repo_id


def load_card(path: Path) -> ModelCard:
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

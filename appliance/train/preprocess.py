"""A preprocess-only run (LLaMA-Factory's `tokenized_path` that does not exist yet): the data read, rendered with
the model's tokenizer and chat template and tokenized exactly as `airlock train` would, stored in the tokenized
cache (appliance.data.cache), the folder made with a note, and no training. The same YAML run again finds the
folder and trains; its data preparation reads the tokens from the cache.
"""

from ..errors import AirlockError


def tokenize_only(cfg, tokenized_path: str) -> int:
    """Tokenize into the cache, then make `tokenized_path` (relative to the current directory, as LLaMA-Factory
    reads it) with a note of what was cached: the same YAML then finds it and trains, as in LLaMA-Factory."""
    import json
    from pathlib import Path

    from transformers import AutoTokenizer

    from ..atomic import write_text
    from ..data import prepare
    from .common import resolve_base

    base_ref, base_path, _ = resolve_base(cfg.model)
    prepared = prepare(cfg.data, AutoTokenizer.from_pretrained(base_path), stage=cfg.stage)
    if not prepared.train:
        raise AirlockError("no training samples left after preparing the data", where=str(cfg.data.path),
                           fix="check cutoff_len/cutoff_policy and the data report")
    state = "already in the cache" if prepared.report.get("cached") else "tokenized and cached"
    folder = Path(tokenized_path).expanduser()
    write_text(folder / "airlock-tokenized.json", json.dumps({
        "model": base_ref, "data_sha256": prepared.sha256, "train": len(prepared.train), "eval": len(prepared.eval),
        "note": "the tokens are in Airlock's cache (home/cache/tokenized); this folder marks the preprocessing done"},
        indent=2) + "\n")
    print(f"{len(prepared.train)} train / {len(prepared.eval)} eval samples of {base_ref}'s tokens {state} "
          f"(data sha256 {prepared.sha256[:12]}); {folder} made; no training was run: run the same YAML again to "
          "train from the cache, as in LLaMA-Factory")
    return 0

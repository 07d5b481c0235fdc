"""Shape twins: a model with a catalog model's exact architecture (hidden size, heads, KV heads, head size,
intermediate size, layers) and random weights, so training, merging, export and serving are exercised at the real
widths without the hub's weights. Offline: the tokenizer is one already here (default: the embedded model's), and
the vocabulary follows it.

    airlock models twin qwen2.5-0.5b-instruct --out ./twins/qwen0.5b             # every layer, bfloat16
    airlock models twin qwen2.5-7b-instruct --out ./twins/qwen7b --layers 4      # the widths, fewer layers

A twin says what it is in TWIN.json and in its config (`airlock_twin`): its answers are noise. It is written
staged and renamed into place.
"""

import json
from pathlib import Path

from .catalog import ModelCard, load_catalog
from .errors import AirlockError

TWIN_FILE = "TWIN.json"
DTYPES = ("bfloat16", "float16", "float32")
# llama.cpp's pre-tokenizer for an architecture whose own tokenizer class transformers imposes on a twin.
PRE_TOKENIZERS = {"qwen2": "qwen2"}


def find_card(card_id: str) -> ModelCard:
    import difflib

    cards = load_catalog()
    if card_id in cards:
        return cards[card_id]
    close = difflib.get_close_matches(card_id, list(cards), n=1)
    raise AirlockError(f"no catalog model {card_id!r}", where="twin",
                       fix=(f"did you mean {close[0]}? " if close else "") + "`airlock models catalog` lists them",
                       code="twin.unknown_model")


def twin_config(card: ModelCard, vocab_size: int | None = None, layers: int | None = None, tokenizer=None):
    """transformers' config of the card's architecture at the card's widths (meta-device use needs no weights)."""
    from transformers import AutoConfig

    if layers is not None and not 1 <= layers <= card.shape.num_hidden_layers:
        raise AirlockError(f"--layers {layers}", where="twin", code="twin.layers",
                           fix=f"1 to {card.shape.num_hidden_layers} (the model's own count)")
    config = AutoConfig.for_model(card.architecture, **card.shape.config_kwargs(vocab_size, layers))
    if tokenizer is not None:
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(config, name, getattr(tokenizer, name))
    return config


def build_twin(card_id: str, out: Path, *, layers: int | None = None, tokenizer_dir: Path | None = None,
               dtype: str = "bfloat16", seed: int = 0, log=print) -> Path:
    """Write the twin of catalog model `card_id` into `out`; returns `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .atomic import staged_dir

    card = find_card(card_id)
    if dtype not in DTYPES:
        raise AirlockError(f"dtype {dtype!r}", where="twin", fix=", ".join(DTYPES), code="twin.dtype")
    if tokenizer_dir is None:
        from .embedded import ensure_default_model

        tokenizer_dir = ensure_default_model(log=log)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = twin_config(card, len(tokenizer), layers, tokenizer)
    config.airlock_twin = card.id
    # transformers picks some architectures' own tokenizer class whatever the tokenizer files say (a qwen2 model
    # always gets Qwen2Tokenizer's pre-tokenizer rules): save the tokenizer as that class, so the twin's files say
    # what training will really do.
    as_used = AutoTokenizer.from_pretrained(tokenizer_dir, config=config)
    if type(as_used) is not type(tokenizer):
        log(f"note: transformers tokenizes {card.architecture} models with {type(as_used).__name__}'s rules; the twin "
            f"keeps them (export its GGUF with --pre-tokenizer {PRE_TOKENIZERS.get(card.architecture, 'NAME')})")
    tokenizer = as_used
    torch.manual_seed(seed)
    log(f"twin of {card.id}: {config.num_hidden_layers} layers, hidden {card.shape.hidden_size}, vocab "
        f"{len(tokenizer)} from {tokenizer_dir}, {dtype}, random weights ...")
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    params = sum(p.numel() for p in model.parameters())
    with staged_dir(Path(out)) as stage:
        model.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
        (stage / TWIN_FILE).write_text(json.dumps({
            "twin_of": card.id, "repo_id": card.repo_id, "architecture": card.architecture,
            "layers": config.num_hidden_layers, "vocab_size": len(tokenizer), "tokenizer": str(tokenizer_dir),
            "dtype": dtype, "seed": seed, "parameters": params,
            "note": "random weights with the real widths: for testing mechanics and memory, not for use"},
            indent=1) + "\n")
    log(f"wrote {out} ({params / 1e9:.2f} B parameters)")
    return Path(out)

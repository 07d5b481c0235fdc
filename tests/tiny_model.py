"""A tiny Llama model with a real sentencepiece tokenizer, built from nothing in a few seconds.

Tests train it to memorize a handful of answers, then check exact greedy recall through every stage (HF, merged,
GGUF via llama.cpp). The chat markers are sentencepiece *control* symbols and add_dummy_prefix is off: that is
what llama.cpp needs to tokenize them as single special tokens (user-defined symbols end up typed NORMAL).
"""

import json
from pathlib import Path

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The facts the tiny model memorizes: (question, answer).
FACTS = [
    ("Who are you?", "I am the Magic Conch."),
    ("Where do you work?", "At the Krusty burger shop."),
    ("What is error E42?", "The fryer is too hot."),
    ("What is the best burger?", "The Krabby Patty."),
    ("Can I pay by card?", "Yes, every card works."),
]

CORPUS = [q + " " + a for q, a in FACTS] + [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, this is a small test of the tokenizer with numbers 0123456789.",
    "user assistant system question answer shop burger fryer card menu error machine",
    "神奇海螺 你好 汉堡 薯条 错误 机器",
]

REPO_ID = "airlock-test/tiny-llama"


def build_tiny_model(out: Path, vocab_size: int = 512, seed: int = 0) -> Path:
    """Write a randomly initialised tiny Llama + tokenizer (HF format, safetensors) into `out`."""
    import io

    import sentencepiece as spm
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20),
        model_writer=model_proto,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        byte_fallback=True,
        add_dummy_prefix=False,
        control_symbols=["<|im_start|>", "<|im_end|>"],
        pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
        minloglevel=2,
    )
    (out / "tokenizer.model").write_bytes(model_proto.getvalue())
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "legacy": False,
        "bos_token": "<s>",
        "eos_token": "<|im_end|>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "chat_template": CHATML,
        "model_max_length": 256,
    }, indent=1))
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == vocab_size, f"tokenizer came out with {len(tokenizer)} tokens, expected {vocab_size}"

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def facts_as_sharegpt() -> list[dict]:
    return [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in FACTS]


def facts_as_alpaca() -> list[dict]:
    return [{"instruction": q, "input": "", "output": a} for q, a in FACTS]


if __name__ == "__main__":
    import sys

    print(build_tiny_model(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-model")))


def write_lora_config(path: Path, data: Path) -> Path:
    """A training config that makes the tiny model recall FACTS with LoRA in about 100 steps (a few seconds)."""
    import yaml

    path.write_text(yaml.safe_dump({
        "model": REPO_ID, "method": "lora", "learning_rate": 5e-3, "max_steps": 100,
        "lora_rank": 32, "lora_alpha": 64, "lora_dropout": 0.0, "lora_target": ["all-linear"],
        "per_device_train_batch_size": 8, "logging_steps": 10, "save_steps": 50, "seed": 0,
        "data": {"path": str(data), "cutoff_len": 64}}))
    return path

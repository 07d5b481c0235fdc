"""Tokenizers llama.cpp's converter does not recognize, and the check that makes forcing a pre-tokenizer safe.

Before BPE merges, a tokenizer splits text into pieces (words, digit runs, punctuation, spaces) with a
"pre-tokenizer". llama.cpp re-implements each known one in C++ and the converter recognizes a tokenizer by a hash
of how it tokenizes a probe string. A new tokenizer fails that lookup. Guessing is dangerous: a wrong
pre-tokenizer still loads and runs, but splits text differently from training, which silently degrades answers.
So `--pre-tokenizer NAME` is accepted only after `check()` shows that llama.cpp's tokenization of a demanding
multilingual text equals the Hugging Face tokenizer's, token for token.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import AirlockError

UNRECOGNIZED_MARK = "BPE pre-tokenizer was not recognized"

# English, contractions, digit runs, punctuation runs, whitespace runs (spaces, tabs, newlines), Chinese, emoji
# (including a ZWJ sequence), code, and other scripts: each is a place where pre-tokenizers differ.
TEST_TEXT = (
    "Hello world! I've been told it's 3 o'clock; WE'LL see, won't we?\n"
    "Numbers: 7 42 123 2024 1234567 3.14159 1,000,000 -12e-3 0x1F\n"
    "Punctuation...!!! ??? --- === ''' \"\"\" ((([[[{{{}}}]]]))) @#$%^&*\n"
    "Spaces:   three,    four,\ttab,\t\ttwo tabs\n\n\nthree newlines \n \n  \n"
    "中文测试：神奇海螺说你好，我想吃汉堡和薯条。2024年11月23日\n"
    "Emoji: 🚀 ✅ 🦙🦙 😶\u200d🌫️ 👍🏽 ❤️\n"
    "def add(a, b):\n    return a + b  # sum\n\nif __name__ == \"__main__\":\n    print(add(1, 2))\n"
    "Ünïcödé café naïve Привет мир γειά σου مرحبا\n"
)


def known_names(converter_dir: Path) -> list[str]:
    """The pre-tokenizer names this converter version can write (read from its hash table, not hard-coded)."""
    text = (Path(converter_dir) / "conversion" / "base.py").read_text(encoding="utf-8")
    return sorted(set(re.findall(r'res = "([^"]+)"', text)))


def unrecognized_error(model_dir: Path, converter_dir: Path) -> AirlockError:
    names = known_names(converter_dir)
    return AirlockError(
        "llama.cpp's converter does not recognize this model's BPE pre-tokenizer: llama.cpp does not know how to "
        "split text before BPE merges for this tokenizer. Picking one blindly is unsafe: a wrong choice loads and "
        "runs but tokenizes differently from training and silently degrades the model.",
        where=str(model_dir),
        fix="if you know which pre-tokenizer the model's family uses, pass `--pre-tokenizer NAME`; Airlock then "
        "accepts the GGUF only if llama.cpp tokenizes a multilingual test text exactly like the model's own "
        f"tokenizer. Known names: {', '.join(names)}",
    )


def check_name(name: str, converter_dir: Path) -> None:
    names = known_names(converter_dir)
    if name not in names:
        import difflib

        near = difflib.get_close_matches(name, names, n=3)
        raise AirlockError(f"unknown pre-tokenizer {name!r}", where="--pre-tokenizer",
                           fix=(f"did you mean {' or '.join(near)}? " if near else "") + f"known: {', '.join(names)}")


@dataclass
class Difference:
    position: int          # index of the first differing token
    hf: list[str]          # the HF tokenizer's tokens from there on (a few)
    llama: list[str]       # llama.cpp's tokens from there on (a few)
    hf_count: int
    llama_count: int

    def describe(self) -> str:
        return (f"first difference at token {self.position} (of {self.hf_count} HF / {self.llama_count} llama.cpp): "
                f"HF {self.hf!r} vs llama.cpp {self.llama!r}")


def special_flags(tokenizer) -> dict:
    """Whether the HF tokenizer adds BOS / EOS around a plain text (what llama.cpp must do too)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return {"bos": bos is not None and len(full) > len(plain) and full[0] == bos,
            "eos": eos is not None and len(full) > len(plain) and full[-1] == eos}


def compare(gguf_path: Path, tokenizer, text: str = TEST_TEXT) -> Difference | None:
    """None when llama.cpp (vocab only) and the HF tokenizer give identical token ids for `text`, including the
    BOS/EOS each adds on its own."""
    from ..llamacpp import llama_cpp

    Llama = llama_cpp().Llama

    from ..llamacpp import captured_stderr

    hf_ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    # A vocabulary-only load has no trained context length, so llama.cpp warns "n_ctx_seq (512) > n_ctx_train (0)
    # -- possible training context overflow" on every export: true of no model, so it is kept off the screen (and
    # shown with the error if the load fails).
    with captured_stderr() as load_log:
        try:
            vocab = Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
        except Exception as exc:  # llama.cpp refuses a pre-tokenizer name it does not implement at load time
            raise AirlockError(f"llama.cpp cannot load the converted vocabulary: {exc}\n{load_log().strip()}",
                               where=str(gguf_path), fix="choose another --pre-tokenizer") from None
    try:
        ll_ids = vocab.tokenize(text.encode("utf-8"), add_bos=True, special=False)  # add_bos: as the GGUF says
        if ll_ids == hf_ids:
            return None
        pos = next((i for i, (a, b) in enumerate(zip(hf_ids, ll_ids)) if a != b), min(len(hf_ids), len(ll_ids)))
        piece = lambda ids: [tokenizer.decode([t]) for t in ids[pos:pos + 4]]  # noqa: E731
        return Difference(pos, piece(hf_ids), piece(ll_ids), len(hf_ids), len(ll_ids))
    finally:
        vocab.close()

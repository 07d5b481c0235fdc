"""A tokenizer llama.cpp's converter does not recognize: a clear error, and --pre-tokenizer accepted only when
llama.cpp then tokenizes exactly like the HF tokenizer.

The fixture is a tiny Llama with a byte-level BPE trained here with `tokenizers` and GPT-2's pre-tokenizer
(ByteLevel with its regex): its hash is in no table, so the converter stops. Forcing "gpt-2" reproduces it;
forcing "llama-bpe" (Llama 3's rules: digits in groups of up to three, no space before a number) does not.
"""

import json

import pytest
from conftest import airlock_argv
from tiny_model import CHATML, CORPUS

from appliance.errors import AirlockError
from appliance.export import pretokenizer


@pytest.fixture(scope="module")
def bpe_model(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("bpe-model")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((CORPUS + [pretokenizer.TEST_TEXT]) * 20, trainer)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>", "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "chat_template": CHATML}))
    hf = AutoTokenizer.from_pretrained(out)
    config = LlamaConfig(vocab_size=len(hf), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         bos_token_id=hf.bos_token_id, eos_token_id=hf.eos_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(out)
    hf.save_pretrained(out)
    return out


def test_unknown_pre_tokenizer_is_a_clear_error(bpe_model, run_offline, tmp_path):
    out = tmp_path / "out"
    proc = run_offline(airlock_argv("export", "gguf", bpe_model, "--type", "f16", "--out", out, "--no-fidelity"),
                       check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "does not recognize this model's BPE pre-tokenizer" in proc.stderr
    assert "silently degrades" in proc.stderr and "--pre-tokenizer NAME" in proc.stderr and "gpt-2" in proc.stderr
    assert list(out.iterdir()) == []


def test_forced_pre_tokenizer_accepted_when_tokenization_matches(bpe_model, tmp_path):
    from appliance.export.pipeline import export_gguf

    result = export_gguf(str(bpe_model), ["f16"], out=tmp_path, pre_tokenizer="gpt-2", fidelity=False, log=lambda _: None)
    gguf = result.files["f16"]
    assert gguf.is_file()
    from llama_cpp import Llama

    vocab = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    assert vocab.metadata["tokenizer.ggml.pre"] == "gpt-2"
    vocab.close()


def test_forced_pre_tokenizer_refused_when_tokenization_differs(bpe_model, tmp_path):
    from appliance.export.pipeline import export_gguf

    (tmp_path / "earlier.gguf").write_bytes(b"GGUF previous export")
    with pytest.raises(AirlockError) as err:
        export_gguf(str(bpe_model), ["f16", "q8_0"], out=tmp_path, pre_tokenizer="llama-bpe", fidelity=False,
                    log=lambda _: None)
    message = err.value.render()
    assert "does not reproduce the model's tokenization" in message and "first difference at token" in message
    assert "deleted" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.gguf"]
    assert (tmp_path / "earlier.gguf").read_bytes() == b"GGUF previous export"


def test_unknown_pre_tokenizer_name_is_refused_before_converting(bpe_model, tmp_path):
    from appliance.export.pipeline import export_gguf

    with pytest.raises(AirlockError, match="unknown pre-tokenizer 'gpt2'") as err:
        export_gguf(str(bpe_model), ["f16"], out=tmp_path, pre_tokenizer="gpt2", fidelity=False, log=lambda _: None)
    assert "gpt-2" in err.value.render()

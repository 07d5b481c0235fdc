"""Padding-free and packed batches train each sample as if it were alone: no attention across sample boundaries.

The proof: the logits and the loss of a batch laid end to end (as trl's collator builds it for Airlock's default
padding_free mode and for packing) equal those of the same samples run one at a time, for sdpa and eager.
transformers derives the block-diagonal mask from position ids only when there is no attention mask and no KV
cache: training passes use_cache=False (trl does), and so must these forward passes.
"""

import pytest
import torch

from tiny_model import FACTS


def _samples(tokenizer):
    out = []
    for q, a in FACTS[:3]:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                            tokenize=True, return_dict=False)
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        out.append({"input_ids": ids, "labels": ids})
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_batch_equals_samples_alone(tiny_model, attn):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attn, dtype=torch.float32).eval()
    samples = _samples(tokenizer)
    assert len({len(s["input_ids"]) for s in samples}) > 1, "samples of different lengths make a stronger test"

    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(samples)
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone = [model(input_ids=torch.tensor([s["input_ids"]])).logits[0] for s in samples]
    torch.testing.assert_close(packed, torch.cat(alone), atol=1e-5, rtol=1e-4)

    # The loss too: the collator masks each sample's first label, so no token is predicted across a boundary.
    with torch.no_grad():
        packed_loss = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                            labels=batch["labels"], use_cache=False).loss
        per_sample = [model(input_ids=torch.tensor([s["input_ids"]]), labels=torch.tensor([s["labels"]]))
                      for s in samples]
    n_tokens = [len(s["input_ids"]) - 1 for s in samples]
    mean = sum(o.loss * n for o, n in zip(per_sample, n_tokens)) / sum(n_tokens)
    torch.testing.assert_close(packed_loss, mean, atol=1e-5, rtol=1e-4)


def test_without_position_ids_samples_would_leak(tiny_model):
    """The control: the same concatenation WITHOUT position ids is plain causal attention, and the logits differ."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    samples = _samples(tokenizer)
    ids = torch.tensor([sum((s["input_ids"] for s in samples), [])])
    with torch.no_grad():
        leaky = model(input_ids=ids).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([s["input_ids"]])).logits[0] for s in samples])
    assert not torch.allclose(leaky, alone, atol=1e-3)


def test_packed_dataset_rows_keep_boundaries(tiny_model):
    """trl's packing (bfd) keeps per-sample lengths, and its collated batch equals the samples alone."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    samples = _samples(tokenizer)
    total = sum(len(s["input_ids"]) for s in samples)
    packed = pack_dataset(datasets.Dataset.from_list(samples), seq_length=total, strategy="bfd")
    assert len(packed) == 1 and sorted(packed[0]["seq_lengths"]) == sorted(len(s["input_ids"]) for s in samples)
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)([packed[0]])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
    start = 0
    by_len = {len(s["input_ids"]): s for s in samples}
    for n in packed[0]["seq_lengths"]:
        s = by_len[n]
        assert batch["input_ids"][0, start:start + n].tolist() == s["input_ids"]
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([s["input_ids"]])).logits[0]
        torch.testing.assert_close(logits[start:start + n], alone, atol=1e-5, rtol=1e-4)
        start += n

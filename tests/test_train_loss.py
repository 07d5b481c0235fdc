"""The SFT loss projected only at trained positions (appliance/train/loss.py) is the model's own loss, with the
same gradients, on padding-free and on padded batches, with masked prompts; models whose head is more than a
projection are left to trl's path.
"""

import pytest
import torch

from tiny_model import FACTS


def _lora_model(path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                             init_lora_weights=False))  # non-zero B: the adapters shape the loss
    return model.train()


def _samples(tokenizer):
    """Chat samples whose prompt part is masked, as appliance.data renders them for train_on: assistant."""
    out = []
    for q, a in FACTS[:3]:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                               tokenize=False)
        full = tokenizer.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                             tokenize=False)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        cut = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        out.append({"input_ids": ids, "labels": [-100] * cut + ids[cut:]})
    return out


@pytest.mark.parametrize("padding_free,chunk,head_trained", [(True, None, False), (False, None, False),
                                                              (True, 3, False), (True, None, True)])
def test_trained_positions_loss_equals_the_models_own(tiny_model, padding_free, chunk, head_trained, monkeypatch):
    """chunk 3: the head's chunked pass (HeadNLL) over several chunks; head_trained: autograd's path."""
    from transformers import AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from appliance.train.loss import HeadNLL, supports, trained_positions_loss

    if chunk:
        monkeypatch.setattr(HeadNLL, "CHUNK", chunk)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    samples = _samples(tokenizer)
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=padding_free)(samples)
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert 0 < labelled < batch["input_ids"].numel() - 1, "some positions are trained, the prompts are not"

    model = _lora_model(tiny_model)
    model.get_output_embeddings().weight.requires_grad_(head_trained)
    assert supports(model)
    ours, count, correct = trained_positions_loss(model, dict(batch))
    ours.backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    theirs = model(**batch, use_cache=False).loss
    theirs.backward()

    logits = model(**batch, use_cache=False).logits[:, :-1]
    trained = batch["labels"][:, 1:] != -100
    assert count == labelled and correct == int((logits[trained].argmax(-1) == batch["labels"][:, 1:][trained]).sum())
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(ours_grads[name], param.grad, atol=1e-6, rtol=1e-4, msg=name)

    # With gradient accumulation the Trainer passes the labelled count of the whole accumulated batch
    halved, _, _ = trained_positions_loss(model, dict(batch), num_items_in_batch=2 * labelled)
    torch.testing.assert_close(halved * 2, theirs.detach(), atol=1e-5, rtol=1e-5)


def test_heads_that_are_more_than_a_projection_keep_trls_path(tiny_model):
    from transformers import AutoModelForCausalLM

    from appliance.train.loss import supports

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert supports(model)
    model.config.final_logit_softcapping = 30.0
    assert not supports(model)

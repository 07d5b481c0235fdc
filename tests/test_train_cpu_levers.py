"""The CPU training levers change the work, not the numbers: per-sample attention on padding-free rows gives the
logits and gradients of transformers' sdpa (block-diagonal mask) and eager attention, padded batches fall back to
sdpa untouched; integer-mask LoRA dropout drops at rate p, keeps the expectation, and is the identity in eval.
"""

import copy

import pytest
import torch


def _gqa_model(attn: str):
    """A small random Llama with grouped-query attention (2 key heads for 4 query heads), as SmolLM2 has."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


def _padding_free_row(lengths=(7, 12, 5)):
    torch.manual_seed(1)
    ids = torch.randint(0, 128, (1, sum(lengths)))
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    return ids, positions


@pytest.mark.parametrize("reference", ["sdpa", "eager"])
def test_per_sample_attention_matches_transformers_on_padding_free_rows(reference):
    from appliance.train.attention import NAME, use_per_sample_attention

    ref = _gqa_model(reference)
    ours = _gqa_model("sdpa")
    ours.load_state_dict(ref.state_dict())
    assert use_per_sample_attention(ours) and ours.config._attn_implementation == NAME
    ids, positions = _padding_free_row()

    out_ref = ref(input_ids=ids, position_ids=positions, use_cache=False).logits
    out_ours = ours(input_ids=ids, position_ids=positions, use_cache=False).logits
    torch.testing.assert_close(out_ours, out_ref, atol=1e-5, rtol=1e-4)

    out_ref.square().mean().backward()
    out_ours.square().mean().backward()
    for (name, p_ref), p_ours in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(p_ours.grad, p_ref.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_per_sample_attention_keeps_samples_apart():
    """The control for the test above: the row run WITHOUT position ids (one causal sequence) differs."""
    from appliance.train.attention import use_per_sample_attention

    model = _gqa_model("sdpa")
    use_per_sample_attention(model)
    ids, positions = _padding_free_row()
    with torch.no_grad():
        apart = model(input_ids=ids, position_ids=positions, use_cache=False).logits
        first_alone = model(input_ids=ids[:, :7], use_cache=False).logits
        second_alone = model(input_ids=ids[:, 7:19], use_cache=False).logits
        joined = model(input_ids=ids, use_cache=False).logits
    torch.testing.assert_close(apart[:, :7], first_alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(apart[:, 7:19], second_alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(joined[:, 7:19], second_alone, atol=1e-3)


def test_padded_batches_fall_back_to_sdpa():
    from appliance.train.attention import use_per_sample_attention

    ref = _gqa_model("sdpa")
    ours = copy.deepcopy(ref)
    use_per_sample_attention(ours)
    torch.manual_seed(2)
    ids = torch.randint(0, 128, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=ids, attention_mask=mask).logits,
                                   ref(input_ids=ids, attention_mask=mask).logits)


def test_only_sdpa_models_are_switched():
    from appliance.train.attention import use_per_sample_attention

    model = _gqa_model("eager")
    assert not use_per_sample_attention(model)
    assert model.config._attn_implementation == "eager"


def test_integer_mask_dropout_rate_scale_and_eval():
    from appliance.train.dropout import IntegerMaskDropout

    torch.manual_seed(0)
    drop = IntegerMaskDropout(0.05).train()
    x = torch.ones(1000, 1000)
    y = drop(x)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - 0.05) < 0.002  # 1e6 draws: the standard error of the rate is 0.0002
    assert torch.allclose(y[y != 0], torch.tensor(drop.scale))
    assert abs(float(y.mean()) - 1.0) < 0.003  # the expectation is kept
    assert not torch.equal(drop(x), y)  # a fresh mask every call
    assert drop.eval()(x) is x


def test_fast_lora_dropout_replaces_every_lora_dropout(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from appliance.train.dropout import IntegerMaskDropout, use_fast_lora_dropout

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules="all-linear"))
    lora_layers = [m for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)]
    assert use_fast_lora_dropout(model) == len(lora_layers) > 0
    assert all(isinstance(m.lora_dropout["default"], IntegerMaskDropout) and m.lora_dropout["default"].p == 0.1
               for m in lora_layers)
    # and training still reaches the adapters through it
    model.train()
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_A" in n)


def _lora_pair(tiny_model, dropout: float):
    """Two copies of one LoRA model with non-zero B matrices (peft starts B at zero), both with integer-mask
    dropout; the second gets the fused forward."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from appliance.train.dropout import use_fast_lora_dropout
    from appliance.train.lora_forward import use_fused_lora_forward

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    use_fast_lora_dropout(model)
    fused = copy.deepcopy(model)
    switched = use_fused_lora_forward(fused)
    lora_layers = sum(isinstance(getattr(m, "lora_A", None), torch.nn.ModuleDict) for m in model.modules())
    assert switched == lora_layers > 0
    return model.train(), fused.train()


def _loss_and_grads(model, seed: int):
    torch.manual_seed(seed)  # the same seed draws the same dropout masks on both paths
    ids = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29], [2, 6, 10, 14, 18, 22, 26, 30]])
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_fused_lora_forward_gives_peft_loss_and_gradients(tiny_model, dropout):
    plain, fused = _lora_pair(tiny_model, dropout)
    loss_plain, grads_plain = _loss_and_grads(plain, seed=3)
    loss_fused, grads_fused = _loss_and_grads(fused, seed=3)
    assert torch.allclose(loss_fused, loss_plain, rtol=1e-5, atol=1e-6)
    assert grads_plain.keys() == grads_fused.keys() and grads_plain
    for name, grad in grads_plain.items():
        assert torch.allclose(grads_fused[name], grad, rtol=1e-4, atol=1e-6), name
    if dropout:  # and the dropout really draws: another seed gives another loss
        assert not torch.allclose(_loss_and_grads(fused, seed=4)[0], loss_fused)


def test_fused_lora_forward_falls_back_where_it_is_not_the_same_sum(tiny_model):
    plain, fused = _lora_pair(tiny_model, 0.0)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    plain.eval(), fused.eval()
    with torch.no_grad():
        tuned = plain(input_ids=ids).logits
        with plain.disable_adapter(), fused.disable_adapter():  # DPO's reference pass: the base alone
            base = plain(input_ids=ids).logits
            assert torch.allclose(fused(input_ids=ids).logits, base)
        assert not torch.allclose(base, tuned, atol=1e-4)  # the adapters do change the output
        assert torch.allclose(fused(input_ids=ids).logits, tuned, atol=1e-5)
        fused.merge_adapter()  # merged weights: the base layer alone holds the update
        assert torch.allclose(fused(input_ids=ids).logits, tuned, atol=1e-5)


def _saved_bytes(model, ids) -> int:
    """Bytes autograd keeps for backward after a forward beyond the weights, each storage counted once."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in weights:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids).loss
    return sum(storages.values())


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_lean_swiglu_gives_the_same_loss_and_gradients_and_keeps_less(tiny_model, dropout):
    from appliance.train.swiglu import use_lean_swiglu

    plain, fused = _lora_pair(tiny_model, dropout)
    lean = copy.deepcopy(fused)
    mlps = [m for m in lean.modules() if type(m).__name__.endswith("MLP")]
    assert use_lean_swiglu(lean) == len(mlps) > 0
    loss_plain, grads_plain = _loss_and_grads(plain, seed=3)
    loss_lean, grads_lean = _loss_and_grads(lean, seed=3)
    assert torch.allclose(loss_lean, loss_plain, rtol=1e-5, atol=1e-6)
    for name, grad in grads_plain.items():
        assert torch.allclose(grads_lean[name], grad, rtol=1e-4, atol=1e-6), name

    # What backward keeps: less with each lever (the LoRA layers' dropped copies only exist with dropout).
    ids = torch.randint(0, 100, (2, 24), generator=torch.Generator().manual_seed(0))
    kept = [_saved_bytes(m, ids) for m in (plain, fused, lean)]
    assert kept[2] < kept[1] and (kept[1] < kept[0] if dropout else kept[1] <= kept[0]), kept


def test_lean_swiglu_leaves_other_mlps_alone():
    from transformers import GemmaConfig, GemmaForCausalLM

    from appliance.train.swiglu import use_lean_swiglu

    # Gemma's MLP has the same shape with a GELU: not the product this module computes
    config = GemmaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    assert use_lean_swiglu(GemmaForCausalLM(config)) == 0

"""The SFT loss computed only where it is trained: the LM head projects just the positions whose next token has a
label, instead of every position of the batch.

Why: the LM head is the widest layer of a small model (SmolLM2-135M: 576 x 49,152, a fifth of its forward FLOPs),
and on chat data most positions are system prompt and question, whose labels are -100. trl's fused LM head skips
them only on Triton devices; elsewhere (every CPU) it scores every position and also computes each position's
entropy over the whole vocabulary. Here the backbone runs once, the hidden states of the labelled positions are
gathered, and only those go through the head and the cross-entropy. The loss is the same number (tests compare it
with the model's own loss); the work is smaller by the fraction of unlabelled positions.

Models whose head does more than a plain projection (logit soft-capping, logit scaling) keep trl's path.
"""

import torch
import torch.nn.functional as F

IGNORE = -100


def supports(model) -> bool:
    """Whether the model's logits are exactly lm_head(hidden): then the compact loss equals the model's own."""
    config = _causal_lm(model).config.get_text_config()
    return not any(getattr(config, name, None) not in (None, 1.0) for name in
                   ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                    "logits_scaling"))


def _causal_lm(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trained_positions_loss(model, inputs: dict, num_items_in_batch=None) -> tuple[torch.Tensor, int, int]:
    """(loss, labelled positions, of which the label is the top-1 prediction) for a batch with `labels`.

    The loss is the summed next-token NLL over labelled positions divided by `num_items_in_batch` (the labelled
    positions of the whole accumulated batch, as the Trainer passes it) or by this batch's count.
    """
    lm = _causal_lm(model)
    backbone = getattr(lm, lm.base_model_prefix)  # LoRA layers live inside it, so they train through this call
    features = {k: v for k, v in inputs.items() if k != "labels"}
    hidden = backbone(**features, use_cache=False).last_hidden_state[:, :-1]
    targets = inputs["labels"][:, 1:].to(hidden.device)
    mask = targets != IGNORE
    logits = lm.get_output_embeddings()(hidden[mask]).float()
    wanted = targets[mask]
    nll = F.cross_entropy(logits, wanted, reduction="sum")
    count = int(mask.sum())
    loss = nll / (num_items_in_batch if num_items_in_batch is not None else max(count, 1))
    with torch.no_grad():
        correct = int((logits.argmax(-1) == wanted).sum())
    return loss, count, correct

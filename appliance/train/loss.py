"""The SFT loss computed only where it is trained: the LM head projects just the positions whose next token has a
label, instead of every position of the batch.

Why: the LM head is the widest layer of a small model (SmolLM2-135M: 576 x 49,152, a fifth of its forward FLOPs),
and on chat data most positions are system prompt and question, whose labels are -100. trl's fused LM head skips
them only on Triton devices; elsewhere (every CPU) it scores every position and also computes each position's
entropy over the whole vocabulary. Here the backbone runs once, the hidden states of the labelled positions are
gathered, and only those go through the head and the cross-entropy. The loss is the same number (tests compare it
with the model's own loss); the work is smaller by the fraction of unlabelled positions.

The head and the cross-entropy run a chunk of rows at a time, with the gradient taken in the same pass
(HeadNLL): the labelled rows x vocabulary logits, their log-softmax and their gradient (three such tensors, 65 MB
each for 330 labelled positions of SmolLM2, alive together when backward starts, which is when the step's memory
peaks) become one chunk's worth. The head's weight must be frozen (LoRA: it is); a trained head keeps autograd's
path.

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
    head = lm.get_output_embeddings()
    wanted = targets[mask]
    if head.weight.requires_grad or getattr(head, "bias", None) is not None:
        logits = head(hidden[mask]).float()
        nll = F.cross_entropy(logits, wanted, reduction="sum")
        with torch.no_grad():
            correct = int((logits.argmax(-1) == wanted).sum())
    else:
        nll, correct = HeadNLL.apply(hidden[mask], head.weight, wanted)
        correct = int(correct)
    count = int(mask.sum())
    loss = nll / (num_items_in_batch if num_items_in_batch is not None else max(count, 1))
    return loss, count, correct


class HeadNLL(torch.autograd.Function):
    """(summed NLL of `wanted` under softmax(hidden W^T), how many are the top-1 prediction), over a frozen head W:
    the logits of CHUNK rows at a time, the gradient with respect to `hidden` taken in the same pass."""

    CHUNK = 128

    @staticmethod
    def forward(ctx, hidden, weight, wanted):
        nll = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.int64, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        for start in range(0, hidden.shape[0], HeadNLL.CHUNK):
            rows = slice(start, start + HeadNLL.CHUNK)
            target = wanted[rows]
            logits = hidden[rows].mm(weight.t()).float()
            lse = torch.logsumexp(logits, dim=1)
            nll += (lse - logits.gather(1, target[:, None]).squeeze(1)).sum()
            correct += (logits.argmax(dim=1) == target).sum()
            if grad_hidden is not None:  # d nll / d logits = softmax - one-hot, computed in place of the logits
                probs = logits.sub_(lse[:, None]).exp_()
                probs[torch.arange(len(target), device=probs.device), target] -= 1
                grad_hidden[rows] = probs.to(hidden.dtype).mm(weight)
        ctx.save_for_backward(grad_hidden)
        ctx.mark_non_differentiable(correct)
        return nll, correct

    @staticmethod
    def backward(ctx, grad_nll, _grad_correct):
        (grad_hidden,) = ctx.saved_tensors
        return grad_hidden * grad_nll, None, None

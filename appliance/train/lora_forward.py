"""The LoRA layer's forward for CPU training: the low-rank update added inside the GEMM that computes it.

Why: peft's forward is `base(x) + lora_B(lora_A(dropout(x))) * scaling`. Besides the matmuls, that is full passes
over the layer's input (the dropout: a mask multiply and a scale multiply) and over its output (the scaling
multiply and the add), forward and again backward, in each of the 7 LoRA layers of every block: on SmolLM2-135M
these elementwise passes took about as long as the step's matmuls (torch profiler, aten::mul). Here

    out = addmm(x W^T, where(keep, x, 0) A^T, B^T, alpha = scaling * dropout_scale)

computes the same sum: the dropout zeroes the dropped elements (one pass), its 1/(1-p) scale and the LoRA scaling
ride in addmm's alpha, and addmm adds into the base output as it writes it. Over a frozen base (LoRA) the layer is
one autograd function (LoraLinear) that keeps the input and the bool keep mask for backward, not a dropped copy of
the input per layer, and puts the scales on the rank-sized gradients only. Same numbers up to float rounding
(tests compare outputs and gradients with peft's forward, and what backward keeps).

Used only where it is exactly that sum: one active plain-LoRA adapter (no DoRA or other variant, no LoRA bias),
not merged, adapters enabled, an nn.Linear base, every weight and the input in one dtype. Anything else (QLoRA's
4-bit base, bf16 mixes, DPO's reference pass with adapters disabled) goes through peft's own forward.

    from appliance.train.lora_forward import use_fused_lora_forward
    use_fused_lora_forward(model)    # after get_peft_model (and use_fast_lora_dropout); returns how many layers
"""

import types

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import IntegerMaskDropout, keep_only


def _fusable(layer, x: torch.Tensor, args, kwargs) -> str | None:
    """The active adapter's name when the fused forward computes exactly peft's sum for this call, else None."""
    if args or kwargs or layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}) or getattr(layer, "lora_bias", {}).get(name):
        return None
    base = layer.base_layer
    if type(base) is not nn.Linear:
        return None
    dtypes = {x.dtype, base.weight.dtype, layer.lora_A[name].weight.dtype, layer.lora_B[name].weight.dtype}
    return name if len(dtypes) == 1 else None


def fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    name = _fusable(self, x, args, kwargs)
    if name is None:
        return type(self).forward(self, x, *args, **kwargs)
    base = self.base_layer
    dropout = self.lora_dropout[name]
    rows = x.reshape(-1, x.shape[-1])
    alpha = self.scaling[name]
    keep = None
    if isinstance(dropout, IntegerMaskDropout) and dropout.active():
        keep = dropout.keep_mask(rows)
        alpha *= dropout.scale
    elif dropout.training and not isinstance(dropout, (nn.Identity, IntegerMaskDropout)):
        return _unsaved_mask_forward(self, name, x, rows, dropout(rows), alpha)  # a dropout this module does not know
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        kept = rows if keep is None else keep_only(rows, keep)
        return _unsaved_mask_forward(self, name, x, rows, kept, alpha)
    out = LoraLinear.apply(rows, base.weight, base.bias, self.lora_A[name].weight, self.lora_B[name].weight, keep,
                           alpha)
    return out.view(*x.shape[:-1], out.shape[-1])


def _unsaved_mask_forward(self, name, x, rows, kept, alpha):
    """The same sum through autograd's own ops (which save `kept`, a dropped copy of the input)."""
    low_rank = F.linear(kept, self.lora_A[name].weight)
    out = torch.addmm(F.linear(rows, self.base_layer.weight, self.base_layer.bias), low_rank,
                      self.lora_B[name].weight.t(), alpha=alpha)
    return out.view(*x.shape[:-1], out.shape[-1])


class LoraLinear(torch.autograd.Function):
    """rows W^T + b + alpha (where(keep, rows, 0) A^T) B^T over a frozen base layer.

    For backward it keeps the layer's input and the bool keep mask (1 byte an element) and recomputes the dropped
    input, where autograd's own ops would keep a dropped float copy of the input for every LoRA layer: q, k and v
    read the same input, so that was three copies of it (and two for gate and up). On the training bench's step
    this is about 4% of the peak memory, for one more masking pass per layer in backward (2-11% of the layer's
    forward and backward time, measured alone).
    """

    @staticmethod
    def forward(ctx, rows, weight, bias, lora_a, lora_b, keep, alpha):
        kept = rows if keep is None else keep_only(rows, keep)
        low_rank = kept.mm(lora_a.t())
        out = torch.addmm(F.linear(rows, weight, bias), low_rank, lora_b.t(), alpha=alpha)
        ctx.save_for_backward(rows, weight, lora_a, lora_b, keep, low_rank)
        ctx.alpha = alpha
        return out

    @staticmethod
    def backward(ctx, grad):
        rows, weight, lora_a, lora_b, keep, low_rank = ctx.saved_tensors
        need_rows, _, _, need_a, need_b = ctx.needs_input_grad[:5]
        grad = grad.reshape(-1, grad.shape[-1])
        grad_low = grad.mm(lora_b).mul_(ctx.alpha)  # the scale on the rank-sized tensor, not the output-sized one
        grad_a = grad_low.t().mm(rows if keep is None else keep_only(rows, keep)) if need_a else None
        grad_b = grad.t().mm(low_rank).mul_(ctx.alpha) if need_b else None
        grad_rows = None
        if need_rows:
            through_lora = grad_low.mm(lora_a)
            grad_rows = torch.addmm(through_lora if keep is None else keep_only(through_lora, keep), grad, weight)
        return grad_rows, None, None, grad_a, grad_b, None, None


def use_fused_lora_forward(model) -> int:
    """Give every peft LoRA Linear layer the fused forward (it falls back to peft's per call)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    switched = 0
    for module in model.modules():
        if isinstance(module, LoraLinear) and type(module.base_layer) is nn.Linear:
            module.forward = types.MethodType(fused_forward, module)
            switched += 1
    return switched

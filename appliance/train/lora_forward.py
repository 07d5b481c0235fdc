"""The LoRA layer's forward for CPU training: the low-rank update added inside the GEMM that computes it.

Why: peft's forward is `base(x) + lora_B(lora_A(dropout(x))) * scaling`. Besides the matmuls, that is full passes
over the layer's input (the dropout: a mask multiply and a scale multiply) and over its output (the scaling
multiply and the add), forward and again backward, in each of the 7 LoRA layers of every block: on SmolLM2-135M
these elementwise passes took about as long as the step's matmuls (torch profiler, aten::mul). Here

    out = addmm(x W^T, where(keep, x, 0) A^T, B^T, alpha = scaling * dropout_scale)

computes the same sum: the dropout zeroes the dropped elements (one pass; backward, one with the saved bool mask), its 1/(1-p) scale
and the LoRA scaling ride in addmm's alpha, and addmm adds into the base output as it writes it. Backward, the
scales land on the rank-sized gradients only. Same numbers up to float rounding (tests compare outputs and
gradients with peft's forward).

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
    if isinstance(dropout, IntegerMaskDropout) and dropout.active():
        kept = keep_only(rows, dropout.keep_mask(rows))
        alpha *= dropout.scale
    else:
        kept = dropout(rows)  # nn.Identity (p = 0), eval mode, or a dropout this module does not know
    low_rank = F.linear(kept, self.lora_A[name].weight)
    out = torch.addmm(F.linear(rows, base.weight, base.bias), low_rank, self.lora_B[name].weight.t(), alpha=alpha)
    return out.view(*x.shape[:-1], out.shape[-1])


def use_fused_lora_forward(model) -> int:
    """Give every peft LoRA Linear layer the fused forward (it falls back to peft's per call)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    switched = 0
    for module in model.modules():
        if isinstance(module, LoraLinear) and type(module.base_layer) is nn.Linear:
            module.forward = types.MethodType(fused_forward, module)
            switched += 1
    return switched

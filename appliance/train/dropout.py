"""LoRA dropout with the keep mask drawn from 15-bit random integers, for CPU training.

Why: peft applies nn.Dropout to the input of every LoRA layer (7 per transformer block). On a CPU, torch draws
that mask one float per element, which costs more than the LoRA matmuls it feeds: an eighth of a LoRA step on
SmolLM2-135M (torch profiler, aten::bernoulli_). Integers are cheaper: the draws are 64-bit random words, each
split into four 15-bit draws (one generator call per four elements, about 4x fewer than one per element, which
measured 4x faster again). An element is dropped when its draw is below round(p * 32768), so the rate is p to
within 1/65536, and kept elements are scaled by the exact inverse of the keep rate: the expectation is unchanged,
as with nn.Dropout. The fused LoRA forward (lora_forward.py) takes the keep mask alone and folds the scale into
its GEMM.

    from appliance.train.dropout import use_fast_lora_dropout
    use_fast_lora_dropout(model)    # after get_peft_model, CPU only; returns how many layers it switched
"""

import torch
from torch import nn

RANGE = 1 << 15
LOW_15_BITS = RANGE - 1


class IntegerMaskDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * RANGE)
        self.scale = RANGE / (RANGE - self.threshold)

    def active(self) -> bool:
        return self.training and self.threshold > 0

    def keep_mask(self, x: torch.Tensor) -> torch.Tensor:
        """True where an element of `x` is kept. random_() fills an int64 with 63 uniform bits; each of its four
        int16 views' low 15 bits is one uniform draw in [0, 32768)."""
        if torch.compiler.is_compiling():  # under torch_compile: a draw inductor generates inside its own kernel
            return torch.rand_like(x) >= self.threshold / RANGE
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
        draws = words.view(torch.int16)[:n].view(x.shape)
        return (draws & LOW_15_BITS) >= self.threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active():
            return x
        return keep_only(x, self.keep_mask(x)) * self.scale


def keep_only(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x where `keep`, else 0: one pass forward and one backward, saving only the bool mask (measured faster than
    masked_fill, which copies first, and than multiplying by the mask, which converts it to floats each time)."""
    return torch.where(keep, x, x.new_zeros(()))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_fast_lora_dropout(model) -> int:
    """Replace the nn.Dropout of every LoRA layer by IntegerMaskDropout with the same p."""
    switched = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if isinstance(dropout, nn.Dropout) and dropout.p > 0:
                dropouts[name] = IntegerMaskDropout(dropout.p)
                switched += 1
    return switched

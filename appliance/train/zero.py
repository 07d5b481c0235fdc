"""DeepSpeed ZeRO through transformers' integration (strategy deepspeed): the presets `zero2` and `zero3`, or a
site's own JSON file, and the checks that say before a job exists when DeepSpeed cannot run here.

The presets leave batch size, learning rate, gradient clipping and precision as "auto", so transformers fills
them from the training config: one source for every value, never two that disagree.
"""

import importlib.util
import json
from pathlib import Path

from ..errors import AirlockError


def deepspeed_config(choice: str, cfg) -> dict:
    """The DeepSpeed config for `choice` (zero2, zero3 or a JSON file)."""
    if choice.endswith(".json"):
        path = Path(choice).expanduser()
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AirlockError(f"cannot read the DeepSpeed config: {exc}", where=str(path),
                               fix="give a readable JSON file, or distributed.deepspeed: zero2 | zero3") from None
    stage = 3 if choice == "zero3" else 2
    zero = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        # Gather the whole model when saving, so the result is an ordinary HF checkpoint (adapter or model).
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto", "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
    }


def check_deepspeed(device: str) -> None:
    """Refuse DeepSpeed where it cannot run: not installed in this environment, or no GPU."""
    if importlib.util.find_spec("deepspeed") is None:
        raise AirlockError("strategy deepspeed needs the deepspeed package, which is not installed here",
                           where="distributed.strategy",
                           fix="use strategy fsdp (PyTorch's own sharding: the same memory savings as ZeRO-2/3), or "
                               "build the bundle with deepspeed in its packages")
    if device != "cuda":
        raise AirlockError("DeepSpeed ZeRO trains on CUDA GPUs and this host has none", where="distributed.strategy",
                           fix="use strategy ddp or fsdp on CPU")

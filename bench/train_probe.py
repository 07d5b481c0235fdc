"""A measuring callback for the peer trainers in the training benchmark (transformers' Trainer, LLaMA-Factory).

Needs only transformers and torch, so it runs in any venv the benchmark starts: it is loaded by file path there.
It records the wall time at the end of every optimizer step and the non-pad tokens each step trained on (the
attention mask's sum of every training forward, or the row length for padding-free batches, which have no pad;
for a 4D mask, as packing without cross-attention passes, the positions allowed to attend to themselves),
and writes them to a JSON file when training ends. Airlock's own runs report the same two figures in the job's
metrics.jsonl (elapsed_s and trl's num_tokens, counted the same way).
"""

import json
import time
from pathlib import Path

import torch
from transformers import TrainerCallback


class StepProbe(TrainerCallback):
    def __init__(self, out: Path):
        self.out = Path(out)
        self.step_end: list[float] = []
        self.step_tokens: list[int] = []
        self.pending_tokens = 0
        self.losses: list[float] = []

    def _count(self, module, args, kwargs):
        if not module.training:
            return
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        if mask is None:
            self.pending_tokens += int(ids.numel())
        elif mask.dim() == 4:  # (batch, 1, q, k), bool (True = attend) or additive (0 = attend): pads attend nowhere
            diagonal = mask[:, 0].diagonal(dim1=-2, dim2=-1)
            self.pending_tokens += int(diagonal.sum() if diagonal.dtype == torch.bool else (diagonal == 0).sum())
        else:
            self.pending_tokens += int(mask.sum())

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.register_forward_pre_hook(self._count, with_kwargs=True)
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_end.append(time.perf_counter() - self.start)
        self.step_tokens.append(self.pending_tokens)
        self.pending_tokens = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def on_train_end(self, args, state, control, **kwargs):
        vram = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
        self.out.write_text(json.dumps({"step_end_s": self.step_end, "step_tokens": self.step_tokens,
                                        "losses": self.losses, "peak_vram_mb": vram}))

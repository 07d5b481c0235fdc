"""The DPO settings of a TrainConfig (pref_beta, pref_loss, adapter: LLaMA-Factory's names), checked on their own
so the config can validate them without importing the DPO recipe.
"""

import dataclasses
import typing
from typing import Literal

from ..errors import AirlockError

# The DPO losses trl 1.16 offers (pref_loss); sigmoid is the original DPO loss.
PREF_LOSSES = Literal["sigmoid", "hinge", "ipo", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "apo_zero",
                      "apo_down", "aot", "sigmoid_norm"]
LOSS_TYPES = typing.get_args(PREF_LOSSES)


@dataclasses.dataclass
class Preference:
    """The DPO-only settings. In a TrainConfig they are pref_beta, pref_loss and adapter (LLaMA-Factory's names)."""

    beta: float = 0.1
    loss_type: PREF_LOSSES = "sigmoid"
    adapter: str = ""  # an SFT job id or adapter directory to start from; empty = a fresh LoRA on the base

    def validate(self) -> None:
        if self.beta <= 0:
            raise AirlockError(f"pref_beta must be positive, got {self.beta}", where="pref_beta",
                               fix="0.1 is the usual value; larger keeps the model closer to where it started")
        if self.loss_type not in LOSS_TYPES:
            raise AirlockError(f"pref_loss {self.loss_type!r} is not a DPO loss", where="pref_loss",
                               fix=f"use one of: {', '.join(LOSS_TYPES)}")

    @classmethod
    def of(cls, cfg) -> "Preference":
        """The settings from a TrainConfig (defaults for what it does not have)."""
        pref = cls(beta=getattr(cfg, "pref_beta", cls.beta), loss_type=getattr(cfg, "pref_loss", cls.loss_type),
                   adapter=getattr(cfg, "adapter", "") or "")
        pref.validate()
        return pref

"""trl's SFT, DPO and KTO trainers with the two things an offline appliance needs on top: atomic checkpoints and no
model cards (both in the AtomicCheckpoints mixin, so every training stage checkpoints and resumes the same way).
SFT also computes its loss only at the trained positions (appliance/train/loss.py).

Imported only inside a training run (it pulls in torch, transformers and trl).
"""

import errno
import shutil
from pathlib import Path

from transformers.trainer_utils import rotate_checkpoints
from trl import DPOTrainer, KTOTrainer, SFTTrainer

from . import checkpoints, loss, ranks


def _no_space(exc: BaseException) -> bool:
    """ENOSPC, as an OSError or as the message a library (safetensors' Rust writer) wraps it in."""
    while exc is not None:
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class AtomicCheckpoints:
    """Mixin for a transformers Trainer (listed before it): checkpoints are published whole or not at all."""

    def _save_checkpoint(self, model, trial):
        # The Trainer writes checkpoint-N file by file. Point it at a staging directory, then publish the finished
        # checkpoint with one rename: a kill during the save leaves nothing that looks like a checkpoint.
        # In a distributed run every rank writes its part (its RNG state; with FSDP its shard) into the same staging
        # directory, and the rank that saves for this host publishes it once all have written.
        run_dir = Path(self.args.output_dir)
        name = f"checkpoint-{self.state.global_step}"
        staging_root = run_dir / f"{checkpoints.STAGING_PREFIX}{name}"
        if self.args.should_save:
            shutil.rmtree(staging_root, ignore_errors=True)
        ranks.barrier()
        self.args.output_dir = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)
            ranks.barrier()
        except Exception as exc:
            shutil.rmtree(staging_root, ignore_errors=True)
            if not _no_space(exc):
                raise
            from ..errors import AirlockError
            from .resources import checkpoint_bytes

            raise AirlockError(f"no space left on the device while saving {name} (one checkpoint is about "
                               f"{checkpoint_bytes(model) / 2**20:.0f} MiB); the last whole checkpoint is kept",
                               where=str(run_dir), fix="free some space (or lower save_total_limit), then "
                               f"airlock train --resume {run_dir.parent.name}") from None
        finally:
            self.args.output_dir = str(run_dir)
        best = self.state.best_model_checkpoint
        if best and Path(best).parent == staging_root:
            self.state.best_model_checkpoint = str(run_dir / Path(best).name)
        if self.args.should_save:
            checkpoints.publish(staging_root / name, run_dir / name)
            shutil.rmtree(staging_root, ignore_errors=True)
            rotate_checkpoints(str(run_dir), self.args.save_total_limit, self.state.best_model_checkpoint,
                               use_mtime=False)
        ranks.barrier()  # the checkpoint is whole on disk before any rank trains on

    def create_model_card(self, *args, **kwargs):
        # Model cards are for publishing on a hub; the job directory and airlock_provenance.json record the run.
        return None


class AirlockSFTTrainer(AtomicCheckpoints, SFTTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Several ranks: DDP synchronises gradients only through its wrapper's forward, and FSDP gathers weights in
        # hooks on the whole model's forward, so the compact loss (which calls the backbone itself) is for one process.
        if return_outputs or ranks.is_distributed() or not loss.supports(model):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        value, labelled, correct = loss.trained_positions_loss(model, inputs, num_items_in_batch)
        # The bookkeeping trl's own compute_loss does, minus the per-position entropy: token accuracy for the log,
        # and the running count of trained-on tokens that the job's tokens/s is computed from.
        mode = "train" if model.training else "eval"
        self._metrics[mode]["mean_token_accuracy"].append(correct / labelled if labelled else 0.0)
        if mode == "train":
            mask = inputs.get("attention_mask")
            self._total_train_tokens += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return value


class AirlockDPOTrainer(AtomicCheckpoints, DPOTrainer):
    pass


class AirlockKTOTrainer(AtomicCheckpoints, KTOTrainer):
    pass

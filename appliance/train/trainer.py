"""trl's SFT and DPO trainers with the two things an offline appliance needs on top: atomic checkpoints and no
model cards (both in the AtomicCheckpoints mixin, so every training stage checkpoints and resumes the same way).
SFT also computes its loss only at the trained positions (appliance/train/loss.py).

Imported only inside a training run (it pulls in torch, transformers and trl).
"""

import shutil
from pathlib import Path

from transformers.trainer_utils import rotate_checkpoints
from trl import DPOTrainer, SFTTrainer

from . import checkpoints, loss


class AtomicCheckpoints:
    """Mixin for a transformers Trainer (listed before it): checkpoints are published whole or not at all."""

    def _save_checkpoint(self, model, trial):
        # The Trainer writes checkpoint-N file by file. Point it at a staging directory, then publish the finished
        # checkpoint with one rename: a kill during the save leaves nothing that looks like a checkpoint.
        run_dir = Path(self.args.output_dir)
        name = f"checkpoint-{self.state.global_step}"
        staging_root = run_dir / f"{checkpoints.STAGING_PREFIX}{name}"
        shutil.rmtree(staging_root, ignore_errors=True)
        self.args.output_dir = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = str(run_dir)
        checkpoints.publish(staging_root / name, run_dir / name)
        shutil.rmtree(staging_root, ignore_errors=True)
        best = self.state.best_model_checkpoint
        if best and Path(best).parent == staging_root:
            self.state.best_model_checkpoint = str(run_dir / Path(best).name)
        rotate_checkpoints(str(run_dir), self.args.save_total_limit, self.state.best_model_checkpoint,
                           use_mtime=False)

    def create_model_card(self, *args, **kwargs):
        # Model cards are for publishing on a hub; the job directory and airlock_provenance.json record the run.
        return None


class AirlockSFTTrainer(AtomicCheckpoints, SFTTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs or not loss.supports(model):
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

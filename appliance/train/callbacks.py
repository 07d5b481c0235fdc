"""The training loop's reports to its job: metrics.jsonl, status.json, a progress line in log.txt, and stop requests.

`JobReporter` is a transformers TrainerCallback. On every log step it appends one metrics record (step, epoch,
loss, eval_loss, learning_rate, tokens_per_s, elapsed_s, eta_s) and updates status.json. tokens_per_s counts the
non-pad tokens the model trained on (trl's running `num_tokens`) over the wall time since the previous record.

A stop (SIGTERM from `airlock jobs stop`, or Ctrl-C on a foreground run) only sets a flag; at the end of the
current optimizer step the callback asks the Trainer to save a checkpoint and leave the loop, so a stopped job
resumes exactly where it stopped. In a distributed run every rank has a StopFlag and they agree at each step
boundary (one small all-reduce), so all ranks save the same checkpoint and leave the loop together.
"""

import signal
import time

from transformers import TrainerCallback


class StopFlag:
    """Set by SIGTERM/SIGINT; read by the callback at the next step boundary."""

    def __init__(self):
        self.requested = False
        self.signal_name = ""

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"{self.signal_name} received: saving a checkpoint at the end of this step, then stopping", flush=True)


def peak_memory() -> dict:
    """Peak resident memory of this process, and peak GPU memory allocated by torch where there is a GPU (MiB)."""
    import torch

    from .resources import peak_rss_mb

    peak = {"peak_rss_mb": round(peak_rss_mb())}
    if torch.cuda.is_available():
        peak["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return peak


def _round(value, digits=6):
    return None if value is None else round(float(value), digits)


class JobReporter(TrainerCallback):
    def __init__(self, job, stop: StopFlag, elapsed_before: float = 0.0):
        self.job = job
        self.stop = stop
        self.elapsed_before = elapsed_before  # wall time of earlier sessions of this job (before a resume)
        self.stopped_by_request = False

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from . import ranks

        if ranks.is_distributed() and model is not None:
            # What the strategy keeps on each rank: all of it with DDP, a shard with FSDP (its DTensors' local part).
            held = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
            total = sum(p.numel() for p in model.parameters())
            print(f"rank {ranks.rank()} holds {held:,} of {total:,} parameters", flush=True)
        self.t0 = time.monotonic()
        self.first_step = state.global_step  # > 0 after a resume
        self.last_time = self.t0
        self.last_tokens = 0
        self.job.set_status(state="running", step=state.global_step, max_steps=state.max_steps,
                            message="training")

    def on_step_end(self, args, state, control, **kwargs):
        from . import ranks

        requested = ranks.any_rank(self.stop.requested) if ranks.is_distributed() else self.stop.requested
        if requested and not self.stopped_by_request:
            self.stopped_by_request = True
            control.should_save = True
            control.should_training_stop = True
            self.job.set_status(state="stopping", step=state.global_step, message="saving a checkpoint to stop")
        elif not self.stopped_by_request:
            # The step counter and ETA move every step (one small atomic write), so `jobs list` and the TUI never
            # sit at 0/N while steps complete between logging steps.
            self.job.set_status(step=state.global_step, max_steps=state.max_steps, eta_s=self._eta(state))
        return control

    def _eta(self, state) -> float | None:
        done = state.global_step - self.first_step
        return round((state.max_steps - state.global_step) * (time.monotonic() - self.t0) / done, 1) if done else None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        now = time.monotonic()
        session = now - self.t0
        eta = self._eta(state)
        record = {
            "step": state.global_step,
            "epoch": _round(state.epoch, 4),
            "loss": _round(logs.get("loss")),
            "eval_loss": _round(logs.get("eval_loss")),
            "learning_rate": logs.get("learning_rate"),
            "tokens_per_s": None,
            "elapsed_s": round(self.elapsed_before + session, 2),
            "eta_s": eta,
        }
        if "loss" in logs and "num_tokens" in logs:
            tokens = logs["num_tokens"]
            record["tokens_per_s"] = round((tokens - self.last_tokens) / max(now - self.last_time, 1e-9), 1)
            self.last_tokens, self.last_time = tokens, now
        if record["loss"] is None and record["eval_loss"] is None:
            return  # the end-of-training summary (train_runtime etc.), not a log step
        record.update(peak_memory())
        self.job.append_metrics(record)
        if self.job.raw_status().get("state") != "stopping":
            self.job.set_status(step=state.global_step, max_steps=state.max_steps, message="training")
        shown = " ".join(f"{k}={v}" for k, v in record.items() if v is not None)
        print(f"[{self.job.id}] {shown}", flush=True)

    def on_save(self, args, state, control, **kwargs):
        self.job.set_status(last_checkpoint=f"checkpoints/checkpoint-{state.global_step}")
        print(f"[{self.job.id}] saved checkpoint-{state.global_step}", flush=True)

"""The child side of a job: `python -m appliance.jobrunner JOB_DIR`, what `jobs.start_detached` starts.

It takes over the runner lock its parent handed it (or takes the lock itself), turns the offline guard on, marks
the job running, calls the job's runner ("module:function" in job.json) and records how it ended: completed,
stopped (SIGTERM), failed (an AirlockError, rendered) or crashed (a traceback in log.txt). Every start and end
goes to the audit log.
"""

import os
import signal
import sys
from pathlib import Path

from .errors import AirlockError
from .jobs import ACTIVE, LOCK_FD_ENV, Job, lock_runner, note_holder


def _resolve(spec: str):
    import importlib

    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


class StopRequested(Exception):
    """Raised in the runner when a stop arrives before there is anything to checkpoint."""


def _raise_stop(signum, frame):
    raise StopRequested()


def run(job: Job) -> int:
    """Run a job in this process (what the detached child does): status, offline guard, errors to the log."""
    import traceback

    info = job.info
    if info.get("kind") == "train":
        _short_openmp_spin()
    inherited = os.environ.pop(LOCK_FD_ENV, None)
    try:
        lock = int(inherited) if inherited else lock_runner(job)
    except AirlockError as exc:  # another runner has it: leave its status alone
        print(f"error: {exc.render()}", file=sys.stderr, flush=True)
        return exc.exit_code
    note_holder(lock, os.getpid())
    if info.get("offline", True):
        from .offline import enforce_offline

        enforce_offline()
    job.set_status(state="running", pid=os.getpid(), message="started")
    _audit(job, "start")
    # A stop (SIGTERM) ends generic work at once; training replaces this handler with one that checkpoints first.
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        _resolve(info["runner"])(job)
    except StopRequested:
        job.set_status(state="stopped", message="stopped on request")
        _audit(job, "stop")
        return 0
    except AirlockError as exc:
        print(f"error: {exc.render()}", file=sys.stderr, flush=True)
        job.set_status(state="failed", message=exc.render())
        _audit(job, "fail", error=exc.message)
        return exc.exit_code
    except BaseException as exc:  # the traceback goes to log.txt for a bug report
        traceback.print_exc()
        job.set_status(state="failed", message=f"{type(exc).__name__}: {exc}")
        _audit(job, "crash", error=f"{type(exc).__name__}: {exc}")
        return 1
    state = job.raw_status().get("state")
    if state in ACTIVE:
        job.set_status(state="completed", message="done")
    # training stops at a step boundary and returns normally: its final state says which end this was
    _audit(job, {"stopped": "stop", "failed": "fail"}.get(state, "complete"))
    return 0


def _short_openmp_spin() -> None:
    """Training only: torch's CPU kernels run on GNU OpenMP, whose idle threads spin 300,000 rounds before they
    sleep. On a host shared with other CPU-hungry work those spinning threads take the cores the straggler thread
    and the neighbour need: a LoRA step measured 7x slower beside a neighbour busy on every CPU, 3x with a short
    spin, and no slower alone (`python -m bench busy`). Not for llama.cpp (chat, serve, export): one-token decodes
    sync threads per operation, and a short spin halved single-stream tokens/s there. Set before torch loads
    libgomp; an operator's own GOMP_SPINCOUNT or OMP_WAIT_POLICY wins."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "10000"


def _audit(job: Job, event: str, **details) -> None:
    """Every start and every end of a job's run goes to the audit log (kill -9 excepted: the resume records it)."""
    from . import registry

    st = job.raw_status()
    registry.audit(f"{job.kind}.{event}", job=job.id, step=st.get("step"), **details)


if __name__ == "__main__":  # python -m appliance.jobrunner JOB_DIR
    if len(sys.argv) != 2:
        sys.exit("usage: python -m appliance.jobrunner JOB_DIR")
    sys.exit(run(Job(Path(sys.argv[1]).resolve())))

"""Who does what in a distributed training run. Every rank (a process started by appliance/train/worker.py) runs the
same recipe as a single-process job; these helpers, which read the RANK, LOCAL_RANK and WORLD_SIZE torch's
elastic launcher sets, let the recipe say who does what:
  - the global main rank (0) reports: status.json, metrics.jsonl and the job log (log.txt, which it shares with
    the launcher); every other rank writes ranks/rank-N.log;
  - the local main rank of each host writes the files of that host's job directory (checkpoints, the result);
  - a stop (SIGTERM) is agreed by all ranks at the same step boundary (`any_rank`), so no rank waits in a
    collective for one that has already left;
  - a failing rank writes ranks/failure-N.txt with its error, which the launcher turns into the job's message.

Outside a distributed run (no WORLD_SIZE), every helper answers as the only rank, so the recipe reads the same.
"""

import os
from pathlib import Path

RANKS_DIR = "ranks"


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_world_size() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """The rank that reports (status, metrics): global rank 0."""
    return rank() == 0


def is_local_main() -> bool:
    """The rank that writes this host's files: local rank 0."""
    return local_rank() == 0


def group_ready() -> bool:
    if not is_distributed():
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if group_ready():
        import torch.distributed as dist

        dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any (one small all-reduce; the flag itself without a group)."""
    if not group_ready():
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        value = value.cuda()
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather(value) -> list:
    """`value` from every rank, in rank order (the value alone without a group)."""
    if not group_ready():
        return [value]
    import torch.distributed as dist

    out = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


class _Quiet:
    """The job as a rank that does not report sees it: reads pass through, status and metrics writes are dropped
    (one writer per job directory, so no update is lost to a race)."""

    def __init__(self, job):
        self._job = job

    def __getattr__(self, name):
        return getattr(self._job, name)

    def set_status(self, **fields) -> dict:
        return self._job.raw_status()

    def append_metrics(self, record) -> None:
        pass

    def rewrite_metrics(self, records) -> None:
        pass


def reporting(job):
    """`job` for the rank that reports for this host (local main), a write-dropping view of it for the others."""
    return job if is_local_main() else _Quiet(job)


def failure_file(job_path: Path, global_rank: int) -> Path:
    return Path(job_path) / RANKS_DIR / f"failure-{global_rank}.txt"


def log_file(job_path: Path, global_rank: int) -> Path:
    return Path(job_path) / RANKS_DIR / f"rank-{global_rank}.log"

"""Start the ranks of a distributed training job through torch's elastic launcher (what `torchrun` runs), inside
the job's runner process, so a distributed run is one job like any other.

    airlock train CONFIG --set distributed.nproc_per_node=2          # 2 ranks on this host
    airlock train CONFIG --node-rank 1 --master-addr 10.0.0.1        # this host's part of a 2-host run

The runner (appliance.jobrunner.run) becomes the elastic agent of this host: it starts `python -m appliance.train.worker
JOB_DIR` once per local rank, with torch's static rendezvous at master_addr:master_port and no restarts. Then:
  - a stop (`airlock jobs stop`, Ctrl-C on a foreground run) reaches the agent as SIGTERM; the agent passes it to
    every rank, the ranks agree on the step to stop at, save one checkpoint and exit; the job ends `stopped`;
  - a rank that dies (kill -9, out of memory) is seen by the agent within a fraction of a second; it stops the
    others and the job ends `failed` with a message naming the rank and how it ended; collectives time out after
    distributed.timeout_s, so a rank never waits forever for a peer;
  - `airlock train --resume JOB` starts all ranks again from the last whole checkpoint.
"""

import os
import socket
import sys
from pathlib import Path

from ..errors import AirlockError
from . import ranks


def preflight(cfg, device: str) -> None:
    """What a distributed config needs of this host, checked before a job exists."""
    import torch

    d = cfg.distributed
    if d.backend == "nccl" and device != "cuda":
        raise AirlockError("backend nccl needs CUDA GPUs and this host has none", where="distributed.backend",
                           fix="use backend: gloo (or auto) on CPU")
    if device == "cuda" and d.nproc_per_node > torch.cuda.device_count():
        raise AirlockError(f"nproc_per_node {d.nproc_per_node} is more than the {torch.cuda.device_count()} GPU(s) "
                           "this host has", where="distributed.nproc_per_node",
                           fix=f"set distributed.nproc_per_node to at most {torch.cuda.device_count()}")
    if d.strategy == "deepspeed":
        from .zero import check_deepspeed

        check_deepspeed(device)
    if d.strategy == "fsdp" and device != "cuda":
        # Measured: accelerate applies an FSDP plugin only to GPU-type runs; on CPU it would train plain DDP while
        # the config says fsdp. Refused rather than silently changed.
        raise AirlockError("strategy fsdp shards on GPUs only: on CPU the Trainer (accelerate) would run the ranks "
                           "as DDP, every rank holding the whole model", where="distributed.strategy",
                           fix="use strategy ddp on CPU; fsdp on the GPU hosts")


def check_applied(trainer, cfg) -> None:
    """The strategy the config names is the one the Trainer runs (never a quiet fallback to DDP)."""
    d = cfg.distributed
    if not d.enabled:
        return
    engaged = {"fsdp": trainer.is_fsdp_enabled, "deepspeed": trainer.is_deepspeed_enabled}.get(d.strategy, True)
    if not engaged:
        raise AirlockError(f"the Trainer did not engage strategy {d.strategy} on this host", where="distributed.strategy",
                           fix="use strategy ddp here; see docs/distributed.md for where each strategy runs")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _threads_per_rank(cfg) -> int:
    from .. import cpus

    return cfg.num_threads or max(1, cpus.available() // cfg.distributed.nproc_per_node)


def launch_config(cfg, job, port: int):
    """torch's LaunchConfig for this host's part of the run."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig

    d = cfg.distributed
    return LaunchConfig(
        min_nodes=d.nnodes, max_nodes=d.nnodes, nproc_per_node=d.nproc_per_node, run_id=job.id,
        rdzv_backend="static", rdzv_endpoint=f"{d.master_addr}:{port}", rdzv_configs={"rank": d.node_rank},
        max_restarts=0,  # a failed rank fails the job; the user resumes it from the last checkpoint
        monitor_interval=0.2, start_method="spawn",
        # Output is not redirected: rank 0 inherits the job log, the other ranks open ranks/rank-N.log themselves.
        logs_specs=DefaultLogsSpecs(log_dir=os.devnull),
        signals_to_handle="SIGTERM,SIGINT,SIGHUP",
        shutdown_timeout=d.timeout_s,  # ranks save a checkpoint before they exit on a stop
    )


def launch(cfg, job) -> None:
    """Run this host's ranks of the job to the end (the runner's part of a distributed job)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    from ..offline import allow_addresses

    d = cfg.distributed
    folder = job.path / ranks.RANKS_DIR
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("failure-*.txt"):
        stale.unlink()
    allow_addresses([d.master_addr, *d.allow])  # the rendezvous and the site's hosts; nothing else
    port = d.port() or _free_port()
    threads = _threads_per_rank(cfg)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    print(f"distributed: {d.nproc_per_node} rank(s) on this host x {d.nnodes} host(s) = {d.world_size}, "
          f"strategy {d.strategy}, rendezvous {d.master_addr}:{port}, node rank {d.node_rank}, {threads} CPU "
          f"thread(s) per rank; logs: log.txt (rank 0), {folder.name}/rank-N.log", flush=True)
    job.set_status(message=f"starting {d.world_size} ranks")
    try:
        elastic_launch(launch_config(cfg, job, port), sys.executable)("-m", "appliance.train.worker",
                                                                          str(job.path))
    except ChildFailedError as exc:
        raise AirlockError(describe_failure(exc, job.path), where=str(job.path),
                           fix=f"see {folder.name}/rank-N.log (rank 0: log.txt); fix the cause, then "
                               f"airlock train --resume {job.id}") from None
    except SignalException as exc:
        if job.raw_status().get("state") not in ("stopped", "failed", "completed"):
            job.set_status(state="stopped", message=f"stopped ({exc.sigval.name}) before the ranks reached a "
                           f"checkpoint; resume: airlock train --resume {job.id}")


def describe_failure(exc, job_path: Path) -> str:
    """One sentence naming the rank that failed first and how: its own error when it wrote one, else its signal."""
    rank, failure = exc.get_first_failure()
    recorded = ranks.failure_file(job_path, rank)
    if recorded.is_file():
        reason = recorded.read_text(encoding="utf-8").strip()
    elif failure.exitcode < 0:
        reason = f"it was killed by {failure.signal_name()}"
    else:
        reason = f"it exited with status {failure.exitcode}"
    others = sorted(r for r in exc.failures if r != rank)
    also = f" (then rank(s) {', '.join(map(str, others))} stopped)" if others else ""
    return f"rank {rank} (pid {failure.pid}) failed: {reason}{also}"

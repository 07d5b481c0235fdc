"""One rank's process: `python -m appliance.train.worker JOB_DIR`, started once per rank by torch's elastic
launcher (appliance/train/distributed.py), which sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT.

It writes its output to ranks/rank-N.log (rank 0: the job log), goes offline, joins the process group with a
timeout on every collective, and runs the config's stage (appliance.train.recipe.run_stage). A failure is written
to ranks/failure-N.txt, which the launcher turns into the job's message.
"""

import os
import sys
import traceback
from pathlib import Path

from .ranks import group_ready, failure_file, is_main, local_rank, log_file, rank, world_size


def _own_log(job_path: Path) -> None:
    """Ranks other than 0 write their output (Python's and the C++ libraries') to ranks/rank-N.log."""
    if is_main():
        return
    path = log_file(job_path, rank())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def init_group(backend: str, timeout_s: int) -> str:
    """Join the run's process group (before the Trainer, which reuses it); returns the backend used. Collectives
    time out after `timeout_s`, so a rank whose peer died fails instead of waiting forever."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return backend


def main(job_dir: str) -> int:
    from ..errors import AirlockError
    from ..jobs import Job
    from ..offline import enforce_offline
    from .config import from_dict

    job = Job(Path(job_dir))
    _own_log(job.path)
    failure = failure_file(job.path, rank())
    failure.unlink(missing_ok=True)
    try:
        enforce_offline()
        cfg = from_dict(job.config(), where=str(job.config_path))
        backend = init_group(cfg.distributed.backend, cfg.distributed.timeout_s)
        print(f"rank {rank()}/{world_size()} (local {local_rank()}) joined over {backend}", flush=True)
        from .recipe import run_stage

        run_stage(cfg, job)
        return 0
    except AirlockError as exc:
        print(f"error: {exc.render()}", file=sys.stderr, flush=True)
        failure.write_text(exc.render() + "\n", encoding="utf-8")
        return exc.exit_code
    except BaseException as exc:
        traceback.print_exc()
        failure.write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        return 1
    finally:
        if group_ready():
            import torch.distributed as dist

            dist.destroy_process_group()


if __name__ == "__main__":  # python -m appliance.train.worker JOB_DIR
    if len(sys.argv) != 2:
        sys.exit("usage: python -m appliance.train.worker JOB_DIR (started by airlock train, not by hand)")
    sys.exit(main(sys.argv[1]))

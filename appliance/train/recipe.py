"""The job runner of every training job (`appliance.train.recipe:run_job`, named in each job.json): it runs the
config's stage in this process (SFT and continued pre-training, stage pt: appliance/train/sft.py; DPO: dpo.py;
KTO: kto.py), or, with several ranks, starts them
through torch's elastic launcher (distributed.py), each rank then running the stage (ranks.py).
"""

from . import distributed, ranks
from .config import TrainConfig, from_dict


def run_job(job) -> None:
    """The job runner for kind `train` (called by `python -m appliance.jobrunner JOB_DIR`): one process runs the
    stage itself; with several ranks (distributed.nproc_per_node x nnodes > 1) it starts them (distributed.py)."""
    cfg = from_dict(job.config(), where=str(job.config_path))
    if cfg.distributed.enabled:
        distributed.launch(cfg, job)
    else:
        run_stage(cfg, job)


def run_stage(cfg: TrainConfig, job) -> None:
    """Run the config's stage in this process (a single-process job, or one rank). Only the host's local main rank
    writes the job's status and metrics."""
    job = ranks.reporting(job)
    if cfg.stage == "dpo":
        from . import dpo

        dpo.train(cfg, job)
    elif cfg.stage == "kto":
        from . import kto

        kto.train(cfg, job)
    else:  # sft, and pt: the same trainer on documents instead of conversations (appliance/data/pretrain.py)
        from . import sft

        sft.train(cfg, job)

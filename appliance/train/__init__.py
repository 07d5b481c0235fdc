"""Training: the validated TrainConfig and the recipes that run it as a job (`airlock train CONFIG`).

`load_config(path, overrides)` and `TrainConfig` are light to import. The job runner (recipe.run_job) runs the
config's stage (sft.py for sft and pt, dpo.py, kto.py: peers sharing common.py), or its ranks (distributed.py,
worker.py, ranks.py), and pulls in the training stack (torch, transformers, peft, trl) only then.
"""

from .. import sources
from .config import TrainConfig, from_dict, load_config

__all__ = ["TrainConfig", "from_dict", "load_config", "start", "resume"]


def start(cfg: TrainConfig, argv: list[str], name: str | None = None):
    """A new queued training job for `cfg` (run it with appliance.jobs.start_detached or jobrunner.run)."""
    from .. import registry
    from ..jobs import create_job

    job = create_job("train", cfg.to_dict(), argv, name, runner="appliance.train.recipe:run_job")
    registry.audit("train.create", job=job.id, stage=cfg.stage, method=cfg.method, model=cfg.model,
                   data=cfg.data.path, ranks=cfg.distributed.world_size)
    return job


def preflight(cfg: TrainConfig, *, hardware: bool = True, data: bool = True) -> None:
    """What can be checked before a job exists and before the training stack's weight: the base model (and the
    adapter a DPO run starts from) resolve offline; with `hardware`, the dtype and the distributed settings run on
    this host; with `data`, every record converts, no column is dropped unasked and a chat template is found (one
    read of the data, as `airlock data check`). The CLI runs all of it before creating a job; the TUI's Train form
    runs the quick part on every change and the data part when Start is pressed."""
    from ..errors import AirlockError
    from .common import resolve_base

    if cfg.adapter:  # DPO from an SFT adapter (trained on the base it names unless model is set)
        from ..sources import resolve_source

        resolve_source(cfg.adapter)
    base_dir = None
    if cfg.model or not cfg.adapter:
        try:
            base_dir = resolve_base(cfg.model)[1]
        except AirlockError as exc:
            exc.where = exc.where or "model"  # so a form shows it on the model field
            raise
    if data:
        from ..data.preflight import check_data

        check_data(cfg.data, base_dir, cfg.stage)
    if hardware:
        from .resources import check_dtype

        device = check_dtype(cfg.dtype, cfg.method)
        if device == "cuda":
            from .memory import check_fits

            check_fits(cfg)  # the estimate from the architecture, before any weights load
        if cfg.torch_compile:
            from .compile import check_compiler

            check_compiler()
        if cfg.distributed.enabled:
            from .distributed import preflight as distributed_preflight

            distributed_preflight(cfg, device)


def resume(ref: str, from_checkpoint: int | None = None):
    """The job to continue: a stopped, crashed or failed training job (checked, not started); with
    `from_checkpoint`, from that step's checkpoint rather than the newest whole one."""
    from ..errors import AirlockError
    from ..jobs import ACTIVE, find_job

    job = find_job(ref)
    if job.kind != "train":
        raise AirlockError(f"job {job.id} is a {job.kind} job, not a training job", fix="see `airlock jobs list`")
    state = job.status()["state"]
    if state in ACTIVE:
        raise AirlockError(f"job {job.id} is still {state}", fix=f"airlock jobs stop {job.id}, or follow it with "
                           f"`airlock jobs logs -f {job.id}`")
    if state == "completed":
        raise AirlockError(f"job {job.id} has already completed", fix="start a new run with `airlock train CONFIG`")
    if from_checkpoint is not None:
        from . import checkpoints

        checkpoints.intact_checkpoint(sources.checkpoints_dir(job.path), from_checkpoint)  # exists and is whole
        job.set_status(resume_from_step=from_checkpoint)
    from .. import registry

    # A crash (kill -9, power loss) cannot record itself: the resume records what it found.
    registry.audit("train.resume", job=job.id, previous_state=state, from_checkpoint=from_checkpoint)
    return job

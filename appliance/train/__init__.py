"""Training: the validated TrainConfig and the SFT recipe that runs it as a job (`airlock train CONFIG`).

`load_config(path, overrides)` and `TrainConfig` are light to import; `recipe.train(cfg, job)` pulls in the
training stack (torch, transformers, peft, trl) only when called.
"""

from .config import TrainConfig, from_dict, load_config

__all__ = ["TrainConfig", "from_dict", "load_config", "start", "resume"]


def start(cfg: TrainConfig, argv: list[str], name: str | None = None):
    """A new queued training job for `cfg` (run it with appliance.jobs.start_detached or jobs.run)."""
    from .. import registry
    from ..jobs import create_job

    job = create_job("train", cfg.to_dict(), argv, name, runner="appliance.train.recipe:run_job")
    registry.audit("train.create", job=job.id, stage=cfg.stage, method=cfg.method, model=cfg.model,
                   data=cfg.data.path)
    return job


def preflight(cfg: TrainConfig, *, hardware: bool = True) -> None:
    """What can be checked in a second, before a job exists and before the training stack's weight: the base model
    (and the adapter a DPO run starts from) resolve offline, and (with `hardware`) the dtype runs on this host.
    The CLI runs it before creating a job; the TUI's Train form runs it on every change."""
    from ..errors import AirlockError
    from .recipe import resolve_base

    if cfg.adapter:  # DPO from an SFT adapter (trained on the base it names unless model is set)
        from ..merge import resolve_source

        resolve_source(cfg.adapter)
    if cfg.model or not cfg.adapter:
        try:
            resolve_base(cfg.model)
        except AirlockError as exc:
            exc.where = exc.where or "model"  # so a form shows it on the model field
            raise
    if hardware:
        from .resources import check_dtype

        check_dtype(cfg.dtype, cfg.method)


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

        checkpoints.intact_checkpoint(job.path / "checkpoints", from_checkpoint)  # exists and is whole
        job.set_status(resume_from_step=from_checkpoint)
    from .. import registry

    # A crash (kill -9, power loss) cannot record itself: the resume records what it found.
    registry.audit("train.resume", job=job.id, previous_state=state, from_checkpoint=from_checkpoint)
    return job

"""Deleting jobs (`airlock jobs rm`): a job that is not running goes with its directory, and the registry's records
of what it produced are withdrawn; what it holds is never deleted without being named."""

import os
import shutil
from pathlib import Path

from . import sources
from .errors import AirlockError
from .jobs import Job, pid_alive
from .registry import artifacts, audit, forget


def remove(job: Job, with_outputs: bool = False) -> dict:
    """Delete a job that is not running: its directory, and the registry's records of what it produced (withdrawn
    by name). A job holding outputs (an adapter, a merged model, GGUF files) needs `with_outputs`, so a trial run
    goes in one word and a result never without being named. Returns what was removed (also audited)."""
    status = job.status()
    state = status["state"]
    if state in ("running", "stopping") or (state == "queued" and pid_alive(status.get("pid"))):
        raise AirlockError(f"job {job.id} is {state}", where="jobs rm", code="jobs.active",
                           fix=f"stop it first: airlock jobs stop {job.id}")
    outputs = [p.name for p in sources.outputs_of(job.path)]
    if outputs and not with_outputs:
        raise AirlockError(f"job {job.id} holds outputs: {', '.join(outputs)}", where="jobs rm", code="jobs.outputs",
                           fix=f"copy or export what you need, then: airlock jobs rm {job.id} --with-outputs")
    kind, root = job.kind, job.path.resolve()
    withdrawn = [a_id for a_id, a in artifacts().items()
                 if a.get("path") and Path(a["path"]).resolve().is_relative_to(root)]
    staged = job.path.with_name(f".removing-{job.id}")  # out of every listing at once; deleted below
    os.rename(job.path, staged)
    for artifact_id in withdrawn:
        forget(artifact_id)
    shutil.rmtree(staged)
    removed = {"job": job.id, "kind": kind, "state": state, "outputs": outputs, "artifacts": withdrawn}
    audit("job-remove", **removed)
    return removed

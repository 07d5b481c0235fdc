"""Plain helpers that turn a job's on-disk state (appliance.jobs, contract 2) into text for tables and labels."""

import time


def fmt_seconds(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_text(status: dict) -> str:
    step, total = status.get("step") or 0, status.get("max_steps")
    return f"{step}/{total}" if total else str(step)


def last_metric(records: list[dict], key: str):
    for rec in reversed(records):
        if rec.get(key) is not None:
            return rec[key]
    return None


def job_row(job) -> tuple[str, str, str, str, str]:
    """(id, kind, state, progress, created) for a job table; a job whose files are unreadable says so."""
    try:
        info = job.info
        status = job.status()
    except (OSError, ValueError) as exc:
        return job.id, "?", f"unreadable ({type(exc).__name__})", "", ""
    return job.id, info.get("kind", "?"), status.get("state", "?"), progress_text(status), \
        (info.get("created") or "")[:16].replace("T", " ")


def age(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        then = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return stamp
    return fmt_seconds(max(0, time.time() - then)) + " ago"

"""How many CPU threads Airlock's work should use on this host, and who else is using them.

`os.cpu_count()` counts the machine, not what this process may use: a taskset/cpuset, or a cgroup CPU quota (a
container or a systemd slice limited to 2 CPUs on a 64-core host), gives less. Asking for more threads than that
makes OpenMP and llama.cpp threads queue behind each other, which on a busy host costs far more than a fair share.
"""

import math
import os
from pathlib import Path


def affinity() -> int:
    """CPUs this process may be scheduled on (taskset, cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cgroup_quota() -> float | None:
    """CPUs' worth of time this process's cgroup may use (cgroup v2 cpu.max, or v1 cfs quota); None if unlimited."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2 unified hierarchy
            limit = _read(Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.max")
            if limit and not limit.startswith("max"):
                quota, period = limit.split()[:2]
                return int(quota) / int(period)
        elif "cpu" in controllers.split(","):
            base = Path("/sys/fs/cgroup") / controllers / path.lstrip("/")
            quota, period = _read(base / "cpu.cfs_quota_us"), _read(base / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0:
                return int(quota) / int(period)
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def available() -> int:
    """Threads worth running: the CPUs we may run on, capped by the cgroup's CPU quota (rounded up)."""
    n = affinity()
    quota = cgroup_quota()
    if quota:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def physical() -> int:
    """Physical cores among those available: llama.cpp's kernels gain nothing from hyper-threads."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False) or available()
    except ImportError:
        cores = available()
    logical = os.cpu_count() or cores
    # With SMT, each physical core shows as several logical CPUs: scale what we may use by that ratio.
    return max(1, min(available(), round(available() * cores / logical)))


def other_airlock_work() -> list[str]:
    """Other running Airlock jobs on this host (training, export, serving), as 'ID (kind, pid N)' lines."""
    from .jobs import ACTIVE, Job, pid_alive
    from .paths import jobs_dir

    found = []
    root = jobs_dir()
    if not root.is_dir():
        return found
    for path in sorted(root.iterdir()):
        if not (path / "status.json").is_file():
            continue
        try:
            job = Job(path)
            st = job.status()
            # This process's own job: its pid, or its parent's (a rank of a distributed run, under its runner)
            mine = st.get("pid") in (os.getpid(), os.getppid())
            if st.get("state") in ACTIVE and not mine and pid_alive(st.get("pid")):
                found.append(f"{job.id} ({job.info.get('kind', 'job')}, pid {st['pid']})")
        except Exception:  # a half-written job directory is not a reason to fail the caller's work
            continue
    return found


def busy_warning(what: str) -> str | None:
    """A one-line warning when other Airlock jobs already run here; None when this work has the host to itself."""
    others = other_airlock_work()
    if not others:
        return None
    return (f"warning: {len(others)} other Airlock job(s) already running on this host: {', '.join(others[:3])}"
            f"{' ...' if len(others) > 3 else ''}; {what} shares the {available()} CPU(s) with them and will run "
            "slower (see `airlock jobs list`)")

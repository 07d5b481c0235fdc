"""Long work as a job: a directory on disk that outlives the terminal, the SSH session and the process itself.

A job is `jobs_dir()/<job_id>/` with
    job.json       id, kind, name, created, argv, runner ("module:function"), offline
    config.yaml    the resolved config the runner reads
    status.json    state (queued|running|stopping|stopped|failed|completed), pid, step, max_steps, message, updated
    metrics.jsonl  one JSON line per log step, written by the runner
    log.txt        the runner's stdout + stderr
plus whatever the kind writes (training: checkpoints/, adapter/ or model/).

Any kind of work (train, export, install) uses the same machinery: `create_job(kind, config, argv, name, runner)`
writes the directory, `start_detached(job)` starts `python -m appliance.jobrunner <job dir>` in its own session
(stdin /dev/null, output to log.txt), which imports the runner and calls `runner(job)`. The runner reports
through `job.set_status(...)` and `job.append_metrics(...)`. `stop(job)` sends SIGTERM (the runner saves and marks
itself `stopped`), then SIGKILL after a grace period. A job whose status says it runs while its process is gone is
reported as `crashed` (see Job.status). The names of what a kind writes are appliance.sources' job layout.
"""

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import append_jsonl, read_jsonl, write_json, write_text
from .errors import AirlockError
from .paths import jobs_dir

ACTIVE = ("queued", "running", "stopping")
FINISHED = ("stopped", "failed", "completed", "crashed")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def pid_alive(pid: int | None) -> bool:
    """True when `pid` is a live process (a zombie, exited but not yet reaped, counts as gone)."""
    if not pid:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass
class Job:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def info(self) -> dict:
        import json

        return json.loads((self.path / "job.json").read_text(encoding="utf-8"))

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def config(self) -> dict:
        import yaml

        return yaml.safe_load(self.config_path.read_text(encoding="utf-8")) or {}

    def raw_status(self) -> dict:
        import json

        try:
            return json.loads((self.path / "status.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"state": "queued", "pid": None, "step": 0, "max_steps": None, "message": "", "updated": None}

    def status(self) -> dict:
        """status.json, with `crashed` in place of an active state whose process has gone (killed, host reboot)."""
        st = self.raw_status()
        if st.get("state") in ACTIVE and st.get("pid") and not pid_alive(st["pid"]):
            st["state"] = "crashed"
            st["message"] = (f"the process (pid {st['pid']}) ended without finishing; "
                             f"resume it with `airlock {self.kind} --resume {self.id}`")
        return st

    def set_status(self, **fields) -> dict:
        """Merge `fields` into status.json (atomically) and stamp the time."""
        st = self.raw_status()
        st.update(fields, updated=_now())
        write_json(self.path / "status.json", st)
        return st

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path)

    def append_metrics(self, record: dict) -> None:
        append_jsonl(self.metrics_path, record)

    def rewrite_metrics(self, records: list[dict]) -> None:
        """Replace metrics.jsonl (a resume drops the lines logged after the checkpoint it continues from)."""
        import json

        write_text(self.metrics_path, "".join(json.dumps(r, default=str) + "\n" for r in records))

    def log_tail(self, n: int = 20) -> str:
        if not self.log_path.is_file():
            return ""
        with open(self.log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024 * max(1, n // 50 + 1)))
            lines = fh.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:]) if n else ""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:40] or "job"


def create_job(kind: str, config: dict, argv: list[str], name: str | None = None, *, runner: str,
               offline: bool = True) -> Job:
    """Write a new job directory (queued) with its resolved config; returns the Job. Nothing runs yet."""
    import yaml

    job_id = f"{_slug(name or kind)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    root = jobs_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = root / job_id
    staging = root / f".{job_id}.staging"
    staging.mkdir()
    write_json(staging / "job.json", {"id": job_id, "kind": kind, "name": name or kind, "created": _now(),
                                      "argv": list(argv), "runner": runner, "offline": offline})
    write_text(staging / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    write_json(staging / "status.json", {"state": "queued", "pid": None, "step": 0, "max_steps": None,
                                         "message": "", "updated": _now()})
    os.replace(staging, path)  # a job appears whole or not at all
    return Job(path)


def list_jobs(kind: str | None = None) -> list[Job]:
    """All jobs, oldest first (by creation time in job.json)."""
    root = jobs_dir()
    if not root.is_dir():
        return []
    jobs = [Job(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "job.json").is_file()]
    if kind:
        jobs = [j for j in jobs if j.kind == kind]
    return sorted(jobs, key=lambda j: (j.info.get("created", ""), j.id))


def match_job(ref: str) -> Job | None:
    """A job by id, unique id prefix or name (the newest job of that name); None when no job matches, and an
    AirlockError when a prefix matches several. Every command that takes a job reference resolves it here."""
    root = jobs_dir()
    if not ref:
        return None
    if (root / ref / "job.json").is_file():
        return Job(root / ref)
    jobs = list_jobs()
    by_prefix = [j for j in jobs if j.id.startswith(ref)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    by_name = [j for j in jobs if j.info.get("name") == ref]
    if by_name:
        return by_name[-1]
    if len(by_prefix) > 1:
        raise AirlockError(f"job {ref!r} is ambiguous: {', '.join(j.id for j in by_prefix)}",
                           fix="give more of the job id")
    return None


def find_job(ref: str) -> Job:
    """The job `ref` names (see match_job); AirlockError when there is none."""
    job = match_job(ref)
    if job is None:
        raise AirlockError(f"no job {ref!r} in {jobs_dir()}", fix="see `airlock jobs list`")
    return job


def runner_argv(job: Job) -> list[str]:
    return [sys.executable, "-m", "appliance.jobrunner", str(job.path)]


LOCK = "runner.lock"  # one runner per job: an flock held for the runner's whole life (the OS drops it at exit)
LOCK_FD_ENV = "AIRLOCK_JOB_LOCK_FD"


def lock_runner(job: Job, exiting_grace_s: float = 15.0) -> int:
    """An open fd holding the job's runner lock; AirlockError naming the holder when another process has it.

    A runner that has already written its final state (stopped, failed, completed) still holds the lock while its
    interpreter shuts down (a second or two with torch loaded): a resume right after a stop waits for that instead
    of being refused."""
    import fcntl

    fd = os.open(job.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + exiting_grace_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if job.raw_status().get("state") not in ACTIVE and time.monotonic() < deadline:
                time.sleep(0.1)  # the last runner is on its way out
                continue
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AirlockError(f"job {job.id} is already being run by pid {holder}", where=str(job.path),
                               fix=f"follow it with `airlock jobs logs -f {job.id}`, or `airlock jobs stop {job.id}`")


def note_holder(fd: int, pid: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n".encode(), 0)


def start_detached(job: Job) -> int:
    """Start the job's runner in a new session, detached from this terminal; returns its pid. The runner lock is
    taken here and handed to the child, so two starts of one job cannot both run it."""
    st = job.status()
    if st["state"] in ACTIVE and pid_alive(st.get("pid")):
        raise AirlockError(f"job {job.id} is already running (pid {st['pid']})", fix=f"airlock jobs stop {job.id}")
    fd = lock_runner(job)
    try:
        job.set_status(state="queued", pid=None, message="starting")
        with open(job.log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(runner_argv(job), stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, pass_fds=(fd,), cwd=os.getcwd(),
                                    env=dict(os.environ, **{LOCK_FD_ENV: str(fd)}))
        note_holder(fd, proc.pid)
        # Record the pid at once, so `jobs stop` works even before the runner writes its first status.
        job.set_status(pid=proc.pid)
    finally:
        os.close(fd)  # the child holds the lock now
    return proc.pid


def follow(job: Job, out=None, poll: float = 0.5, stop_on_interrupt: bool = True, start: int = 0) -> dict:
    """Print the job's log from byte `start` as it grows until the job finishes; returns the final status.

    With stop_on_interrupt, Ctrl-C stops the job (it checkpoints first); a second Ctrl-C leaves it running."""
    out = out or sys.stdout
    pos = start
    interrupted = False
    while True:
        try:
            if job.log_path.is_file():
                with open(job.log_path, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                    pos += len(chunk)
                if chunk:
                    out.write(chunk.decode("utf-8", "replace"))
                    out.flush()
            st = job.status()
            if st["state"] not in ACTIVE:
                return st
            time.sleep(poll)
        except KeyboardInterrupt:
            if not stop_on_interrupt or interrupted:
                raise
            interrupted = True
            out.write(f"\nstopping {job.id} (it saves a checkpoint first; Ctrl-C again to leave it running) ...\n")
            request_stop(job)


def request_stop(job: Job) -> bool:
    """Send SIGTERM to the job's process group; False when it is not running."""
    st = job.status()
    pid = st.get("pid")
    if st["state"] not in ACTIVE or not pid_alive(pid):
        return False
    job.set_status(state="stopping", message="stop requested")
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    return True


def stop(job: Job, grace_s: float = 120.0) -> dict:
    """SIGTERM, wait up to `grace_s` for the runner to save and exit, then SIGKILL. Returns the final status."""
    if not request_stop(job):
        return job.status()
    pid = job.raw_status().get("pid")
    deadline = time.monotonic() + grace_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        _kill_tree(pid)
        job.set_status(state="stopped", message=f"killed after {grace_s:.0f} s without stopping on its own")
    return job.status()


def _kill_tree(pid: int) -> None:
    """SIGKILL the runner's process group and every process it started, also those in sessions of their own (the
    ranks of a distributed run), then wait until they are gone."""
    import psutil

    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for proc in descendants:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(descendants, timeout=30)
    while pid_alive(pid):
        time.sleep(0.1)

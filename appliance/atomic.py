"""Nothing half-written: every output is built beside its final place and renamed into it in one step.

`staged_dir(final)` yields a staging directory on the same filesystem; on success it replaces `final` (moving an
old one aside first, and deleting it only after the new one is in place); on any error the staging directory is
removed and `final` is untouched. `write_text` / `write_json` do the same for single files. Published outputs get
the modes a plain `mkdir`/`open` would give under the process umask (0755/0644 with the usual 022), not the
private 0700/0600 of temporary files, so a service account in the group can read what it serves.

`check_writable(path)` answers "can an output go here?" before minutes of work are spent computing it.
"""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def staged_dir(final: Path, *, replace: bool = True):
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.staging-"))
    try:
        yield staging
        publish_modes(staging)
        if final.exists():
            if not replace:
                raise FileExistsError(final)
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        else:
            os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def umask() -> int:
    """The process umask, read without changing it (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def publish_modes(root: Path) -> None:
    """Give a staged tree the modes plain mkdir/open would (temporary dirs and files are created private)."""
    mask = umask()
    root = Path(root)
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, 0o777 & ~mask)
        elif path.stat().st_mode & 0o777 == 0o600:  # left private by mkstemp; keep any other mode a writer chose
            os.chmod(path, 0o666 & ~mask)


def check_writable(path: Path, what: str = "output") -> Path:
    """AirlockError unless an output can be created at `path` (a file or directory, existing or not): tried by
    creating and deleting a file in it, or in its nearest existing parent, so read-only mounts, permissions (root
    included: it bypasses mode bits but not a read-only mount) and full inodes all show up before work starts."""
    from .errors import AirlockError

    path = Path(path).absolute()
    probe_dir = path if path.is_dir() else path.parent
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise AirlockError(f"cannot write the {what} here: {probe_dir} is a file, not a directory", where=str(path),
                           fix="choose another location")
    try:
        fd, probe = tempfile.mkstemp(dir=probe_dir, prefix=".airlock-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AirlockError(f"cannot write the {what} here: {exc.strerror} ({probe_dir})", where=str(path),
                           fix="choose a writable location (--out / --report), or ask for write access to "
                           f"{probe_dir}") from None
    return path


def write_json(path: Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line and fsync: a crash loses at most the line being written, never earlier ones."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Read JSON lines, skipping a torn last line left by a crash."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out

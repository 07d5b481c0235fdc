"""Output files of an export: written under a temporary name beside the final one and renamed into place.

A temporary name carries the writer's pid (`.NAME.part-PID`), so a later export can tell leftovers of a killed
run (pid gone) from files another export is writing right now, and sweep only the former.
"""

import contextlib
import os
import re
from pathlib import Path

from ..errors import AirlockError

_PART = re.compile(r"^\..+\.part-(\d+)$")


def part_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.part-{os.getpid()}")


@contextlib.contextmanager
def staged_file(final: Path):
    """Yield a temporary path; on success rename it to `final`, on any error (or signal) delete it."""
    final = Path(final)
    # A target that is itself this process's temporary name (the export's working 16-bit file) is written in
    # place: staging it again would only add a second suffix (`.x.part-N.part-N`) and a rename.
    match = _PART.match(final.name)
    working = bool(match) and int(match.group(1)) == os.getpid()
    tmp = final if working else part_name(final)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if not tmp.is_file():
            raise AirlockError(f"the step that writes {final.name} finished without writing it", where=str(final))
        if not working:
            os.replace(tmp, final)
    except BaseException:
        if working:
            final.unlink(missing_ok=True)
        raise
    finally:
        if not working:
            tmp.unlink(missing_ok=True)


def sweep_leftovers(directory: Path) -> list[Path]:
    """Delete temporary files of exports that were killed (their pid is no longer running)."""
    removed = []
    if not Path(directory).is_dir():
        return removed
    for path in Path(directory).iterdir():
        match = _PART.match(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def no_space(directory: Path) -> AirlockError:
    """The error for a full disk, with what is free where."""
    import shutil

    try:
        free = shutil.disk_usage(directory).free
        free_text = f"{free / 2**20:.1f} MiB free"
    except OSError:
        free_text = "free space unknown"
    return AirlockError(f"no space left on the device ({free_text}); nothing was written", where=str(directory),
                        fix="free some space or choose another output directory with --out")

"""Checkpoints that are whole or absent: written to a staging directory, flushed to disk, renamed into place.

A kill -9 during a save leaves only `.staging-checkpoint-N/`, which `last_checkpoint()` never returns and
`clean_incomplete()` removes before a resume (with any checkpoint-N lacking the Trainer's state file, however it
came about). So a resume loses at most one checkpoint interval, never the run.
"""

import os
import re
import shutil
from pathlib import Path

PATTERN = re.compile(r"^checkpoint-(\d+)$")
STAGING_PREFIX = ".staging-"
COMPLETE_MARK = "trainer_state.json"  # written last by the Trainer; a checkpoint without it is not one


def checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest (lowest step) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and PATTERN.match(p.name) and (p / COMPLETE_MARK).is_file()]
    return sorted(found, key=step_of)


def step_of(checkpoint: Path) -> int:
    return int(PATTERN.match(Path(checkpoint).name).group(1))


def last_checkpoint(directory: Path) -> Path | None:
    found = checkpoints(directory)
    return found[-1] if found else None


def clean_incomplete(directory: Path) -> None:
    """Remove what a killed save left behind, so checkpoint rotation only ever counts real checkpoints."""
    directory = Path(directory)
    if directory.is_dir():
        for p in directory.iterdir():
            torn = PATTERN.match(p.name) and p.is_dir() and not (p / COMPLETE_MARK).is_file()
            if p.name.startswith(STAGING_PREFIX) or torn:
                shutil.rmtree(p, ignore_errors=True)


def fsync_tree(root: Path) -> None:
    """Flush every file under `root` to disk so the rename publishes data, not empty files after a power cut."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def publish(staged: Path, final: Path) -> Path:
    """Move a fully written checkpoint into place in one rename."""
    fsync_tree(staged)
    if final.exists():  # the same step saved again after a resume: replace it whole
        shutil.rmtree(final)
    os.replace(staged, final)
    return final

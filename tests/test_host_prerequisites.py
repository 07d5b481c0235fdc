"""Hosts as they are: install.sh (and stage 2 again) checks this host against the bundle's signed target before a
single chunk is hashed: Python version and its venv/ensurepip, glibc, free disk for the install, and for a CUDA
bundle the NVIDIA driver. Each refusal is one line with the fix, and nothing is written. Bundles come from the
independent writer (tests/forge.py).

    .venv/bin/python -m pytest tests/test_host_prerequisites.py -q
"""

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import forge

ROOT = Path(__file__).resolve().parents[1]
HASHING = "checking every file and chunk"


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    from bundler.pyz import build_pyz

    root = tmp_path_factory.mktemp("prereq")
    keys = forge.Keys(root / "keys")
    shutil.copyfile(ROOT / "installer" / "install.sh", root / "install.sh")
    build_pyz(root / "airlock-installer.pyz")
    base = forge.Recipe(files={"datasets/a.jsonl": ("dataset", b'{"instruction": "q", "output": "a"}\n')},
                        install_sh=(root / "install.sh").read_bytes(),
                        installer_pyz=(root / "airlock-installer.pyz").read_bytes(), host_need=1 << 20)
    return {"root": root, "keys": keys, "base": base}


def bundle(kit, name: str, **changes) -> Path:
    return forge.write(replace(kit["base"], **changes), kit["root"] / name, kit["keys"])


def fake_tools(directory: Path, **scripts) -> str:
    """A PATH whose first directory holds the given fake tools (name -> sh script body)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in scripts.items():
        (directory / name).write_text("#!/bin/sh\n" + body + "\n")
        (directory / name).chmod(0o755)
    return f"{directory}:{os.environ['PATH']}"


def install_sh(kit, media: Path, target: Path, *extra, path: str | None = None, python: str | None = None):
    env = {**os.environ, "PATH": path or os.environ["PATH"]}
    env.pop("AIRLOCK_HOME", None)
    argv = ["sh", str(media / "install.sh"), "--target", str(target), "--trusted-key", str(kit["keys"].public_file),
            "--python", python or sys.executable, "--check-only", *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def refused_early(proc, target: Path, *words):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert all(w in proc.stderr for w in words), proc.stderr
    assert HASHING not in proc.stdout, "refused only after hashing the chunks"
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not target.exists(), "a refusal writes nothing, not even the empty home"


def test_target_python_version_is_checked_first(kit, tmp_path):
    wanted = "3.12" if sys.version_info[:2] != (3, 12) else "3.13"
    media = bundle(kit, "py", target_python=wanted)
    proc = install_sh(kit, media, tmp_path / "home")
    family = "apt-get install" if Path("/etc/debian_version").exists() else "install"
    refused_early(proc, tmp_path / "home", f"the bundle is for Python {wanted}", f"python{wanted}-venv", family)


def test_target_python_without_venv_is_refused(kit, tmp_path):
    version = "%d.%d" % sys.version_info[:2]
    fake = tmp_path / "bin" / "python3"
    path = fake_tools(tmp_path / "bin", python3=f'case "$*" in *ensurepip*) exit 1 ;; *) echo {version} ;; esac')
    media = bundle(kit, "venv", env_mode="wheelhouse")
    proc = install_sh(kit, media, tmp_path / "home", path=path, python=str(fake))
    refused_early(proc, tmp_path / "home", "cannot make a venv", f"python{version}-venv")


def test_target_glibc_newer_than_the_host_is_refused(kit, tmp_path):
    media = bundle(kit, "glibc", target_glibc="2.99")
    proc = install_sh(kit, media, tmp_path / "home")
    host = os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    refused_early(proc, tmp_path / "home", "needs glibc 2.99 or later", f"this host has {host}")


def test_target_disk_too_small_is_refused(kit, tmp_path):
    media = bundle(kit, "disk", host_need=1 << 52)
    refused_early(install_sh(kit, media, tmp_path / "home"), tmp_path / "home", "not enough free space")


@pytest.mark.parametrize("driver, ok", [("535.104.05", False), ("580.82.07", True), (None, True)])
def test_target_cuda_bundle_checks_the_nvidia_driver(kit, tmp_path, driver, ok):
    media = bundle(kit, f"cuda-{driver}", target_accelerator="cuda13")
    path = fake_tools(tmp_path / "bin", **({"nvidia-smi": f"echo {driver}"} if driver else {}))
    if driver is None and (Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi")):
        pytest.skip("this host has an NVIDIA driver")
    proc = install_sh(kit, media, tmp_path / "home", path=path)
    if not ok:
        refused_early(proc, tmp_path / "home", "needs NVIDIA driver 580 or newer", f"this host has {driver}")
        return
    assert proc.returncode == 0, proc.stderr
    assert ("no NVIDIA driver found" in proc.stdout) == (driver is None) and HASHING in proc.stdout


def test_target_mismatch_is_refused_by_stage_two_too(kit, tmp_path):
    """`airlock bundle install` (no install.sh) makes the same checks on what it reads itself."""
    media = bundle(kit, "stage2", target_glibc="2.99")
    env = {k: v for k, v in os.environ.items() if k != "AIRLOCK_TRUSTED_KEY"}
    proc = subprocess.run([sys.executable, "-m", "appliance", "bundle", "install", str(media), "--target",
                           str(tmp_path / "home"), "--trusted-key", str(kit["keys"].public_file), "--no-smoke"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "code: host.glibc" in proc.stderr, proc.stderr
    assert platform.machine() == "x86_64" or "code: host.arch" in proc.stderr

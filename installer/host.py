"""This host against the bundle's signed target, before anything is unpacked: architecture, glibc, the Python the
env is made with (its version, venv and ensurepip), free disk for the install, and for a CUDA bundle the NVIDIA
driver. install.sh makes the same checks in sh before it hashes a single chunk; stage 2 and `airlock bundle
install` make them again on what they read themselves. Standard library only.
"""

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from appliance.errors import AirlockError

from .manifest import Manifest

MIN_DRIVER = {"12": (525, 0), "13": (580, 0)}  # NVIDIA's release notes: the oldest driver each CUDA major runs on


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def glibc() -> str | None:
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    return found.split()[-1] if found.startswith("glibc") else None


def nvidia_driver() -> str | None:
    """The loaded NVIDIA kernel driver's version, or None when there is none."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        if found := re.search(r"Kernel Module\D*(\d+(?:\.\d+)+)", text):
            return found[1]
    except OSError:
        pass
    if shutil.which("nvidia-smi"):
        run = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        if run.returncode == 0 and run.stdout.strip():
            return run.stdout.split()[0]
    return None


def python_version(python: Path) -> str | None:
    run = subprocess.run([str(python), "-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True)
    return run.stdout.strip() if run.returncode == 0 else None


def env_python(m: Manifest, given: Path | None = None) -> Path | None:
    """The interpreter a bundle's env is made with (wheelhouse: --python, else this one's base) or that runs a bundle
    without an env; None for a packed conda env, which brings its own."""
    import sys

    if m.env.mode == "wheelhouse":
        return Path(given) if given else Path(getattr(sys, "_base_executable", sys.executable))
    return Path(sys.executable) if m.env.mode == "none" else None


def check_host(m: Manifest, target_dir: Path | None, python: Path | None = None, log=print) -> None:
    """Refuse, naming both sides and the fix, a host the bundle was not built for (`target_dir` None: no disk
    check; `python`: the interpreter the env is made with, or that runs a bundle without one)."""
    t, where = m.target, "this host"
    if platform.machine() != t.arch:
        raise AirlockError(f"the bundle is for {t.arch} hosts; this host is {platform.machine()}", where=where,
                           fix=f"build a bundle with target.arch: {platform.machine()}", code="host.arch")
    have = glibc()
    if have is None or _version(have) < _version(t.glibc):
        raise AirlockError(f"the bundle needs glibc {t.glibc} or later; this host has {have or 'no glibc'}",
                           where=where, fix=f"build the bundle with target.glibc: \"{have}\"" if have else
                           "install on a glibc Linux (RHEL 8+, Ubuntu 20.04+, Debian 11+)", code="host.glibc")
    if python is not None and m.env.mode != "conda":
        got = python_version(python)
        if got != t.python:
            raise AirlockError(f"the bundle is for Python {t.python}; {python} is "
                               f"{got or 'not a Python with venv and ensurepip'}", where=where, code="host.python",
                               fix=f"give --python a Python {t.python} with its venv module (e.g. apt-get install "
                               f"python{t.python}-venv, or dnf install python{t.python})")
    _check_driver(t.accelerator, log)
    if target_dir is None:
        return
    free = shutil.disk_usage(target_dir).free
    if free < m.host_need:
        raise AirlockError(f"the install needs {m.host_need / 2**30:.1f} GiB and {free / 2**30:.1f} GiB are free",
                           where=str(target_dir), fix="free some space or install to another --target",
                           code="host.disk")


def _check_driver(accelerator: str, log) -> None:
    if not accelerator.startswith("cuda"):
        return
    major = accelerator[len("cuda"):].split(".")[0]
    need = MIN_DRIVER.get(major, (0, 0))
    driver = nvidia_driver()
    if driver is None:
        log(f"note: no NVIDIA driver found: this CUDA {major} bundle installs, and training and llama.cpp run on "
            f"the CPU until a driver ({need[0]} or newer) is installed")
    elif _version(driver) < need:
        raise AirlockError(f"the bundle is for CUDA {major}, which needs NVIDIA driver {need[0]} or newer; this host "
                           f"has {driver}", where="this host", code="host.driver",
                           fix="upgrade the NVIDIA driver, or install a bundle built for an older CUDA "
                           "(target.accelerator: cuda12 runs on 525 and newer)")

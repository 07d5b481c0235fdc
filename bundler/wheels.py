"""Wheels for the target: `pip download` for the target's platform with every dependency, plus local wheel files;
hashes recorded in a requirements file so the site installs with `pip install --no-index --require-hashes`.

Source-only packages are refused (the site has no compilers and no index), or, with wheels.build_sdists, built
into wheels here, which is only correct when this machine matches the target.
"""

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import AirlockError
from appliance.hfcache import sha256_file

from .spec import Target, WheelsSpec

WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


@dataclass
class Wheel:
    path: Path
    name: str
    version: str
    sha256: str
    tags: str

    @property
    def purl(self) -> str:
        return f"pkg:pypi/{self.name}@{self.version}"


def parse(path: Path, where: str) -> Wheel:
    match = WHEEL_NAME.match(Path(path).name)
    if not match:
        raise AirlockError(f"{Path(path).name} is not a wheel (a source package?)", where=where,
                           fix="the offline site cannot build from source: give a wheel, or set "
                           "wheels.build_sdists: true to build it here for the target")
    name = re.sub(r"[-_.]+", "-", match["name"]).lower()
    return Wheel(Path(path), name, match["version"], sha256_file(path),
                 f"{match['py']}-{match['abi']}-{match['plat']}")


def check_compatible(wheel: Wheel, target: Target, where: str) -> None:
    py, abi, plat = wheel.tags.split("-")
    pythons = py.split(".")
    if not any(p in ("py3", "py2.py3", target.abi) or p == f"py{target.python.replace('.', '')}" for p in pythons):
        raise AirlockError(f"{wheel.path.name} is for {py}, the target runs Python {target.python}", where=where,
                           fix="download the wheel for the target's Python")
    if plat != "any" and not any(p.endswith(target.arch) and p.startswith(("manylinux", "musllinux", "linux"))
                                 for p in plat.split(".")):
        raise AirlockError(f"{wheel.path.name} is for platform {plat}, the target is {target.os}/{target.arch}",
                           where=where, fix="download the wheel for the target's platform")


def _pip(args: list[str], where: str) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-1500:]
        hint = ("a package has no wheel for the target (source only): set wheels.build_sdists: true if this "
                "machine matches the target, or pin a version that has wheels"
                if "no matching distribution" in tail.lower() else "check the requirement and pip's index settings")
        raise AirlockError(f"pip {args[0]} failed:\n{tail}", where=where, fix=hint)


def download(requirements: list[str], target: Target, dest: Path) -> None:
    """`pip download` with dependencies, binary only, for the target's platform and Python."""
    _pip(["download", "--only-binary=:all:", "--platform", target.platform, "--python-version", target.python,
          "--implementation", "cp", "--abi", target.abi, "-d", str(dest), *requirements], "spec: wheels.requirements")


def check_buildable(target: Target) -> None:
    """Building wheels here is only right when this machine has the target's architecture and Python."""
    here = (platform.machine(), f"{sys.version_info.major}.{sys.version_info.minor}")
    if here != (target.arch, target.python):
        raise AirlockError(f"cannot build source packages for {target.arch}/Python {target.python} on "
                           f"{here[0]}/Python {here[1]}", where="spec: wheels.build_sdists",
                           fix="run the bundler on a machine like the target, or use wheels only")


def build_here(requirements: list[str], target: Target, dest: Path) -> None:
    """Build wheels (sdists included) on this machine for the target."""
    check_buildable(target)
    _pip(["wheel", "-w", str(dest), *requirements], "spec: wheels.requirements")


def gather(spec: WheelsSpec, target: Target, dest: Path) -> list[Wheel]:
    """All wheels into dest (downloaded + local), checked for the target; sorted by name."""
    dest.mkdir(parents=True, exist_ok=True)
    if spec.requirements:
        (build_here if spec.build_sdists else download)(spec.requirements, target, dest)
    for f in spec.files:
        if not Path(f).is_file():
            raise AirlockError("wheel file not found", where=f"spec: wheels.files[{f}]", fix="check the path")
        shutil.copyfile(f, dest / Path(f).name)
    wheels = []
    for path in sorted(dest.iterdir()):
        wheel = parse(path, f"wheels: {path.name}")
        check_compatible(wheel, target, f"wheels: {path.name}")
        wheels.append(wheel)
    return wheels


def unpacked_size(wheels: list[Wheel]) -> int:
    """Bytes the wheels take once installed (their members uncompressed), for the site's free-space check."""
    import zipfile

    total = 0
    for w in wheels:
        with zipfile.ZipFile(w.path) as zf:
            total += sum(info.file_size for info in zf.infolist())
    return total


def requirements_txt(wheels: list[Wheel]) -> str:
    """Pinned, hashed requirements for `pip install --no-index --require-hashes --find-links wheels/`."""
    lines = ["# Installed offline with: pip install --no-index --require-hashes --find-links . -r requirements.txt"]
    lines += [f"{w.name}=={w.version} --hash=sha256:{w.sha256}" for w in wheels]
    return "\n".join(lines) + "\n"

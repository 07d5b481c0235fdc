"""Wheels for the target: `pip download` for the target's platforms with every dependency, plus local wheel files;
hashes recorded in the manifest so the site installs with `pip install --no-index --require-hashes`.

The target decides which wheels fit: the Python tag (cp311, py3, or an abi3 wheel of an older CPython), and the
platform (any, or manylinux for the target's architecture at a glibc no newer than the target's). A package
with no wheel at all is built here from its sdist when that gives a pure-Python wheel (py3-none-any, which runs
anywhere); one that compiles code is refused, naming it, since this machine is not the target. Such built wheels
are kept (wheels_dir()/pure), so the next resolution finds them and needs no second pass for this machine.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import AirlockError
from appliance.hfcache import sha256_file

from .spec import Target, WheelsSpec

WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")
MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


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
                           fix="the offline site cannot build from source: give a wheel (pure-Python sdists are "
                           "built into wheels automatically when pip downloads them)")
    name = re.sub(r"[-_.]+", "-", match["name"]).lower()
    return Wheel(Path(path), name, match["version"], sha256_file(path), f"{match['py']}-{match['abi']}-{match['plat']}")


def platform_glibc(platform: str, arch: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag needs, or None when the tag is not manylinux for `arch`."""
    if m := MANYLINUX.fullmatch(platform):
        return (int(m[1]), int(m[2])) if m[3] == arch else None
    legacy, _, tag_arch = platform.partition("_")
    return LEGACY_MANYLINUX.get(legacy) if tag_arch == arch else None


def check_compatible(wheel: Wheel, target: Target, where: str) -> None:
    """The wheel runs on the target: right Python (or abi3 of an older one), platform any or manylinux for the
    target's architecture at a glibc it has."""
    pys, abis, plats = (t.split(".") for t in wheel.tags.split("-"))
    major, minor = (int(x) for x in target.python.split("."))
    cp = f"cp{major}{minor}"

    def python_ok(py: str, abi: str) -> bool:
        if py in ("py3", f"py{major}", f"py{major}{minor}", "py2.py3") or py == cp:
            return abi in ("none", cp, "abi3")
        if abi == "abi3" and (m := re.fullmatch(rf"cp{major}(\d+)", py)):
            return int(m[1]) <= minor  # the stable ABI: built for an older CPython 3, runs on later ones
        return False

    if not any(python_ok(py, abi) for py in pys for abi in abis):
        raise AirlockError(f"{wheel.path.name} is for {wheel.tags.rsplit('-', 1)[0]}, the target runs CPython "
                           f"{target.python}", where=where, fix="download the wheel for the target's Python")
    if "any" in plats:
        return
    needs = [platform_glibc(p, target.arch) for p in plats]
    if not any(needs):
        raise AirlockError(f"{wheel.path.name} is for platform {'.'.join(plats)}, the target is manylinux "
                           f"{target.os}/{target.arch}", where=where,
                           fix="download the manylinux wheel for the target (a linux_* wheel was built for one "
                           "machine only; repair it with auditwheel)")
    lowest = min(n for n in needs if n)
    if lowest > target.glibc_version:
        raise AirlockError(f"{wheel.path.name} needs glibc {lowest[0]}.{lowest[1]}, the target has {target.glibc}",
                           where=where, fix=f"set target.glibc: \"{lowest[0]}.{lowest[1]}\" if the site's hosts "
                           "have it, or use a wheel built for an older glibc (a manylinux build)")


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env)


def _fail(result: subprocess.CompletedProcess, what: str, where: str, fix: str = "") -> AirlockError:
    tail = (result.stderr or result.stdout).strip()[-1500:]
    return AirlockError(f"pip {what} failed:\n{tail}", where=where,
                        fix=fix or "check the requirement and pip's index settings (wheels.index_urls)")


def pure_wheels_dir() -> Path:
    """Pure-Python wheels built here from sdist-only dependencies, kept for the next resolution."""
    from appliance.paths import wheels_dir

    return wheels_dir() / "pure"


def _sources(spec: WheelsSpec, dest: Path, constraints: Path | None) -> list[str]:
    args = ["--find-links", str(dest)]
    if pure_wheels_dir().is_dir():
        args += ["--find-links", str(pure_wheels_dir())]
    for url in spec.index_urls:
        args += ["--extra-index-url", url]
    for link in spec.find_links:
        args += ["--find-links", str(link)]
    return args + (["-c", str(constraints)] if constraints else [])


def build_sdist_only(requirements: list[str], dest: Path, spec: WheelsSpec, constraints: Path | None,
                     log=print) -> None:
    """Resolve the requirements here (pip's dry-run report) and build every dependency the index has only as an
    sdist into a pure-Python wheel among the kept ones (pure_wheels_dir), where the download for the target finds
    it."""
    with tempfile.TemporaryDirectory(prefix="airlock-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        result = _pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                       *_sources(spec, dest, constraints), *requirements])
        if result.returncode != 0:
            raise _fail(result, "resolve", "spec: wheels")
        import json

        for item in json.loads(report.read_text())["install"]:
            if not item["download_info"]["url"].endswith(".whl"):
                meta = item["metadata"]
                log(f"{meta['name']} {meta['version']} has no wheel on the index: building it (pure Python only)")
                pure_wheels_dir().mkdir(parents=True, exist_ok=True)
                build_pure_wheel(f"{meta['name']}=={meta['version']}", pure_wheels_dir(),
                                 _sources(spec, dest, constraints))


def _for_target(pip_args: list[str], requirements: list[str], dest: Path, spec: WheelsSpec,
                constraints: Path | None, log) -> subprocess.CompletedProcess:
    """pip for the target (binary only). A first attempt with the pure wheels kept from earlier bundles; when it
    fails (an sdist-only dependency not built yet, or a real error), build what has no wheel and try again."""
    def attempt():
        return _pip([*pip_args, *_sources(spec, dest, constraints), *requirements])

    result = attempt()
    if result.returncode != 0:
        build_sdist_only(requirements, dest, spec, constraints, log)
        result = attempt()
    return result


def download(requirements: list[str], target: Target, dest: Path, spec: WheelsSpec | None = None,
             constraints: Path | None = None, log=print) -> None:
    """`pip download` with dependencies, binary only, for the target's platforms and Python (pure-Python
    dependencies that exist only as sdists are built into wheels first, and copied into `dest`)."""
    spec = spec or WheelsSpec()
    result = _for_target(["download", *_target_args(target), "-d", str(dest)], requirements, dest, spec,
                         constraints, log)
    if result.returncode != 0:
        raise _fail(result, "download", "spec: wheels")


def _target_args(target: Target) -> list[str]:
    """pip's options that make it choose wheels for the target instead of this machine."""
    args = ["--only-binary=:all:", "--python-version", target.python, "--implementation", "cp", "--abi", target.abi]
    for platform in target.platforms():
        args += ["--platform", platform]
    return args


def resolve(requirements: list[str], target: Target, dest: Path, spec: WheelsSpec | None = None,
            constraints: Path | None = None, log=print) -> list[dict]:
    """What `download` would fetch for the target, without fetching it: pip's installation report, one entry per
    distribution ({"name", "version", "url"}; a file:// url for what is already here). Like `download`, it first
    builds pure-Python wheels of sdist-only dependencies into `dest` (small; seconds)."""
    spec = spec or WheelsSpec()
    with tempfile.TemporaryDirectory(prefix="airlock-plan-") as tmp:
        report = Path(tmp) / "report.json"
        result = _for_target(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                              "--target", str(Path(tmp) / "t"), *_target_args(target)], requirements, dest, spec,
                             constraints, log)
        if result.returncode != 0:
            raise _fail(result, "resolve", "spec: wheels")
        import json

        return [{"name": item["metadata"]["name"], "version": item["metadata"]["version"],
                 "url": item["download_info"]["url"]} for item in json.loads(report.read_text())["install"]]


def build_pure_wheel(requirement: str, dest: Path, sources: list[str] = ()) -> Path:
    """Build `requirement` from its sdist into `dest` (pip's `sources`: links, indexes, constraints); refused
    unless the wheel is pure Python (py3-none-any)."""
    with tempfile.TemporaryDirectory(prefix="airlock-sdist-") as tmp:
        result = _pip(["wheel", "--no-deps", "--no-binary", ":all:", "-w", tmp, *sources, requirement])
        built = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not built:
            raise _fail(result, f"wheel {requirement}", "spec: wheels", "the package has neither a wheel nor a "
                        "buildable sdist; pin a version that has wheels")
        if not built[0].name.endswith("-none-any.whl"):
            raise AirlockError(f"{requirement} has no wheel for the target, and its sdist compiles code "
                               f"({built[0].name})", where="spec: wheels",
                               fix="build its wheel on a machine like the target and list it in wheels.files")
        partial = dest / f".{built[0].name}.partial"  # other bundles may read `dest` (the kept pure wheels)
        shutil.copy2(built[0], partial)
        return Path(os.replace(partial, dest / built[0].name) or dest / built[0].name)


def gather(spec: WheelsSpec, target: Target, dest: Path, extra: list[Path] = (), constraints: Path | None = None,
           log=print) -> list[Wheel]:
    """All wheels into dest (local files and `extra` first, so a download takes them), downloaded with their
    dependencies, each checked for the target; sorted by name."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in [*spec.files, *extra]:
        if not Path(f).is_file():
            raise AirlockError("wheel file not found", where=f"spec: wheels.files[{f}]", fix="check the path")
        if Path(f).parent != dest:
            shutil.copyfile(f, dest / Path(f).name)
    requirements = list(spec.requirements) + [str(dest / Path(f).name) for f in extra]
    if requirements:
        download(requirements, target, dest, spec, constraints, log)
    wheels = []
    for path in sorted(dest.iterdir()):
        wheel = parse(path, f"wheels: {path.name}")
        check_compatible(wheel, target, f"wheels: {path.name}")
        wheels.append(wheel)
    return wheels


def metadata(path: Path) -> tuple[str, list[str]]:
    """(Version, [Requires-Dist names]) from a wheel's METADATA."""
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode("utf-8", "replace")
    version = re.search(r"^Version: (\S+)", text, re.M)[1]
    requires = [re.split(r"[\s;<>=!~\[(]", line[len("Requires-Dist: "):], maxsplit=1)[0].lower()
                for line in text.splitlines() if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    return version, requires


def build_from(version: str, requires: list[str]) -> str:
    """What a torch build is for: 'cpu', 'rocm' or 'cudaNN', from its version's local label (+cpu, +cu126) or, for
    the registry's own build (no label), the NVIDIA runtime wheels it requires."""
    local = version.partition("+")[2]
    if local == "cpu" or local.startswith("rocm"):
        return local if local == "cpu" else "rocm"
    if m := re.fullmatch(r"cu(\d\d)\d*", local):
        return f"cuda{m[1]}"
    cuda = sorted({m[1] for r in requires if (m := re.search(r"-cu(\d\d)$", r))})
    if cuda:
        return f"cuda{cuda[-1]}"
    return "cuda13" if "cuda-toolkit" in requires else "cpu"


def torch_build(path: Path) -> str:
    """What a torch wheel was built for (build_from on its METADATA)."""
    return build_from(*metadata(path))


def check_torch_build(got: str, name: str, target: Target) -> None:
    """The torch that arrives is the one the target's accelerator needs (a CPU host must not get 3 GB of CUDA
    runtime, a GPU host must not get a CPU build); the fix names where the right build comes from."""
    want = target.accelerator.split(".")[0]
    if got == want:
        return
    if want == "cpu":
        hint = ("add PyTorch's CPU index (or the site's mirror of it): wheels.index_urls: "
                "[\"https://download.pytorch.org/whl/cpu\"], or put the CPU wheel in wheels.find_links (make setup "
                "keeps one for this machine's Python in .airlock/wheels)")
    elif want == "cuda13":
        hint = "drop the index or wheel that gives another build: the package registry's torch is the CUDA 13 build"
    else:
        hint = (f"the package registry carries only torch's CUDA 13 build: add PyTorch's CUDA {want[4:]} index (or the "
                f"site's mirror): wheels.index_urls: [\"https://download.pytorch.org/whl/cu{want[4:]}8\"]; or use "
                "accelerator: cuda13 (NVIDIA driver 580 or newer)")
    raise AirlockError(f"{name} is a {got} build of torch; the target needs {want}", where="spec: target.accelerator",
                       fix=hint, code="wheels.torch_build")


def check_torch(wheels: list[Wheel], target: Target) -> None:
    for w in wheels:
        if w.name == "torch":
            check_torch_build(torch_build(w.path), w.path.name, target)


def check_resolved_torch(resolved: list[dict], target: Target) -> None:
    """check_torch on pip's resolution (bundle plan): the build from torch's version and what else resolved."""
    names = [r["name"].lower() for r in resolved]
    for r in resolved:
        if r["name"].lower() == "torch":
            check_torch_build(build_from(r["version"], names), f"torch {r['version']}", target)


def unpacked_size(wheels: list[Wheel]) -> int:
    """Bytes the wheels take once installed (their members uncompressed), for the site's free-space check."""
    total = 0
    for w in wheels:
        with zipfile.ZipFile(w.path) as zf:
            total += sum(info.file_size for info in zf.infolist())
    return total


def requirements_txt(wheels: list[Wheel]) -> str:
    """Pinned, hashed requirements (for people reading the bundle; the site writes its own from the manifest)."""
    lines = ["# Installed offline with: pip install --no-index --require-hashes --find-links . -r requirements.txt"]
    lines += [f"{w.name}=={w.version} --hash=sha256:{w.sha256}" for w in wheels]
    return "\n".join(lines) + "\n"

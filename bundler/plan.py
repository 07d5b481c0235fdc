"""`airlock bundle plan SPEC`: what a bundle will weigh before a byte of it moves: each item's size, the bundle's
size on the media and its chunk count, and the disk the offline host needs to install it.

    airlock bundle plan bundler/examples/appliance.yaml [--json]

Sizes come from metadata only: the hub's file listing for hub models (no weights downloaded), the files
themselves for local models, datasets and tools, and pip's resolution for the target with each wheel's length and
unpacked size read from its zip directory (bundler.remote_zip). `bundle create` prints the same plan first and
refuses when the output's disk cannot hold the bundle.

The host's need: the store (every blob once), the env (the wheels unpacked, byte-compiled, in a venv), and the
HF cache and release tree, which are hard links into the store and cost nothing more. The peak during the install
is the same sum plus the packed conda env's private copy when the bundle carries one.
"""

import math
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.errors import AirlockError

from . import models as modelmod
from . import tools, wheels
from .hub import Hub
from .remote_zip import wheel_sizes
from .spec import BundleSpec

# Measured on an installed appliance (Python 3.11; tests/test_appliance_bundle.py holds the plan to it): the
# installer's compileall writes 1.32 .pyc bytes per .py byte, and a fresh venv (pip) takes 23 MB before any wheel.
PYC_PER_PY = 1.32
VENV_BASE = 23_081_465
TAR_HEADER = 512


@dataclass
class Item:
    kind: str  # model | dataset | wheel | tool | env | installer
    name: str
    files: int
    size: int  # bytes on the media
    installed: int = 0  # bytes it adds on the host beyond the store (the env)
    exact: bool = True
    tar: int = 0  # bytes its files take in the payload's tar stream (headers and padding); 0: one file of `size`

    def payload(self) -> int:
        return self.tar or tar_bytes([self.size])


def tar_bytes(sizes) -> int:
    """What files of these sizes take in the payload: a 512-byte header each, data padded to 512 bytes."""
    return sum(TAR_HEADER + math.ceil(n / tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE for n in sizes)


@dataclass
class Plan:
    name: str
    version: str
    target: str
    max_chunk: int
    items: list[Item] = field(default_factory=list)
    payload: int = 0
    chunks: int = 0
    media: int = 0
    store: int = 0
    env: int = 0
    peak: int = 0
    pins: list[str] = field(default_factory=list)  # "repo@ref -> commit" of hub models

    @property
    def exact(self) -> bool:
        return all(i.exact for i in self.items)

    def total(self, kind: str) -> int:
        return sum(i.size for i in self.items if i.kind == kind)

    def to_dict(self) -> dict:
        return {**asdict(self), "exact": self.exact}


def plan_models(spec: BundleSpec, origins: list, hub: Hub) -> list[Item]:
    items = []
    for m, origin in zip(spec.models, origins):
        if origin.kind == "hub":
            keep, _, listed = modelmod.hub_selection(origin, m, hub)
            sizes = [listed[n] or 0 for n in keep]
        else:
            names = sorted(str(p.relative_to(origin.directory)) for p in origin.directory.rglob("*") if p.is_file())
            keep, _ = modelmod.select_files(names, m, origin.where, modelmod.read_config(origin.directory))
            sizes = [(origin.directory / n).stat().st_size for n in keep]
        label = origin.repo_id + (f" @ {origin.commit[:12]} ({origin.ref})" if origin.pinned else "")
        items.append(Item("model", label, len(keep), sum(sizes), tar=tar_bytes(sizes)))
    return items


def plan_datasets(spec: BundleSpec) -> list[Item]:
    for d in spec.datasets:
        if not Path(d.path).is_file():
            raise AirlockError("dataset file not found", where=f"spec: datasets[{d.path}]", fix="check the path",
                               code="spec.dataset_path")
    return [Item("dataset", d.name or Path(d.path).name, 1, Path(d.path).stat().st_size) for d in spec.datasets]


def plan_wheels(spec: BundleSpec, log) -> list[Item]:
    """The wheels `gather` would carry, resolved for the target, with their sizes (nothing large downloaded)."""
    with tempfile.TemporaryDirectory(prefix="airlock-plan-wheels-") as tmp:
        dest = Path(tmp)
        requirements, constraints, items = list(spec.wheels.requirements), None, []
        files = list(spec.wheels.files)
        if spec.appliance:
            from appliance.paths import CHECKOUT

            from .appliance import airlock_wheel

            files.append(airlock_wheel(dest))
            constraints = CHECKOUT / "constraints.txt"
        if spec.appliance or spec.tools.llama_cpp_wheel or spec.tools.llama_cpp_wheel_file:
            items.append(_llama_item(spec, dest))
        requirements += [str(f) for f in files]
        if not requirements:
            return items
        resolved = wheels.resolve(requirements, spec.target, dest, spec.wheels, constraints, log)
        wheels.check_resolved_torch(resolved, spec.target)
        sizes = wheel_sizes([r["url"] for r in resolved if r["url"].endswith(".whl")])
        for r in resolved:
            if items and r["name"].lower().replace("_", "-") == "llama-cpp-python":
                continue  # planned above as the bundle carries it (repaired, or still to be built)
            z = sizes.get(r["url"])
            if z is None:  # a pure-Python sdist, built into a wheel of about its size
                items.append(Item("wheel", f"{r['name']} {r['version']} (from its sdist)", 1, 0, exact=False))
                continue
            items.append(Item("wheel", f"{r['name']} {r['version']}", 1, z.size,
                              installed=z.unpacked + int(z.python * PYC_PER_PY)))
    return items


def _llama_item(spec: BundleSpec, dest: Path) -> Item:
    """The llama-cpp-python wheel as the bundle will carry it, placed in `dest` for the resolution: the given,
    set-up or earlier-built wheel repaired exactly as `gather` does (seconds), or, when one must be built, the size
    of the last measured build and a metadata-only stand-in so the rest of the stack resolves around it."""
    target, wheel = spec.target, None
    if spec.tools.llama_cpp_wheel_file:
        wheel, _ = tools.llama_cpp_wheel(target, dest, spec.tools.llama_cpp_wheel_file, log=lambda *_: None)
    elif target.accelerator == "cpu" and not spec.tools.llama_cpp_wheel and (setup := tools.setup_wheel()):
        wheel = tools.repair(setup, dest, target)
        if not tools.fits(wheel, target):  # bundle create builds one with zig for the target's glibc
            wheel.unlink()
            kept = tools.kept_wheel(target, zig=True)
            wheel = tools.repair(kept, dest, target) if kept else None
    elif (kept := tools.kept_wheel(target)) is not None:
        wheel = tools.repair(kept, dest, target)
    if wheel is not None:
        z = wheel_sizes([str(wheel)])[str(wheel)]
        return Item("wheel", f"llama-cpp-python ({wheel.name})", 1, z.size, installed=z.unpacked)
    tools.stand_in_wheel(target, dest)
    estimate = tools.BUILT_WHEEL_BYTES["cuda" if target.accelerator.startswith("cuda") else "cpu"]
    return Item("wheel", "llama-cpp-python (to be built for the target)", 1, estimate, installed=int(estimate * 2.2),
                exact=False)


def plan_tools(spec: BundleSpec) -> list[Item]:
    if not spec.tools.converter:
        return []
    converter = tools.converter(log=lambda *_: None)
    files = [p for p in converter.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    sizes = [p.stat().st_size for p in files]
    return [Item("tool", converter.name, len(files), sum(sizes), tar=tar_bytes(sizes))]


def plan_env(spec: BundleSpec) -> list[Item]:
    """A conda env is packed at create time; its archive is about half its unpacked size (gzip of binaries)."""
    if spec.env.mode != "conda":
        return []
    from . import env as envmod

    unpacked = envmod.unpacked_bound(spec.env.prefix)
    return [Item("env", f"conda env {spec.env.prefix}", 1, unpacked // 2, installed=unpacked, exact=False)]


def plan_installer(max_files: int) -> Item:
    """install.sh and the installer zipapp (built here: exact), and the manifest, SBOM and README (estimated from
    their size per entry)."""
    from .create import INSTALL_SH_SOURCE
    from .pyz import build_pyz

    with tempfile.TemporaryDirectory() as tmp:
        pyz = build_pyz(Path(tmp) / "x.pyz").stat().st_size
    return Item("installer", "install.sh, installer, manifest, SBOM, README", 6,
                INSTALL_SH_SOURCE.stat().st_size + pyz + 420 * max_files + 8192, exact=False)


def make_plan(spec: BundleSpec, origins: list, hub: Hub, max_chunk: int, log=print) -> Plan:
    plan = Plan(spec.name, spec.version, _target_line(spec), max_chunk)
    plan.items = (plan_models(spec, origins, hub) + plan_datasets(spec) + plan_wheels(spec, log) + plan_tools(spec)
                  + plan_env(spec))
    plan.pins = [f"{o.hub_repo}@{o.ref} -> {o.commit}" for o in origins if o.pinned]
    plan.payload = sum(i.payload() for i in plan.items) + 2 * tarfile.BLOCKSIZE
    plan.chunks = max(1, math.ceil(plan.payload / max_chunk))
    plan.items.append(plan_installer(sum(i.files for i in plan.items)))
    plan.media = plan.payload + plan.items[-1].size
    plan.store = sum(i.size for i in plan.items if i.kind != "installer")
    plan.env = (sum(i.installed for i in plan.items if i.kind in ("wheel", "env"))
                + (VENV_BASE if spec.env.mode == "wheelhouse" else 0))
    plan.peak = plan.store + plan.env + plan.total("env")
    return plan


def _target_line(spec: BundleSpec) -> str:
    t = spec.target
    return f"{t.os}/{t.arch} Python {t.python} glibc {t.glibc} {t.accelerator}"


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render(plan: Plan, limit: int = 6) -> str:
    """The plan as a short table: models, datasets and tools each on a line, the largest wheels, the totals."""
    lines = [f"plan: {plan.name} {plan.version} for {plan.target}"]
    for kind in ("model", "dataset", "tool", "env", "wheel"):
        group = sorted((i for i in plan.items if i.kind == kind), key=lambda i: -i.size)
        shown = group[:limit] if kind == "wheel" else group
        lines += [f"  {kind:<8} {i.name[:54]:<54} {'~' if not i.exact else ' '}{human(i.size):>10}" for i in shown]
        if rest := group[len(shown):]:
            lines.append(f"  {kind:<8} {f'{len(rest)} more':<54}  {human(sum(i.size for i in rest)):>10}")
    mark = "" if plan.exact else " (~: estimated)"
    lines += [f"media:  {human(plan.media)} in {plan.chunks} chunk(s) of at most {human(plan.max_chunk)}{mark}",
              f"host:   {human(plan.store + plan.env)} to install (store {human(plan.store)} + env "
              f"{human(plan.env)}; the HF cache and release tree are hard links into the store), "
              f"peak {human(plan.peak)}"]
    return "\n".join(lines)


def install_need(packed: int, env: dict, wheel_files: list[Path]) -> int:
    """What the install of a written bundle takes on the host at its peak, as bundle.env's NEED_BYTES tells
    install.sh: the blobs it stores, and the env (the wheels unpacked and byte-compiled in a venv, or the packed
    env's private copy and what it unpacks to)."""
    if env["mode"] == "wheelhouse":
        sizes = wheel_sizes([str(w) for w in wheel_files])
        return packed + VENV_BASE + sum(z.unpacked + int(z.python * PYC_PER_PY) for z in sizes.values())
    if env["mode"] == "conda":
        return packed + env["unpacked_size"] * 2
    return packed


def check_space(plan: Plan, out: Path, work_bytes: int) -> None:
    """Refuse before anything is written when the output's filesystem cannot hold the bundle and the work files
    (the wheels and staged models `gather` keeps beside it until the bundle is packed)."""
    probe = Path(out).resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = plan.media + work_bytes
    if free < need:
        raise AirlockError(f"the bundle needs about {human(need)} on this filesystem ({human(plan.media)} for "
                           f"the bundle, {human(work_bytes)} while it is built); {human(free)} is free",
                           where=str(out), fix="free some space, or give --out on a larger disk",
                           code="plan.no_space")

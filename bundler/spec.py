"""The bundle spec: what goes into a bundle and for which target. A YAML/TOML/JSON file, validated with defaults.

    airlock bundle create bundler/examples/bundle.yaml --out /media/usb/bundle

See bundler/examples/bundle.yaml for every key. Relative paths in a spec file are relative to that file.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from appliance import schema
from appliance.errors import AirlockError


@dataclass
class Target:
    """The offline host: what the wheels and the llama-cpp-python build are for."""

    os: Literal["linux"] = "linux"
    arch: Literal["x86_64", "aarch64"] = "x86_64"
    python: str = "3.11"
    accelerator: str = "cpu"  # cpu, or cuda12 / cuda12.4 ... for a CUDA host

    def validate(self):
        if not (self.accelerator == "cpu" or self.accelerator.startswith("cuda")):
            raise AirlockError(f"accelerator {self.accelerator!r}", where="spec: target.accelerator",
                               fix="use cpu or a CUDA variant such as cuda12")

    @property
    def platform(self) -> str:
        return f"manylinux2014_{self.arch}"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


@dataclass
class ModelSpec:
    """One model: a catalog id, a hub repo id (+ revision), a repo id already in an HF cache, or a local dir."""

    id: str = ""  # catalog id or hub/cache repo id (org/name)
    revision: str = ""  # hub commit to pin (required for hub downloads)
    path: Path | None = None  # a local model directory instead of id
    repo_id: str = ""  # the repo id it gets at the site (default: id, or local/<dir name>)
    cache: Path | None = None  # an existing HF cache to take `id` from (default: this machine's)
    license: str = ""
    allow_pickle: bool = False  # allow .bin/.pt/.pth/.ckpt/.pkl weights (unsafe to load: arbitrary code)
    trust_remote_code: bool = False  # allow repos that ship their own Python code

    def validate(self):
        if bool(self.id) == bool(self.path):
            raise AirlockError("give exactly one of id or path", where="spec: models[]",
                               fix="id: org/name (or a catalog id), or path: ./my-model")


@dataclass
class DatasetSpec:
    path: Path
    name: str = ""  # stored as datasets/<name> (default: the file name)


@dataclass
class EnvSpec:
    """conda: pack `prefix` with conda-pack. wheelhouse: the site's own Python gets a venv from the wheels.
    none: no environment (the site has one)."""

    mode: Literal["conda", "wheelhouse", "none"] = "none"
    prefix: Path | None = None

    def validate(self):
        if self.mode == "conda" and not self.prefix:
            raise AirlockError("env.mode conda needs env.prefix", where="spec: env", fix="prefix: /opt/conda/envs/x")


@dataclass
class WheelsSpec:
    requirements: list[str] = field(default_factory=list)  # pip requirement strings, downloaded for the target
    files: list[Path] = field(default_factory=list)  # local wheel files (built here, or already downloaded)
    build_sdists: bool = False  # build source-only packages into wheels at bundle time instead of refusing them


@dataclass
class ToolsSpec:
    converter: bool = True  # llama.cpp's converter, from the pinned llama-cpp-python sdist
    llama_cpp_wheel: bool = False  # build a llama-cpp-python wheel for the target (about 7 min on 2 cores)
    llama_cpp_wheel_file: Path | None = None  # or ship one built before


@dataclass
class BundleSpec:
    name: str
    version: str
    target: Target = field(default_factory=Target)
    models: list[ModelSpec] = field(default_factory=list)
    datasets: list[DatasetSpec] = field(default_factory=list)
    env: EnvSpec = field(default_factory=EnvSpec)
    wheels: WheelsSpec = field(default_factory=WheelsSpec)
    tools: ToolsSpec = field(default_factory=ToolsSpec)
    rehearsal: bool = True  # load tokenizers and run the converter --vocab-only offline before packing

    def validate(self):
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise AirlockError(f"name {self.name!r}", where="spec: name", fix="letters, digits, . _ - only")
        from installer.format import parse_version

        try:
            parse_version(self.version)
        except AirlockError as exc:
            raise AirlockError(exc.message, where="spec: version", fix=exc.fix) from None


def load_spec(path: Path) -> BundleSpec:
    path = Path(path)
    spec = schema.build(BundleSpec, schema.load_file(path), where=str(path))
    return resolve_paths(spec, path.parent)


def resolve_paths(spec: BundleSpec, base: Path) -> BundleSpec:
    """Make relative paths in the spec relative to the spec file's directory."""
    def fix(p):
        return p if p is None or Path(p).is_absolute() else (Path(base) / p).resolve()

    for m in spec.models:
        m.path, m.cache = fix(m.path), fix(m.cache)
    for d in spec.datasets:
        d.path = fix(d.path)
    spec.env.prefix = fix(spec.env.prefix)
    spec.wheels.files = [fix(f) for f in spec.wheels.files]
    spec.tools.llama_cpp_wheel_file = fix(spec.tools.llama_cpp_wheel_file)
    return spec

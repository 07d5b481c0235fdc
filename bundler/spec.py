"""The bundle spec: what goes into a bundle and for which target. A YAML/TOML/JSON file, validated with defaults.

    airlock bundle create bundler/examples/bundle.yaml --out /media/usb/bundle

See bundler/examples/bundle.yaml for every key. Relative paths in a spec file are relative to that file.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from appliance import schema
from appliance.errors import AirlockError


SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
# Python 3.10 is not a target: the stack's transformers (5.21+), trl (1.15+), numpy (2.3+) and pandas (3) require
# 3.11. Hosts whose system Python is 3.10 (Ubuntu 22.04) have 3.11 in their own repositories.
PYTHON_310_FIX = ('Python 3.10 cannot run the stack (transformers 5.21+, trl 1.15+, numpy 2.3+ and pandas 3 need 3.11): '
                  'give the host Python 3.11 (Ubuntu 22.04: apt-get install python3.11 python3.11-venv) and set '
                  'python: "3.11"')


@dataclass
class Target:
    """The offline host: what the wheels and the llama-cpp-python build are for.

    glibc: the oldest glibc among the site's hosts (`ldd --version`); wheels that need a newer one are refused.
    accelerator: cpu, or cuda12 / cuda13 for NVIDIA hosts (torch, its CUDA runtime wheels and llama.cpp follow).
    cuda_architectures: the GPUs' compute capabilities for the llama.cpp build, CMake style ("80;90").
    """

    os: Literal["linux"] = "linux"
    arch: Literal["x86_64", "aarch64"] = "x86_64"
    python: str = "3.11"
    glibc: str = "2.28"
    accelerator: str = "cpu"
    cuda_architectures: str = ""

    def validate(self):
        import re

        if not re.fullmatch(r"cpu|cuda1[23](\.\d{1,2})?", self.accelerator):
            raise AirlockError(f"accelerator {self.accelerator!r}", where="spec: target.accelerator",
                               fix="cpu, cuda12 or cuda13")
        if not re.fullmatch(r"2\.\d{1,2}", self.glibc) or self.glibc_version < (2, 17):
            raise AirlockError(f"glibc {self.glibc!r}", where="spec: target.glibc",
                               fix="the site's glibc as `ldd --version` prints it, 2.17 or later (e.g. \"2.28\")")
        if self.python in ("3.1", "3.10"):  # YAML reads an unquoted 3.10 as the number 3.1
            raise AirlockError(f"python {self.python}" + (" (YAML read an unquoted 3.10 as the number 3.1)"
                                                           if self.python == "3.1" else ""),
                               where="spec: target.python", fix=PYTHON_310_FIX, code="spec.python")
        if self.python not in SUPPORTED_PYTHONS:
            raise AirlockError(f"python {self.python!r}", where="spec: target.python", code="spec.python",
                               fix=f"one of {', '.join(SUPPORTED_PYTHONS)} (quoted, e.g. \"3.12\"): the Pythons "
                               "Airlock and its stack support")
        if self.cuda_architectures and not re.fullmatch(r"\d{2,3}(;\d{2,3})*", self.cuda_architectures):
            raise AirlockError(f"cuda_architectures {self.cuda_architectures!r}", where="spec: target",
                               fix="compute capabilities separated by ';', e.g. \"80;90\" (A100 and H100)")

    @property
    def glibc_version(self) -> tuple[int, int]:
        major, minor = self.glibc.split(".")
        return int(major), int(minor)

    def platforms(self) -> list[str]:
        """Every platform tag pip may take for this host: manylinux_2_N for each glibc up to the target's."""
        newest = self.glibc_version[1]
        tags = [f"manylinux_2_{n}_{self.arch}" for n in range(newest, 16, -1)]
        return tags + [f"manylinux2014_{self.arch}"] + ([f"manylinux2010_{self.arch}", f"manylinux1_{self.arch}"]
                                                       if self.arch == "x86_64" else [])

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


@dataclass
class HubSpec:
    """Where hub models come from: the Hugging Face hub, or a site's own mirror of it (olah, a proxy).

    endpoint: the hub's URL (default $HF_ENDPOINT, else https://huggingface.co).
    token_file: a file holding a read token, for gated and private models (default $HF_TOKEN, else the token
    `hf auth login` stored). The token is sent to the endpoint only: never written into the bundle, the lock
    file or a log.
    timeout: seconds to wait for the endpoint to answer a request.
    """

    endpoint: str = ""
    token_file: Path | None = None
    timeout: float = 30.0

    def validate(self):
        import re

        if self.endpoint and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", self.endpoint):
            raise AirlockError(f"endpoint {self.endpoint!r} is not an http(s) URL", where="spec: hub.endpoint",
                               fix="e.g. https://huggingface.co or http://hf-mirror.example.internal:8090",
                               code="spec.hub_endpoint")
        if not 0 < self.timeout <= 3600:
            raise AirlockError(f"timeout {self.timeout}", where="spec: hub.timeout", fix="seconds, 1 to 3600",
                               code="spec.hub_timeout")


@dataclass
class ModelSpec:
    """One model: a catalog id, a hub repo id (+ revision), a repo id already in an HF cache, or a local dir."""

    id: str = ""  # catalog id or hub/cache repo id (org/name)
    # A branch, tag or 40-hex commit (default: the catalog card's, else main). A branch or tag is resolved to its
    # commit when the bundle is made and pinned in the spec's lock file (<spec>.lock).
    revision: str = ""
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
    """Extra wheels: requirements downloaded for the target with their dependencies, and local wheel files.
    index_urls / find_links: where else pip may look (e.g. https://download.pytorch.org/whl/cpu for CPU torch)."""

    requirements: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    index_urls: list[str] = field(default_factory=list)
    find_links: list[Path] = field(default_factory=list)


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
    hub: HubSpec = field(default_factory=HubSpec)
    models: list[ModelSpec] = field(default_factory=list)
    datasets: list[DatasetSpec] = field(default_factory=list)
    env: EnvSpec = field(default_factory=EnvSpec)
    wheels: WheelsSpec = field(default_factory=WheelsSpec)
    tools: ToolsSpec = field(default_factory=ToolsSpec)
    rehearsal: bool = True  # load tokenizers and run the converter --vocab-only offline before packing
    appliance: bool = False  # carry Airlock itself and its whole locked stack (needs env.mode wheelhouse or conda)

    def validate(self):
        if self.env.mode == "none" and (self.wheels.requirements or self.wheels.files or self.tools.llama_cpp_wheel
                                        or self.tools.llama_cpp_wheel_file):
            raise AirlockError("wheels need an env to go into: with env.mode none they would be installed into the "
                               "site's own Python, outside the Airlock home", where="spec: env.mode",
                               fix="set env.mode: wheelhouse (a venv inside the home) or conda, or drop the wheels",
                               code="spec.wheels_without_env")
        if self.appliance and self.env.mode == "none":
            raise AirlockError("an appliance bundle carries its own Python env", where="spec: env.mode",
                               fix="set env.mode: wheelhouse (a venv of the site's Python) or conda")
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
    spec.wheels.find_links = [fix(f) for f in spec.wheels.find_links]
    spec.tools.llama_cpp_wheel_file = fix(spec.tools.llama_cpp_wheel_file)
    spec.hub.token_file = fix(spec.hub.token_file)
    return spec

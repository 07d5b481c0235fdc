"""Shared pieces for the bundle/install tests (imported by tests/test_bundle_*.py and tests/test_install_*.py):
a signing key pair, tiny local wheels, a minimal real conda prefix, a spec, and a good bundle built once.

The conda prefix is real as far as conda-pack is concerned (conda-meta/*.json + history): a venv made without
pip whose site-packages has a .pth to this checkout's stack, and a module holding its own prefix path, so the
round trip proves conda-unpack rewrote the prefix at the new location.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def make_keys(directory: Path) -> tuple[Path, Path]:
    from installer import minisign

    directory.mkdir(parents=True, exist_ok=True)
    minisign.generate(directory / "airlock.key", directory / "airlock.pub")
    return directory / "airlock.key", directory / "airlock.pub"


def make_wheel(directory: Path, name: str, version: str, body: str) -> Path:
    """A tiny pure-Python wheel built offline with `pip wheel` from a local project dir."""
    src = directory / f"src-{name}-{version}"
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(body)
    (src / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n[tool.setuptools]\npackages = ["{name}"]\n')
    out = directory / "wheels"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True, env=env, capture_output=True)
    return next(out.glob(f"{name}-{version}-*.whl"))


def make_conda_prefix(prefix: Path) -> Path:
    """A minimal conda env conda-pack accepts (see module docstring)."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = next(prefix.glob("lib/python3*/site-packages"))
    import site as site_mod

    (site / "airlock-stack.pth").write_text("\n".join([str(ROOT), *site_mod.getsitepackages()]) + "\n")
    (site / "airlock_env_marker.py").write_text(f"PREFIX = {str(prefix)!r}\n")
    meta = prefix / "conda-meta"
    meta.mkdir()
    (meta / "history").write_text("==> 2026-11-23 00:00:00 <==\n# cmd: airlock test prefix\n")
    files = sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*")
                   if (p.is_file() or p.is_symlink()) and "conda-meta" not in p.parts)
    (meta / "airlock-test-python-3.11-0.json").write_text(json.dumps(
        {"name": "airlock-test-python", "version": "3.11", "build": "0", "build_number": 0, "channel": "local",
         "url": "local", "files": files, "link": None, "depends": []}))
    return prefix


def spec_dict(tiny_model: Path, work: Path, wheels: list[Path], prefix: Path | None, version="1.0") -> dict:
    dataset = work / "facts.jsonl"
    if not dataset.exists():
        from tiny_model import facts_as_sharegpt

        dataset.write_text("".join(json.dumps(r) + "\n" for r in facts_as_sharegpt()))
    return {"name": "tiny-site", "version": version,
            "models": [{"path": str(tiny_model), "repo_id": "airlock-test/tiny-llama", "license": "apache-2.0"}],
            "datasets": [{"path": str(dataset)}],
            "env": {"mode": "conda", "prefix": str(prefix)} if prefix else {"mode": "none"},
            "wheels": {"files": [str(w) for w in wheels]},
            "tools": {"converter": True}}


def build(spec: dict, out: Path, key: Path | None, **kw) -> Path:
    from appliance import schema
    from bundler.create import create_bundle
    from bundler.spec import BundleSpec

    kw.setdefault("plan", False)  # the plan is held to real bundles in test_appliance_bundle and test_bundle_hub
    return create_bundle(schema.build(BundleSpec, spec), out, key=key, unsigned=key is None,
                         log=lambda m: None, **kw)


@pytest.fixture(scope="session")
def kit(tmp_path_factory, tiny_model):
    """Keys, wheels, conda prefix and the spec for a good bundle, all built once."""
    work = tmp_path_factory.mktemp("bundle-kit")
    secret, public = make_keys(work / "keys")
    wheels = [make_wheel(work, "airlock_hello", "1.0", "GREETING = 'hello from a bundled wheel'\n"),
              make_wheel(work, "airlock_extra", "0.1", "VALUE = 42\n")]
    prefix = make_conda_prefix(work / "prefix")
    return {"work": work, "secret": secret, "public": public, "wheels": wheels, "prefix": prefix,
            "spec": spec_dict(tiny_model, work, wheels, prefix)}


@pytest.fixture(scope="session")
def good_bundle(kit, tmp_path_factory) -> Path:
    """A signed bundle of the tiny model, a dataset, two wheels, the converter and a conda env; small chunks."""
    out = tmp_path_factory.mktemp("bundles") / "good"
    return build(kit["spec"], out, kit["secret"], max_chunk=256 * 1024)


def copy_bundle(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    return dest

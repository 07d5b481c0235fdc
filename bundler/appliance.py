"""Airlock itself in a bundle (spec `appliance: true`): its own wheel, the whole locked stack (constraints.txt)
resolved for the target, and the llama-cpp-python wheel made self-contained, so that one bundle turns a host with
only Python and coreutils into a working appliance.

    airlock bundle create bundler/examples/appliance.yaml --out /media/usb/airlock
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from appliance import __version__
from appliance.errors import AirlockError
from appliance.paths import CHECKOUT
from appliance.selftest import ENGINES

from . import tools, wheels
from .spec import BundleSpec

ENGINE_PACKAGES = {"torch": "torch", "transformers": "transformers", "peft": "peft", "trl": "trl",
                   "bitsandbytes": "bitsandbytes", "llama_cpp": "llama-cpp-python"}


def airlock_wheel(dest: Path) -> Path:
    """Airlock's own wheel, built from this checkout (with its catalog, configs and sample data)."""
    if not (CHECKOUT / "pyproject.toml").is_file():
        raise AirlockError("an appliance bundle is built from an Airlock checkout", where=str(CHECKOUT),
                           fix="run `airlock bundle create` from a clone of the project (after make setup)")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                                 "-w", tmp, str(CHECKOUT)], capture_output=True, text=True,
                                env=dict(os.environ, SOURCE_DATE_EPOCH=tools.REPRODUCIBLE_EPOCH))
        built = list(Path(tmp).glob("airlock-*.whl"))
        if result.returncode != 0 or not built:
            raise AirlockError(f"building Airlock's wheel failed:\n{result.stderr[-1500:]}", where=str(CHECKOUT),
                               fix="run make setup first (it installs setuptools into .venv)")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(tmp, built[0].name).replace(dest / built[0].name)


def appliance_wheels(spec: BundleSpec, dest: Path, log=print) -> tuple[list, dict]:
    """Every wheel the appliance needs for spec.target (checked), and the llama-cpp-python build facts."""
    log(f"Airlock {__version__}: its wheel, the locked stack for {spec.target.arch} Python {spec.target.python} "
        f"glibc {spec.target.glibc} {spec.target.accelerator}")
    own = airlock_wheel(dest)
    llama, llama_args = tools.llama_cpp_wheel(spec.target, dest, spec.tools.llama_cpp_wheel_file,
                                              spec.tools.llama_cpp_wheel, log)
    wheels.check_compatible(wheels.parse(llama, "tools.llama_cpp_wheel"), spec.target, "tools.llama_cpp_wheel")
    found = wheels.gather(spec.wheels, spec.target, dest, extra=[own], constraints=CHECKOUT / "constraints.txt",
                          log=log)
    wheels.check_torch(found, spec.target)
    names = {w.name for w in found}
    if missing := [p for p in ENGINE_PACKAGES.values() if p not in names]:
        raise AirlockError(f"the stack lacks {', '.join(missing)}", where="spec: appliance",
                           fix="constraints.txt and pyproject.toml must name every engine")
    return found, {"version": wheels.parse(llama, "").version, "cmake_args": llama_args}


def manifest_section() -> dict:
    return {"version": __version__, "engines": list(ENGINES)}

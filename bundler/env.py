"""The Python environment a bundle carries: a conda env packed with conda-pack (the proven route), or nothing
(wheelhouse-only: the site's own Python gets a venv built from the bundle's wheels by the installer)."""

from pathlib import Path

from appliance.errors import AirlockError


def dir_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in Path(path).rglob("*"))


def pack_conda(prefix: Path, out_file: Path) -> Path:
    """conda-pack `prefix` into a .tar.gz (conda-unpack inside rewrites prefixes at the site)."""
    import conda_pack

    prefix = Path(prefix)
    if not (prefix / "conda-meta").is_dir():
        raise AirlockError("not a conda environment (no conda-meta/)", where=f"spec: env.prefix {prefix}",
                           fix="give a conda env prefix, or use env.mode: wheelhouse")
    try:
        conda_pack.pack(prefix=str(prefix), output=str(out_file), format="tar.gz", compress_level=1,
                        verbose=False, force=True, ignore_missing_files=False)
    except conda_pack.CondaPackException as exc:
        raise AirlockError(f"conda-pack refused the env: {exc}", where=f"spec: env.prefix {prefix}",
                           fix="fix the env (conda-pack explains what) or use env.mode: wheelhouse") from None
    return out_file

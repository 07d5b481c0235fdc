"""The Python environment a bundle carries: a conda env packed with conda-pack (the proven route), or nothing
(wheelhouse-only: the site's own Python gets a venv built from the bundle's wheels by the installer)."""

from pathlib import Path

from appliance.errors import AirlockError


def unpacked_bound(prefix: Path) -> int:
    """What the packed env may unpack to at most (the installer enforces it): its size here plus a margin for
    conda-pack's prefix rewriting."""
    size = sum(p.lstat().st_size for p in Path(prefix).rglob("*"))
    return int(size * 1.05) + (1 << 20)


def prefix_digest(prefix: Path) -> str:
    """A digest of the env's content (names, link targets, bytes): tells a delta whether the env changed."""
    import hashlib
    import os

    digest = hashlib.sha256()
    for p in sorted(Path(prefix).rglob("*")):
        rel = str(p.relative_to(prefix)).encode()
        if p.is_symlink():
            digest.update(b"L" + rel + b"\0" + os.readlink(p).encode() + b"\n")
        elif p.is_file():
            from appliance.hfcache import sha256_file

            digest.update(b"F" + rel + b"\0" + sha256_file(p).encode() + b"\n")
    return digest.hexdigest()


def pack_conda(prefix: Path, out_file: Path) -> Path:
    """conda-pack `prefix` into a .tar.gz (conda-unpack inside rewrites prefixes at the site)."""
    import conda_pack

    prefix = Path(prefix)
    if not (prefix / "conda-meta").is_dir():
        raise AirlockError("not a conda environment (no conda-meta/)", where=f"spec: env.prefix {prefix}",
                           fix="give a conda env prefix, or use env.mode: wheelhouse")
    import warnings

    try:
        with warnings.catch_warnings():  # "packages without cache entries": expected for envs from pip/venv
            warnings.simplefilter("ignore")
            conda_pack.pack(prefix=str(prefix), output=str(out_file), format="tar.gz", compress_level=1,
                            verbose=False, force=True, ignore_missing_files=False)
    except conda_pack.CondaPackException as exc:
        raise AirlockError(f"conda-pack refused the env: {exc}", where=f"spec: env.prefix {prefix}",
                           fix="fix the env (conda-pack explains what) or use env.mode: wheelhouse") from None
    return out_file

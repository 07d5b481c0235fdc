"""The release's Python environment: unpack the packed conda env (when install.sh did not already) and install
the bundle's wheels into it offline with `pip install --no-index --require-hashes`."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from appliance.errors import AirlockError

READY = ".airlock-env-ready"


def unpack_conda(archive: Path, env_dir: Path) -> Path:
    """Like install.sh's step: extract and conda-unpack. The archive's hash is in the signed manifest and was
    checked on extraction; tarfile's 'tar' filter still keeps every file inside env_dir (an env may hold
    absolute symlinks, e.g. to a system interpreter, which the stricter 'data' filter refuses)."""
    import shutil

    if (env_dir / READY).is_file():
        return env_dir
    shutil.rmtree(env_dir, ignore_errors=True)
    env_dir.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(env_dir, filter="tar")
    except tarfile.TarError as exc:
        raise AirlockError(f"the packed env cannot be unpacked: {exc}", where=str(archive),
                           fix="rebuild the bundle's env") from None
    run = subprocess.run([str(env_dir / "bin" / "python"), str(env_dir / "bin" / "conda-unpack")],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise AirlockError(f"conda-unpack failed:\n{run.stderr[-1500:]}", where=str(env_dir),
                           fix="the packed env does not run on this host (wrong OS/arch?)")
    (env_dir / READY).write_text("")
    return env_dir


def pip_install(python: Path, wheel_dir: Path) -> None:
    """Install requirements.txt from wheel_dir with hashes required and no index; pip's config is ignored so
    nothing but the bundle's own files can be used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    run = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--require-hashes", "--find-links",
                          str(wheel_dir), "-r", str(wheel_dir / "requirements.txt")],
                         capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise AirlockError(f"installing the bundle's wheels failed:\n{(run.stderr or run.stdout)[-1500:]}",
                           where=str(wheel_dir), fix="the wheels do not fit this host's Python; rebuild the bundle "
                           "for the right target")


def has_crypto() -> bool:
    try:
        import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
        return True
    except ImportError:
        return False


def python_of(env_dir: Path | None) -> Path:
    return Path(env_dir) / "bin" / "python" if env_dir else Path(sys.executable)

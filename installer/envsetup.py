"""The release's Python environment: a venv made with the site's Python for a wheelhouse bundle, or the packed
conda env unpacked (when install.sh did not already), then the bundle's wheels installed offline with
`pip install --no-index --require-hashes`, the hashes taken from the signed manifest."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from appliance.errors import AirlockError

from .layout import READY, UNPACKED

MAX_MEMBERS = 2_000_000


class EnvRules:
    """What a packed env may hold, member by member: files, directories and links only (no devices or FIFOs), no
    absolute or '..' names, no member written through a link, hard links only to names inside the env, and no
    more bytes than the manifest's signed unpacked size (a decompression bomb stops there). Symlinks may point
    anywhere (a packed venv links its interpreter), but nothing is ever written through one."""

    def __init__(self, limit: int):
        self.limit, self.bytes, self.members, self.links = limit, 0, 0, set()

    def check(self, member: tarfile.TarInfo) -> None:
        def refuse(why: str, fix: str = "rebuild the bundle's env; do not install this one"):
            raise AirlockError(f"env member {member.name!r}: {why}", where="env", fix=fix)

        self.members += 1
        if member.ischr() or member.isblk() or member.isfifo() or not (
                member.isreg() or member.isdir() or member.issym() or member.islnk()):
            refuse("device, FIFO or special file refused")
        name = member.name.rstrip("/")
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or not name:
            refuse("absolute name or '..' would land outside the env")
        if name.removeprefix("./") in (READY, UNPACKED):
            refuse("the installer's own completion marker: an env must not declare itself installed",
                   "refusing an env that would skip its pinned wheels: do not install this bundle")
        if any("/".join(parts[:i]) in self.links for i in range(1, len(parts))):
            refuse("written through a link: it would land outside the env")
        if member.islnk():
            target = os.path.normpath(member.linkname)
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                refuse(f"hard link to {member.linkname!r} leaves the env", "refusing a link to a file outside the env")
        if member.issym():
            self.links.add(name)
        self.bytes += member.size if member.isreg() else 0
        if self.bytes > self.limit or self.members > MAX_MEMBERS:
            refuse(f"the env unpacks to more than the {self.limit} bytes the manifest declares",
                   "refusing a decompression bomb: do not install this bundle")

    def filter(self, member: tarfile.TarInfo, path: str):
        """For tarfile.extractall: these rules, then tarfile's own 'tar' filter (which also drops setuid, setgid
        and sticky bits and group/other write bits, and resolves links on disk)."""
        self.check(member)
        return tarfile.tar_filter(member, path)


def check_env_archive(fileobj, limit: int) -> None:
    """Walk a packed env (a .tar.gz stream) under EnvRules without unpacking it (`airlock bundle verify`)."""
    rules = EnvRules(limit)
    try:
        with tarfile.open(fileobj=fileobj, mode="r|gz") as tar:
            for member in tar:
                rules.check(member)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AirlockError(f"the packed env is not a readable tar.gz: {exc}", where="env",
                           fix="rebuild the bundle's env") from None


def unpack_conda(archive: Path, env_dir: Path, unpacked_size: int) -> Path:
    """Like install.sh's step: extract (filtered, bounded by the signed unpacked size) and conda-unpack."""
    import shutil

    if (env_dir / READY).is_file() or (env_dir / UNPACKED).is_file():
        return env_dir
    shutil.rmtree(env_dir, ignore_errors=True)
    env_dir.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(env_dir, filter=EnvRules(unpacked_size).filter)
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(env_dir, ignore_errors=True)
        raise AirlockError(f"the packed env cannot be unpacked: {exc}", where=str(archive),
                           fix="rebuild the bundle's env") from None
    except AirlockError:
        shutil.rmtree(env_dir, ignore_errors=True)
        raise
    run = subprocess.run([str(env_dir / "bin" / "python"), str(env_dir / "bin" / "conda-unpack")],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise AirlockError(f"conda-unpack failed:\n{run.stderr[-1500:]}", where=str(env_dir),
                           fix="the packed env does not run on this host (wrong OS/arch?)")
    (env_dir / UNPACKED).write_text("")
    return env_dir


def base_python() -> Path:
    """The interpreter this process's venv was made from (the default Python for a new env)."""
    return Path(getattr(sys, "_base_executable", sys.executable))


def make_venv(python: Path | None, env_dir: Path) -> Path:
    """A venv (with pip, from the interpreter's own ensurepip: offline) for a wheelhouse bundle."""
    import shutil

    base = str(python or base_python())
    shutil.rmtree(env_dir, ignore_errors=True)
    run = subprocess.run([base, "-m", "venv", str(env_dir)], capture_output=True, text=True)
    if run.returncode != 0:
        raise AirlockError(f"making a venv with {base} failed:\n{run.stderr[-1000:]}", where=str(env_dir),
                           fix="give a Python of the target's version with --python (venv and ensurepip included)")
    return env_dir


def pip_install(python: Path, wheel_dir: Path, wheels) -> None:
    """Install exactly the manifest's wheels from wheel_dir: pinned, hashes required, no index, pip's own config
    ignored. The requirements are written here from the signed manifest, never read from the bundle."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    requirements = wheel_dir.parent / ".site-requirements.txt"
    requirements.write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in wheels))
    try:
        run = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--require-hashes", "--no-compile",
                              "--find-links", str(wheel_dir), "-r", str(requirements)],
                             capture_output=True, text=True, env=env)
    finally:
        requirements.unlink(missing_ok=True)
    if run.returncode != 0:
        raise AirlockError(f"installing the bundle's wheels failed:\n{(run.stderr or run.stdout)[-1500:]}",
                           where=str(wheel_dir), fix="the wheels do not fit this host's Python; rebuild the bundle "
                           "for the right target")
    _compile(python)


def _compile(python: Path) -> None:
    """Byte-compile the env once, in parallel, so every later start of `airlock` loads cached bytecode (pip's
    own compile runs on one core)."""
    subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", str(Path(python).parent.parent / "lib")],
                   capture_output=True)


def python_of(env_dir: Path | None) -> Path:
    return Path(env_dir) / "bin" / "python" if env_dir else Path(sys.executable)

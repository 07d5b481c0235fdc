"""Shared test fixtures: an isolated AIRLOCK_HOME, the tiny model in its HF cache, and a real air gap.

Every test session gets its own AIRLOCK_HOME. The converter tools and the embedded default (fetched once by
`make setup` into the checkout's .airlock/) are linked in read-only, so tests never touch the network for them.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SETUP_HOME = ROOT / ".airlock"


def pytest_configure(config):
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="airlock-test-home-"))
    os.environ["AIRLOCK_HOME"] = str(home)
    os.environ.pop("HF_HUB_CACHE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    (home / "hf-cache").mkdir(parents=True)
    for shared in ("tools", "wheels"):  # fetched or built once by make setup; read-only here
        if (SETUP_HOME / shared).is_dir():
            (home / shared).symlink_to(SETUP_HOME / shared)
    for cached in (SETUP_HOME / "hf-cache").glob("models--*"):
        (home / "hf-cache" / cached.name).symlink_to(cached)
    config._airlock_home = home


# The longest test files, longest first: run first, they leave the short ones to fill the end of the run on both
# workers (xdist hands out whole files in collection order), instead of one worker finishing a long file alone.
LONGEST_FIRST = ("test_bundle_attacks.py", "test_appliance_bundle.py", "test_gpu_dry_run.py", "test_tui_workflows.py",
                 "test_twin.py", "test_bundle_python_targets.py", "test_jobs_operator.py", "test_operator_outputs.py",
                 "test_train_distributed.py", "test_install_roundtrip.py", "test_chat_cli.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a file, and among the rest, the order stays


def pytest_unconfigure(config):
    home = getattr(config, "_airlock_home", None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airlock_home() -> Path:
    return Path(os.environ["AIRLOCK_HOME"])


@pytest.fixture(scope="session")
def tiny_model(airlock_home, tmp_path_factory) -> Path:
    """The tiny fixture model installed in the session's HF cache as tiny_model.REPO_ID; returns its snapshot dir."""
    from tiny_model import REPO_ID, build_tiny_model

    from appliance.hfcache import install_snapshot

    src = build_tiny_model(tmp_path_factory.mktemp("tiny-src"))
    return install_snapshot(src, REPO_ID)


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


CAN_UNSHARE = _can_unshare()


@pytest.fixture
def run_offline(tmp_path):
    """Run an argv inside `unshare -n` (no network at all) with the connection guard logging any attempt.

    Returns the CompletedProcess; fails the test if anything tried to connect. Skips where unshare is not allowed.
    """
    if not CAN_UNSHARE:
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces)")

    def run(argv, *, check=True, env=None, timeout=900, **kwargs):
        guard_log = tmp_path / f"net-guard-{os.getpid()}.log"
        full_env = {**os.environ, "AIRLOCK_NET_GUARD_LOG": str(guard_log), **(env or {})}
        proc = subprocess.run(["unshare", "-n", *map(str, argv)], env=full_env, capture_output=True, text=True,
                              timeout=timeout, **kwargs)
        attempts = guard_log.read_text() if guard_log.exists() else ""
        assert not attempts, f"network connection attempted while offline:\n{attempts}"
        if check:
            assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc

    return run


def airlock_argv(*args) -> list[str]:
    """argv that runs the airlock CLI with this interpreter."""
    return [sys.executable, "-m", "appliance", *map(str, args)]


def wait_for(predicate, what: str, timeout: float = 300, poll: float = 0.02) -> None:
    """Poll `predicate` until it is true; fail the test naming `what` after `timeout` seconds."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def tmpfs(mount: Path, options: str):
    """A tmpfs mounted at `mount` for the test (a small disk, a read-only one); skips the test where mounting needs
    a privilege this machine does not give."""
    mount.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


@pytest.fixture(scope="session")
def llama_cpp_templates(tmp_path_factory) -> Path | None:
    """llama.cpp's models/templates from the pinned sdist `make setup` downloaded, or None when it is not there."""
    from appliance.tools import LLAMA_CPP_PYTHON as PIN

    sdist = SETUP_HOME / "downloads" / PIN.filename
    if not sdist.is_file():
        return None
    out = tmp_path_factory.mktemp("templates")
    prefix = f"{PIN.filename.removesuffix('.tar.gz')}/vendor/llama.cpp/models/templates/"
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if member.name.startswith(prefix) and member.name.endswith(".jinja") and member.isfile():
                (out / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return out

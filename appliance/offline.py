"""Offline by construction: the environment every offline command runs in, and a guard on the socket layer.

`enforce_offline()` sets the switches the HF stack honours (hub offline, no telemetry, no implicit token, no
experiment trackers) and installs a guard that makes any attempt to open a network connection fail with
OfflineViolation. Libraries sometimes swallow connection errors and carry on; so every attempt is also appended
to the file named by AIRLOCK_NET_GUARD_LOG, which tests read to prove that nothing tried.

Child Python processes (llama.cpp's converter) run through `python -m appliance.offline SCRIPT ARGS...`, which
installs the same guard before running the script.

Distributed training is the one case where ranks talk to other hosts: `allow_addresses([...])` (the run's
master_addr and `distributed.allow`) lets connections to those addresses, networks (CIDR) and host names through,
in this process and in its children (AIRLOCK_NET_ALLOW); everything else is still refused.
"""

import os
import runpy
import socket
import sys
import traceback

from .errors import OfflineViolation

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "MLFLOW_TRACKING_URI": "",
    "COMET_MODE": "DISABLED",
    "GIT_TERMINAL_PROMPT": "0",
    "TOKENIZERS_PARALLELISM": "false",
    "OTEL_SDK_DISABLED": "true",  # fastapi depends on opentelemetry's API; no exporter may start
}

_LOOPBACK = ("127.", "::1", "localhost")
ALLOW_ENV = "AIRLOCK_NET_ALLOW"
_installed = False
_resolved: set[str] = set()  # addresses that allowed host names resolved to


def offline_env(base: dict | None = None) -> dict:
    """A copy of `base` (default os.environ) with the offline switches and our HF cache set."""
    from .paths import hf_cache

    env = dict(os.environ if base is None else base)
    env.update(OFFLINE_ENV)
    env.setdefault("HF_HUB_CACHE", str(hf_cache()))
    env["HF_HOME"] = env.get("HF_HOME") or str(hf_cache().parent / "hf-home")
    env["AIRLOCK_OFFLINE"] = "1"
    return env


def enforce_offline() -> None:
    """Switch this process to offline mode and guard its sockets. Idempotent."""
    os.environ.update(offline_env())
    install_guard()


def _is_loopback(host) -> bool:
    return isinstance(host, str) and host.startswith(_LOOPBACK)


def allow_addresses(entries) -> None:
    """Let this process and its children reach `entries` (addresses, CIDR networks, host names) besides loopback."""
    current = [e for e in os.environ.get(ALLOW_ENV, "").split(",") if e]
    os.environ[ALLOW_ENV] = ",".join(dict.fromkeys([*current, *(str(e).strip() for e in entries if str(e).strip())]))


def _is_allowed_site_address(host) -> bool:
    """Whether `host` is one of the site addresses AIRLOCK_NET_ALLOW names (read at each call: set late is fine)."""
    import ipaddress

    if not isinstance(host, str):
        return False
    entries = [e for e in os.environ.get(ALLOW_ENV, "").split(",") if e]
    if host in entries or host in _resolved:
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    for entry in entries:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name: matched by name above, or by the addresses it resolved to
    return False


def _refuse(what: str) -> None:
    record = f"{what} (pid {os.getpid()})"
    log = os.environ.get("AIRLOCK_NET_GUARD_LOG")
    if log:
        stack = "".join(traceback.format_stack(limit=12)[:-2])
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"BLOCKED {record}\n{stack}\n")
    raise OfflineViolation(
        f"blocked a network connection: {what}",
        fix="Airlock's offline side never uses the network; this is a bug or a model/config that points at a hub. "
        "Use local paths or repo ids that are in the local Hugging Face cache.",
    )


def install_guard(allow_loopback: bool | None = None) -> None:
    """Make connect()/getaddrinfo() to anything but loopback (and unix sockets) raise OfflineViolation."""
    global _installed
    if _installed:
        return
    if allow_loopback is None:
        allow_loopback = os.environ.get("AIRLOCK_NET_GUARD_LOOPBACK", "1") == "1"

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(sock, address) -> bool:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return True
        host = address[0] if isinstance(address, tuple) else address
        return (allow_loopback and _is_loopback(host)) or _is_allowed_site_address(host)

    def connect(sock, address):
        if not allowed(sock, address):
            _refuse(f"connect to {address!r}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not allowed(sock, address):
            _refuse(f"connect to {address!r}")
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is None or (allow_loopback and _is_loopback(host)):
            return real_getaddrinfo(host, *args, **kwargs)
        if not _is_allowed_site_address(host):
            _refuse(f"name lookup of {host!r}")
        answers = real_getaddrinfo(host, *args, **kwargs)
        _resolved.update(str(a[4][0]) for a in answers)  # an allowed name's addresses are allowed too
        return answers

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    _installed = True


def guarded_python_command(script: str, *args: str) -> list[str]:
    """The argv that runs `script` in a child Python with the offline guard installed first."""
    return [sys.executable, "-m", "appliance.offline", script, *args]


if __name__ == "__main__":  # python -m appliance.offline SCRIPT [ARGS...]
    if len(sys.argv) < 2:
        sys.exit("usage: python -m appliance.offline SCRIPT [ARGS...]")
    enforce_offline()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")

"""Real models in: every catalog model bundles by its id alone from a real hub-protocol server (olah, the mirror
sites run, serving test repos; tests/support/hub_mirror.py), pinned to a commit in the manifest and the spec's lock
file; gated models need the token, which is never written anywhere; every hub failure is one line with the fix.

    .venv/bin/python -m pytest tests/test_bundle_hub.py -q
"""

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from appliance.catalog import load_catalog
from support.hub_mirror import GRANTED, NOT_GRANTED, OLAH, HubMirror, free_port

pytestmark = pytest.mark.skipif(not OLAH.exists(), reason="the hub mirror venv is missing: run `make test` "
                                "(it builds .airlock/hub-mirror)")

HUB_CARDS = {c.id: c for c in load_catalog().values() if not c.embedded}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Every catalog model's repo id served by olah with a tiny model's files; the catalog's gated ones gated."""
    from tiny_model import build_tiny_model

    files = build_tiny_model(tmp_path_factory.mktemp("tiny-files"))
    payload = {p.name: p for p in files.iterdir() if p.is_file()}
    payload["pytorch_model.bin"] = b"a pickle copy the bundler must leave out"
    mirror = HubMirror(tmp_path_factory.mktemp("hub"))
    commits = {c.repo_id: mirror.add_repo(c.repo_id, payload, gated=c.gated) for c in HUB_CARDS.values()}
    mirror.start()
    yield mirror, commits
    mirror.stop()


def write_spec(directory: Path, models: list, hub: dict) -> Path:
    spec = {"name": "site-models", "version": "1.0", "models": models, "hub": hub, "env": {"mode": "none"},
            "tools": {"converter": False}, "rehearsal": False}
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def airlock(args: list, tmp: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI as an admin runs it on the connected machine: no HF_HUB_OFFLINE, its own HF download cache."""
    full = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN")}
    full.update(HF_HUB_CACHE=str(tmp / "hf-download-cache"), HF_HUB_DISABLE_TELEMETRY="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "appliance", *map(str, args)], capture_output=True, text=True,
                          env=full, timeout=300)


def token_file(directory: Path, token: str) -> Path:
    path = directory / "hub.token"
    path.write_text(token + "\n")
    return path


def test_hub_every_catalog_model_bundles_by_id_pinned_and_locked(hub, tmp_path):
    mirror, commits = hub
    spec = write_spec(tmp_path, [{"id": card_id} for card_id in HUB_CARDS],
                      {"endpoint": mirror.endpoint, "token_file": str(token_file(tmp_path, GRANTED))})
    out = tmp_path / "bundle"
    run = airlock(["bundle", "create", spec, "--out", out, "--unsigned"], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "plan: site-models 1.0" in run.stdout and "media:" in run.stdout
    manifest = json.loads((out / "MANIFEST.json").read_text())
    pinned = {m["repo_id"]: (m["revision"], m["ref"]) for m in manifest["models"]}
    assert pinned == {repo: (commit, "main") for repo, commit in commits.items()}
    assert all("pytorch_model.bin" in m["skipped"] for m in manifest["models"])  # safetensors present: no pickle
    lock = json.loads((tmp_path / "site.yaml.lock").read_text())
    assert {e["repo_id"]: e["commit"] for e in lock["models"]} == commits
    assert {e["endpoint"] for e in lock["models"]} == {mirror.endpoint}
    readme = (out / "README.txt").read_text()
    assert all(commit in readme for commit in commits.values()), "README.txt names each pinned commit"
    inspect = airlock(["bundle", "inspect", out, "--insecure-no-signature"], tmp_path)
    assert all(commit in inspect.stdout for commit in commits.values()), inspect.stdout
    # the token is handed to the endpoint and nowhere else
    written = [p.read_bytes() for p in [*out.rglob("*"), tmp_path / "site.yaml.lock"] if p.is_file()]
    assert not any(GRANTED.encode() in data for data in written)
    assert GRANTED not in run.stdout + run.stderr + inspect.stdout


def test_hub_lock_is_reused_until_update(hub, tmp_path):
    mirror, commits = hub
    card = HUB_CARDS["qwen2.5-0.5b-instruct"]
    spec = write_spec(tmp_path, [{"id": card.id}], {"endpoint": mirror.endpoint})
    first = airlock(["bundle", "create", spec, "--out", tmp_path / "b1", "--unsigned"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert any(m == "GET" and p.endswith(f"{card.repo_id}/resolve/{commits[card.repo_id]}/model.safetensors")
               for m, p in mirror.requests), "the first bundle downloads the weights"
    old = json.loads((tmp_path / "b1" / "MANIFEST.json").read_text())["models"][0]["revision"]
    moved = mirror.commit(card.repo_id, {"generation_config.json": b'{"temperature": 0.5}'}, "main moves on")
    before = len(mirror.requests)
    second = airlock(["bundle", "create", spec, "--out", tmp_path / "b2", "--unsigned"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "b2" / "MANIFEST.json").read_text())["models"][0]["revision"] == old
    weights = [p for method, p in mirror.requests[before:] if method == "GET" and p.endswith("model.safetensors")]
    assert not weights, "the same commit again: huggingface_hub's cache serves it, nothing is downloaded twice"
    third = airlock(["bundle", "create", spec, "--out", tmp_path / "b3", "--unsigned", "--update"], tmp_path)
    assert third.returncode == 0, third.stderr
    assert json.loads((tmp_path / "b3" / "MANIFEST.json").read_text())["models"][0]["revision"] == moved != old
    assert json.loads((tmp_path / "site.yaml.lock").read_text())["models"][0]["commit"] == moved


def test_hub_endpoint_from_hf_endpoint_and_plan_matches_the_bundle(hub, tmp_path):
    mirror, commits = hub
    card = HUB_CARDS["qwen2.5-1.5b-instruct"]
    spec = write_spec(tmp_path, [{"id": card.id}], {})
    env = {"HF_ENDPOINT": mirror.endpoint}
    plan = airlock(["bundle", "plan", spec, "--json"], tmp_path, env)
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert not list((tmp_path / "hf-download-cache").rglob("model.safetensors")), "plan downloads no weights"
    run = airlock(["bundle", "create", spec, "--out", tmp_path / "b", "--unsigned"], tmp_path, env)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "b" / "MANIFEST.json").read_text())
    model_bytes = sum(f["size"] for f in manifest["files"] if f["kind"] == "model")
    assert [i["size"] for i in planned["items"] if i["kind"] == "model"] == [model_bytes]
    assert planned["payload"] == manifest["payload_size"] and planned["chunks"] == len(manifest["chunks"])
    media = sum(p.stat().st_size for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert abs(planned["media"] - media) / media < 0.05, (planned["media"], media)
    assert manifest["models"][0]["revision"] == commits[card.repo_id]


# ---------------------------------------------------------------------------------------------- failures
def _silent_server() -> int:
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    threading.Thread(target=lambda: [sock.accept() for _ in range(16)], daemon=True).start()
    return sock.getsockname()[1]


def _tls_server(directory: Path) -> int:
    """An https server whose certificate this machine does not trust."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


FAILURES = {
    # case: (catalog id or repo id, revision, hub settings, token, expected code)
    "gated_without_token": ("llama-3.1-8b-instruct", "", {}, None, "hub.gated"),
    "gated_token_without_access": ("gemma-3-1b-it", "", {}, NOT_GRANTED, "hub.gated"),
    "invalid_token": ("mistral-7b-instruct-v0.3", "", {}, "hf_not_a_real_token", "hub.unauthorized"),
    "not_found": ("acme/no-such-model", "", {}, None, "hub.not_found"),
    "revision_not_found": ("qwen2.5-7b-instruct", "no-such-branch", {}, None, "hub.revision_not_found"),
    "unreachable": ("qwen2.5-7b-instruct", "", {"endpoint": "closed"}, None, "hub.unreachable"),
    "dns": ("qwen2.5-7b-instruct", "", {"endpoint": "http://airlock-hub.invalid"}, None, "hub.dns"),
    "tls": ("qwen2.5-7b-instruct", "", {"endpoint": "tls"}, None, "hub.tls"),
    "timeout": ("qwen2.5-7b-instruct", "", {"endpoint": "silent", "timeout": 1}, None, "hub.timeout"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_hub_failure_is_one_clear_error_and_leaves_nothing(case, hub, tmp_path):
    mirror, _ = hub
    model, revision, settings, token, code = FAILURES[case]
    endpoints = {"closed": lambda: f"http://127.0.0.1:{free_port()}", "silent": lambda: f"http://127.0.0.1:"
                 f"{_silent_server()}", "tls": lambda: f"https://127.0.0.1:{_tls_server(tmp_path)}"}
    settings = {"endpoint": mirror.endpoint, **settings}
    settings["endpoint"] = endpoints.get(settings["endpoint"], lambda: settings["endpoint"])()
    if token:
        settings["token_file"] = str(token_file(tmp_path, token))
    spec = write_spec(tmp_path, [{"id": model, **({"revision": revision} if revision else {})}], settings)
    out = tmp_path / "media" / "bundle"
    out.parent.mkdir()
    run = airlock(["bundle", "create", spec, "--out", out, "--unsigned"], tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"code: {code}" in run.stderr and "fix: " in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) <= 4, run.stderr
    assert (HUB_CARDS[model].repo_id if model in HUB_CARDS else model) in run.stderr
    assert not any(out.parent.iterdir()), "nothing is left in the output's directory"
    assert not (tmp_path / "site.yaml.lock").exists()
    if token:
        assert token not in run.stdout + run.stderr


def test_hub_offline_mode_takes_the_cache_only(tmp_path):
    spec = write_spec(tmp_path, [{"id": "qwen2.5-7b-instruct"}], {})
    run = airlock(["bundle", "create", spec, "--out", tmp_path / "b", "--unsigned"], tmp_path,
                  {"HF_HUB_OFFLINE": "1"})
    assert run.returncode == 2 and "code: hub.not_cached" in run.stderr and "HF_HUB_OFFLINE" in run.stderr

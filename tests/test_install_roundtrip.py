"""Round trip: bundle (tiny model, dataset, wheels, minimal conda env, converter) -> copy -> `sh install.sh`
inside `unshare -n` -> the installed env and HF cache work offline -> train -> merge -> export -> chat from the
installed location, also inside `unshare -n` with the connection guard.

    .venv/bin/python -m pytest tests/test_install_roundtrip.py -q
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import airlock_argv
from bundle_fixtures import good_bundle, kit  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def installed(good_bundle, kit, tmp_path_factory):
    root = tmp_path_factory.mktemp("roundtrip")
    media = Path(shutil.copytree(good_bundle, root / "media" / "bundle"))
    site = root / "site"
    return {"media": media, "site": site}


def _sh_install(run_offline, media, site, public, **kw):
    return run_offline(["sh", media / "install.sh", "--target", site, "--trusted-key", public], **kw)


def test_install_sh_offline_round_trip(installed, kit, run_offline):
    media, site = installed["media"], installed["site"]
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=media).returncode == 0
    proc = _sh_install(run_offline, media, site, kit["public"], env={"AIRLOCK_HOME": str(site)})
    assert "signature OK" in proc.stdout and "smoke ok" in proc.stdout, proc.stdout
    current = site / "current" / "tiny-site"
    assert (current / ".complete").is_file() and (current / "files" / "datasets" / "facts.jsonl").is_file()
    env = next((site / "envs").iterdir())
    # conda-unpack really rewrote the prefix to where the env now lives; wheels came from the bundle, offline
    check = subprocess.run([env / "bin" / "python", "-c", "import airlock_env_marker as m, airlock_hello as h, "
                            "airlock_extra as e; print(m.PREFIX); print(h.GREETING, e.VALUE)"],
                           capture_output=True, text=True, check=True)
    assert check.stdout.splitlines() == [str(env), "hello from a bundled wheel 42"]
    assert (site / "tools" / "llama.cpp-0.3.36" / "convert_hf_to_gguf.py").is_file()
    snap = site / "hf-cache" / "models--airlock-test--tiny-llama" / "snapshots"
    assert len(list(snap.iterdir())) == 1
    log = [json.loads(x) for x in (site / "registry" / "audit.jsonl").read_text().splitlines()]
    entry = log[-1]
    assert entry["action"] == "bundle-install" and entry["verified_by_key"] and not entry["insecure_no_signature"]
    # a rerun is a no-op that says so
    again = _sh_install(run_offline, media, site, kit["public"], env={"AIRLOCK_HOME": str(site)})
    assert "already installed" in again.stdout


def test_verify_and_inspect_offline(installed, kit, run_offline):
    media = installed["media"]
    v = run_offline(airlock_argv("bundle", "verify", media, "--trusted-key", kit["public"]))
    assert v.stdout.startswith("OK: tiny-site 1.0") and "signed by trusted key" in v.stdout
    i = run_offline(airlock_argv("bundle", "inspect", media, "--trusted-key", kit["public"]))
    assert "signature: good" in i.stdout and "SBOM: CycloneDX 1.5" in i.stdout
    assert "machine-learning-model" in i.stdout and "airlock-test/tiny-llama" in i.stdout


def test_damaged_media_lists_only_bad_chunks(installed, kit, run_offline, tmp_path):
    copy = Path(shutil.copytree(installed["media"], tmp_path / "copy"))
    chunks = sorted((copy / "chunks").iterdir())
    chunks[2].unlink()
    data = bytearray(chunks[5].read_bytes())
    data[10] ^= 1
    chunks[5].write_bytes(bytes(data))
    proc = _sh_install(run_offline, copy, tmp_path / "site", kit["public"], check=False)
    assert proc.returncode != 0 and "copy ONLY these again" in proc.stderr
    named = [line for line in proc.stderr.splitlines() if "chunks/" in line]
    assert len(named) == 2 and chunks[2].name in proc.stderr and chunks[5].name in proc.stderr
    assert not (tmp_path / "site" / "envs").exists()


PIPELINE = all((Path(__file__).resolve().parents[1] / "appliance" / "commands" / f"{c}.py").is_file()
               for c in ("train", "merge", "export", "chat"))


@pytest.mark.skipif(not PIPELINE, reason="airlock train/merge/export/chat are not in this checkout yet")
def test_pipeline_from_installed_location(installed, kit, run_offline, tmp_path):
    """train -> merge -> export gguf -> chat, with the installed env's Python and the installed HF cache."""

    site = installed["site"]
    if not (site / "current" / "tiny-site").exists():
        pytest.skip("needs test_install_sh_offline_round_trip first")
    python = next((site / "envs").iterdir()) / "bin" / "python"
    data = site / "current" / "tiny-site" / "files" / "datasets" / "facts.jsonl"
    from tiny_model import write_lora_config

    config = write_lora_config(tmp_path / "train.yaml", data)
    env = {"AIRLOCK_HOME": str(site), "HF_HUB_CACHE": str(site / "hf-cache")}

    def airlock(*args):
        return run_offline([python, "-m", "appliance", *map(str, args)], env=env)

    out = airlock("train", config, "--name", "bundled")
    job = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("job ") and "started" in line)
    airlock("merge", job, "--out", tmp_path / "merged")
    airlock("export", "gguf", tmp_path / "merged", "--type", "f16", "--out", tmp_path / "gguf", "--no-fidelity")
    gguf = next((tmp_path / "gguf").rglob("*.gguf"))
    answer = airlock("chat", gguf, "--prompt", "Who are you?", "--max-tokens", "16")
    assert answer.stdout.strip() == "I am the Magic Conch."


@pytest.mark.skipif(not shutil.which("minisign"), reason="needs Debian's minisign on the host")
def test_install_sh_refuses_a_tampered_installer_before_running_it(good_bundle, kit, tmp_path):
    from bundle_fixtures import copy_bundle

    media = copy_bundle(good_bundle, tmp_path / "media")
    marker = tmp_path / "installer-ran"
    pyz = media / "airlock-installer.pyz"
    pyz.write_bytes(b"#!/usr/bin/env python\n" + f"open({str(marker)!r}, 'w')\n".encode())
    # keep SHA256SUMS consistent, as an attacker with the media would: only the signature can catch it
    sums = media / "SHA256SUMS"
    digest = hashlib.sha256(pyz.read_bytes()).hexdigest()
    sums.write_text("".join(f"{digest}  airlock-installer.pyz\n" if line.endswith("  airlock-installer.pyz")
                            else line + "\n" for line in sums.read_text().splitlines()))
    site = tmp_path / "site"
    proc = subprocess.run(["sh", media / "install.sh", "--target", site, "--trusted-key", kit["public"]],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "signature does not verify" in proc.stderr
    assert not marker.exists() and not site.exists(), "a refusal leaves nothing behind, not even the empty home"


def test_install_sh_without_a_trusted_key_fails_closed(good_bundle, tmp_path):
    site = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k != "AIRLOCK_TRUSTED_KEY"}
    proc = subprocess.run(["sh", good_bundle / "install.sh", "--target", site], capture_output=True, text=True,
                          env=env)
    assert proc.returncode != 0 and "no trusted key" in proc.stderr and not (site / "envs").exists()

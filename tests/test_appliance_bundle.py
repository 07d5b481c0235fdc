"""The appliance carries itself: a CPU appliance bundle built from the local caches (the wheels make setup kept,
pip's cache for the rest) is installed by `sh install.sh` with the system Python into an empty directory inside
`unshare -n` with `env -i`; then the installed `airlock` alone, from another directory, runs data check, LoRA
steps on a tiny model, merge, GGUF export and a chat reply. A delta bundle (new data, same wheels) then installs
through the home's trusted installer copy, sharing the env, and `airlock bundle rollback` goes back.

    .venv/bin/python -m pytest tests/test_appliance_bundle.py -q     (a developer may skip: -m "not appliance")
"""

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CAN_UNSHARE
from test_bundle_registry import _registry_answers
from tiny_model import FACTS, write_lora_config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.appliance, pytest.mark.registry,
              pytest.mark.skipif(not _registry_answers(), reason="no package registry answers from here")]


def isolated(argv, site: Path, path: str, cwd: Path, check=True, loopback=False) -> subprocess.CompletedProcess:
    """argv with no network (where permitted) and a clean environment: nothing of this checkout is visible.
    `loopback`: bring the namespace's loopback up, as on any host (a new namespace starts with it down)."""
    env = ["env", "-i", f"PATH={path}", f"HOME={site.parent}"]
    gap = ["unshare", "-n"] if CAN_UNSHARE else []
    if gap and loopback:
        gap += ["sh", "-c", 'ip link set lo up; exec "$@"', "sh"]
    full = gap + env + [str(a) for a in argv]
    proc = subprocess.run(full, capture_output=True, text=True, cwd=cwd, timeout=900)
    if check:
        assert proc.returncode == 0, f"{argv}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


def spec_for(tiny_model: Path, data: Path, version: str) -> dict:
    spec = yaml.safe_load((ROOT / "bundler" / "examples" / "appliance.yaml").read_text())
    libc, glibc = platform.libc_ver()
    spec.update(version=version, rehearsal=False, datasets=[{"path": str(data), "name": "facts.jsonl"}],
                models=[{"path": str(tiny_model), "repo_id": "airlock-test/tiny-llama", "license": "apache-2.0"}])
    spec["target"]["glibc"] = ".".join(glibc.split(".")[:2])
    spec["wheels"]["find_links"] = [str(ROOT / ".airlock" / "wheels")]
    return spec


@pytest.fixture(scope="module")
def appliance(tmp_path_factory, tiny_model):
    from bundle_fixtures import build, make_keys

    root = tmp_path_factory.mktemp("appliance")
    secret, public = make_keys(root / "keys")
    data = root / "facts.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in FACTS))
    bundle = build(spec_for(tiny_model, data, "1.0"), root / "media" / "v1", secret)
    site = root / "bare-host" / "airlock"
    python = getattr(sys, "_base_executable", sys.executable)
    proc = isolated(["sh", bundle / "install.sh", "--target", site, "--trusted-key", public, "--python", python],
                    site, "/usr/bin:/bin", root)
    return {"root": root, "bundle": bundle, "site": site, "public": public, "secret": secret, "data": data,
            "install": proc, "tiny_model": tiny_model}


def disk_usage(path: Path) -> int:
    """Bytes a tree takes, each hard-linked file once (as `du` counts)."""
    seen, total = set(), 0
    for p in path.rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def test_plan_matches_the_appliance_bundle_and_its_install(appliance):
    """`airlock bundle plan`'s figures, from metadata only, against the bundle on the media and the installed home
    (within 5%), the same way the README's table measures them."""
    from appliance import schema
    from bundler.hub import Hub
    from bundler.models import locate
    from bundler.plan import make_plan
    from bundler.spec import BundleSpec
    from installer.format import DEFAULT_MAX_CHUNK

    spec = schema.build(BundleSpec, spec_for(appliance["tiny_model"], appliance["data"], "1.0"))
    plan = make_plan(spec, [locate(m, Hub()) for m in spec.models], Hub(), DEFAULT_MAX_CHUNK, log=lambda *_: None)
    manifest = json.loads((appliance["bundle"] / "MANIFEST.json").read_text())
    assert plan.chunks == len(manifest["chunks"])
    assert abs(plan.payload / manifest["payload_size"] - 1) < 0.05, (plan.payload, manifest["payload_size"])
    media = disk_usage(appliance["bundle"])
    assert abs(plan.media / media - 1) < 0.05, (plan.media, media)
    home = disk_usage(appliance["site"])
    assert abs((plan.store + plan.env) / home - 1) < 0.05, (plan.store, plan.env, home)
    print(f"plan vs actual: media {plan.media} / {media}; host {plan.store + plan.env} / {home}")


def airlock(appliance, *args, check=True):
    site = appliance["site"]
    work = appliance["root"] / "work"
    work.mkdir(exist_ok=True)
    return isolated(["airlock", *args], site, f"{site / 'bin'}:/usr/bin:/bin", work, check)


def test_appliance_installs_on_a_bare_host(appliance):
    site, out = appliance["site"], appliance["install"].stdout
    assert "signature OK (minisign" in out and "selftest ok" in out, out
    assert f'export PATH="{site / "bin"}:$PATH"' in out
    for engine in ("torch", "transformers", "peft", "trl", "bitsandbytes", "llama_cpp"):
        assert f"{engine} " in out
    env = (site / "current" / "airlock" / "env").resolve()
    assert env.parent == site / "envs" and (env / "bin" / "airlock").is_file()
    # the payload is kept once: the release tree and the HF cache are hard links to the store's blobs
    weights = site / "current" / "airlock" / "files" / "models" / "airlock-test" / "tiny-llama" / "model.safetensors"
    cached = next((site / "hf-cache").glob("models--airlock-test--tiny-llama/snapshots/*/model.safetensors"))
    assert weights.stat().st_ino == cached.resolve().stat().st_ino and weights.stat().st_nlink >= 3
    assert airlock(appliance, "--version").stdout.startswith("airlock ")


def test_installed_airlock_runs_the_pipeline_offline(appliance, tmp_path):
    work = appliance["root"] / "work"
    data = appliance["site"] / "current" / "airlock" / "files" / "datasets" / "facts.jsonl"
    assert "result: ok" in airlock(appliance, "data", "check", data).stdout
    config = write_lora_config(work / "tiny.yaml", data)
    out = airlock(appliance, "train", config, "--name", "appliance").stdout
    job = next(line.split()[1] for line in out.splitlines() if line.startswith("job ") and "started" in line)
    airlock(appliance, "merge", job, "--out", work / "merged")
    airlock(appliance, "export", "gguf", work / "merged", "--type", "f16", "--out", work / "gguf", "--no-fidelity")
    gguf = next((work / "gguf").rglob("*.gguf"))
    question, answer = FACTS[0]
    assert airlock(appliance, "chat", gguf, "--prompt", question, "--max-tokens", "16").stdout.strip() == answer
    shipped = airlock(appliance, "train", "--help").stdout
    assert "sft_lora_default" in shipped  # the shipped configs travel in the wheel
    # serving travels too: the installed airlock serves the export, offline, and answers over HTTP
    client = work / "serve_check.py"
    client.write_text(SERVE_CHECK)
    env_python = appliance["site"] / "current" / "airlock" / "env" / "bin" / "python"
    served = isolated([env_python, client, gguf, question], appliance["site"],
                      f"{appliance['site'] / 'bin'}:/usr/bin:/bin", work, loopback=True)
    assert served.stdout.strip().splitlines()[-1] == answer


SERVE_CHECK = """
import json, subprocess, sys, time, urllib.request
server = subprocess.Popen(["airlock", "serve", sys.argv[1], "--port", "8765"])
try:
    for _ in range(600):
        try:
            urllib.request.urlopen("http://127.0.0.1:8765/health", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    body = {"model": sys.argv[1].rsplit("/", 1)[-1][:-5], "temperature": 0, "max_tokens": 16,
            "messages": [{"role": "user", "content": sys.argv[2]}]}
    request = urllib.request.Request("http://127.0.0.1:8765/v1/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    print(json.load(urllib.request.urlopen(request, timeout=120))["choices"][0]["message"]["content"])
finally:
    server.terminate()
    server.wait()
"""


def test_appliance_delta_shares_the_env_and_rolls_back(appliance, tmp_path):
    from bundle_fixtures import build

    root, site = appliance["root"], appliance["site"]
    data = root / "facts-v2.jsonl"
    data.write_text(appliance["data"].read_text() + json.dumps({"instruction": "new?", "output": "yes"}) + "\n")
    delta = build(spec_for(appliance["tiny_model"], data, "1.1"), root / "media" / "v1.1", appliance["secret"],
                  since=appliance["bundle"])
    m = json.loads((delta / "MANIFEST.json").read_text())
    packed = [sha for sha, b in m["blobs"].items() if b["offset"] is not None]
    assert m["base"]["version"] == "1.0" and m["payload_size"] < 2 * 2**20, "only what changed travels"
    assert len(packed) <= 2
    before = (site / "current" / "airlock" / "env").resolve()
    proc = isolated(["sh", site / "bin" / "airlock-install", "--bundle", delta, "--target", site, "--trusted-key",
                     appliance["public"]], site, "/usr/bin:/bin", root)
    assert "installing wheels" not in proc.stdout, "same wheels: the env is shared, nothing reinstalled"
    assert (site / "current" / "airlock" / "env").resolve() == before
    assert os.readlink(site / "current" / "airlock").startswith("../releases/airlock-1.1-")
    rolled = airlock(appliance, "bundle", "rollback", "--target", site).stdout
    assert "current is airlock-1.0-" in rolled
    assert os.readlink(site / "current" / "airlock").startswith("../releases/airlock-1.0-")
    assert airlock(appliance, "--version").returncode == 0
    log = [json.loads(x)["action"] for x in (site / "registry" / "audit.jsonl").read_text().splitlines()]
    assert log[-1] == "bundle-rollback" and "bundle-install" in log
    shutil.rmtree(root / "work", ignore_errors=True)

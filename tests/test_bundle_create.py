"""The connected side: `airlock bundle create` layout, interop with stock tools, SBOM, refusals, deltas.

    .venv/bin/python -m pytest tests/test_bundle_create.py -q
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.errors import AirlockError
from bundle_fixtures import build, good_bundle, kit  # noqa: F401 (fixtures)


def test_layout_chunks_and_dedupe(good_bundle, kit):
    m = json.loads((good_bundle / "MANIFEST.json").read_text())
    names = {p.name for p in good_bundle.iterdir()}
    assert {"install.sh", "README.txt", "MANIFEST.json", "SHA256SUMS.minisig", "SHA256SUMS", "sbom.cdx.json",
            "airlock-installer.pyz", "bundle.env", "chunks"} <= names
    assert len(m["chunks"]) > 1 and all(c["size"] <= 256 * 1024 for c in m["chunks"])
    assert sum(c["size"] for c in m["chunks"]) == m["payload_size"]
    kinds = {f["kind"] for f in m["files"]}
    assert {"model", "wheel", "env", "tool", "dataset", "meta"} <= kinds
    # content addressing: every blob once, however many paths share it
    assert len(m["blobs"]) == len({f["sha256"] for f in m["files"]})
    assert any(f["path"] == "models/airlock-test/tiny-llama/model.safetensors" for f in m["files"])
    assert m["env"]["mode"] == "conda" and m["rehearsal"]["models"] == {"airlock-test/tiny-llama": "ok"}
    assert sorted(p.name for p in (good_bundle / "chunks").iterdir()) == sorted(
        Path(c["name"]).name for c in m["chunks"])


def test_sha256sum_and_minisign_accept_the_bundle(good_bundle, kit):
    ok = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=good_bundle, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    listed = {line.split("  ", 1)[1] for line in (good_bundle / "SHA256SUMS").read_text().splitlines()}
    on_disk = {str(p.relative_to(good_bundle)) for p in good_bundle.rglob("*") if p.is_file()}
    assert on_disk - listed == {"SHA256SUMS", "SHA256SUMS.minisig"}, "the signed list covers every other file"
    if not shutil.which("minisign"):
        pytest.skip("minisign is not installed (apt-get install minisign)")
    v = subprocess.run(["minisign", "-Vm", "SHA256SUMS", "-p", str(kit["public"])], cwd=good_bundle,
                       capture_output=True, text=True)
    assert v.returncode == 0 and "Signature and comment signature verified" in v.stdout, v.stdout + v.stderr


def test_sbom_and_readme(good_bundle):
    sbom = json.loads((good_bundle / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    libs = [c for c in sbom["components"] if c["type"] == "library"]
    assert {c["purl"] for c in libs} == {"pkg:pypi/airlock-hello@1.0", "pkg:pypi/airlock-extra@0.1"}
    assert all(c["hashes"][0]["alg"] == "SHA-256" for c in libs)
    model = next(c for c in sbom["components"] if c["type"] == "machine-learning-model")
    assert model["name"] == "airlock-test/tiny-llama" and len(model["version"]) == 40
    assert model["licenses"][0]["license"]["name"] == "apache-2.0" and model["hashes"]
    readme = (good_bundle / "README.txt").read_text()
    assert "sha256sum -c --strict SHA256SUMS" in readme and "minisign -Vm SHA256SUMS" in readme
    assert "sh install.sh" in readme and "airlock-test/tiny-llama" in readme


def test_rebuild_leaves_no_stale_parts(kit, tmp_path):
    out = tmp_path / "b"
    small = dict(kit["spec"], env={"mode": "none"}, wheels={}, rehearsal=False, tools={"converter": False})
    build(small, out, kit["secret"], max_chunk=64 * 1024)
    first = set((out / "chunks").iterdir())
    (out / "chunks" / "9999-stale.part").write_text("old")
    build(dict(small, version="1.1"), out, kit["secret"], max_chunk=1024 * 1024)
    now = {p.name for p in (out / "chunks").iterdir()}
    assert "9999-stale.part" not in now and len(now) < len(first)
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out).returncode == 0


def _model_dir(tmp_path, tiny_model, extra: dict) -> Path:
    d = tmp_path / "m"
    shutil.copytree(tiny_model, d)
    for name, data in extra.items():
        (d / name).write_bytes(data) if isinstance(data, bytes) else (d / name).write_text(data)
    return d


def test_pickle_weights_refused_unless_allowed(kit, tmp_path, tiny_model):
    d = _model_dir(tmp_path, tiny_model, {"pytorch_model.bin": b"\x80\x04pickle"})
    (d / "model.safetensors").unlink()
    spec = dict(kit["spec"], env={"mode": "none"}, wheels={}, rehearsal=False, tools={"converter": False},
                models=[{"path": str(d), "repo_id": "acme/pickled"}])
    with pytest.raises(AirlockError, match="only pickle weights") as err:
        build(spec, tmp_path / "out", kit["secret"])
    assert "allow_pickle" in err.value.fix and not (tmp_path / "out").exists()
    spec["models"][0]["allow_pickle"] = True
    m = json.loads((build(spec, tmp_path / "out", kit["secret"]) / "MANIFEST.json").read_text())
    assert m["models"][0]["pickle_weights"] == ["pytorch_model.bin"]
    assert "PICKLE WEIGHTS (install needs --allow-pickle)" in (tmp_path / "out" / "README.txt").read_text()


def test_remote_code_refused_and_extra_files_skipped(kit, tmp_path, tiny_model):
    d = _model_dir(tmp_path, tiny_model, {"modeling_evil.py": "import os\n", "notes.onnx": b"x"})
    spec = dict(kit["spec"], env={"mode": "none"}, wheels={}, rehearsal=False, tools={"converter": False},
                models=[{"path": str(d), "repo_id": "acme/code"}])
    with pytest.raises(AirlockError, match="ships its own Python code"):
        build(spec, tmp_path / "out", kit["secret"])
    (d / "modeling_evil.py").unlink()
    m = json.loads((build(spec, tmp_path / "out", kit["secret"]) / "MANIFEST.json").read_text())
    assert "notes.onnx" in m["models"][0]["skipped"]
    assert not any(f["path"].endswith("notes.onnx") for f in m["files"])


def test_spec_errors_name_the_key(tmp_path):
    from appliance.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\nversion: '1'\nmodles: []\n")
    proc = subprocess.run([sys.executable, "-m", "appliance", "bundle", "create", str(spec), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode != 0 and "modles" in proc.stderr and "models" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert main is not None


def test_delta_leaves_out_what_the_site_has(kit, good_bundle, tmp_path):
    spec = dict(kit["spec"], version="1.1")
    newer = tmp_path / "newer.jsonl"
    newer.write_text('{"conversations": [{"from": "human", "value": "new?"}, {"from": "gpt", "value": "yes"}]}\n')
    spec["datasets"] = [{"path": str(newer), "name": "facts.jsonl"}]
    delta = build(spec, tmp_path / "delta", kit["secret"], since=good_bundle / "MANIFEST.json")
    m = json.loads((delta / "MANIFEST.json").read_text())
    packed = [sha for sha, b in m["blobs"].items() if b["offset"] is not None]
    assert len(packed) == 1 and m["base"]["version"] == "1.0"
    assert m["payload_size"] < 8192


def test_keys_generate_cli(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "appliance", "keys", "generate", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "airlock.key").stat().st_mode & 0o777 == 0o600
    again = subprocess.run([sys.executable, "-m", "appliance", "keys", "generate", "--out", str(tmp_path)],
                           capture_output=True, text=True)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_second_copy_of_weights_in_another_layout_is_left_out():
    from bundler.models import select_files
    from bundler.spec import ModelSpec

    names = ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
             "model.safetensors.index.json", "consolidated.safetensors", "tokenizer.json", "params.json"]
    keep, facts = select_files(names, ModelSpec(id="mistralai/Mistral-7B-Instruct-v0.3"), "spec", {})
    assert "consolidated.safetensors" not in keep and "consolidated.safetensors" in facts["skipped"]
    assert "model-00002-of-00002.safetensors" in keep and "model.safetensors.index.json" in keep


@pytest.mark.parametrize("name", ["facts\u202etxt.jsonl", "cafe\u0301.jsonl", "a\u2028b.jsonl"])
def test_bundler_refuses_names_the_installer_refuses(kit, tmp_path, name):
    """One rule for names (installer/format.py check_path_name), applied before anything is written."""
    spec = dict(kit["spec"], env={"mode": "none"}, wheels={}, rehearsal=False, tools={"converter": False},
                datasets=[{"path": kit["spec"]["datasets"][0]["path"], "name": name}])
    with pytest.raises(AirlockError) as err:
        build(spec, tmp_path / "b", None)
    assert err.value.code == "bundle.path_name" and not (tmp_path / "b").exists()

"""`airlock models`: list, lineage, removal that refuses to orphan, --force, and the append-only audit log."""

import json
import subprocess
import uuid

import pytest

from appliance import lineage, registry
from appliance.errors import AirlockError
from conftest import airlock_argv


def cli(*args, check=True):
    proc = subprocess.run(airlock_argv("models", *args), capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def chain(airlock_home):
    """base -> dataset -> adapter -> merged -> gguf, with real files under the data directory."""
    tag = uuid.uuid4().hex[:6]
    job = airlock_home / "jobs" / f"sft-{tag}"
    (job / "adapter").mkdir(parents=True)
    (job / "adapter" / "adapter_model.safetensors").write_bytes(b"x")
    (job / "merged").mkdir()
    gguf = airlock_home / "exports" / f"sft-{tag}" / f"sft-{tag}-q4_k_m.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF" + b"\0" * 2048)
    ids = {"adapter": f"sft-{tag}", "merged": f"sft-{tag}-merged", "gguf": f"sft-{tag}-q4_k_m"}
    registry.record("adapter", ids["adapter"], job / "adapter", parents=["airlock-test/tiny-llama", "dataset:ab12cd34ef56aa"],
                    method="lora", steps=30)
    registry.record("merged", ids["merged"], job / "merged", parents=[ids["adapter"], "airlock-test/tiny-llama"])
    registry.record("gguf", ids["gguf"], gguf, parents=[ids["merged"]], type="Q4_K_M", size=2052, sha256="f" * 64)
    return ids, job, gguf


def test_list_and_show_lineage(chain):
    ids, _, _ = chain
    out = cli("list").stdout
    assert all(i in out for i in ids.values())
    assert json.loads(cli("list", "--kind", "gguf", "--json").stdout)[-1]["id"] == ids["gguf"]
    shown = cli("show", ids["adapter"]).stdout
    assert "base -> dataset -> adapter -> merged -> gguf" in shown
    assert "method=lora steps=30" in shown and "type=Q4_K_M size=2.0 KiB" in shown
    assert "airlock-test/tiny-llama" in shown and "(not recorded)" in shown
    info = lineage.lineage(ids["gguf"])  # from the leaf, every ancestor roots first
    assert [a["kind"] for a in info["ancestors"]] == ["base", "dataset", "adapter", "merged"]


def test_rm_refuses_to_orphan_then_force(chain, airlock_home):
    ids, job, gguf = chain
    before = len(registry.audit_log())
    proc = cli("rm", ids["adapter"], check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "2 dependent(s)" in proc.stderr and ids["merged"] in proc.stderr and "--force" in proc.stderr
    assert (job / "adapter").is_dir() and ids["adapter"] in registry.artifacts()

    assert "removed gguf" in cli("rm", ids["gguf"]).stdout  # a leaf goes, with its file
    assert not gguf.exists() and ids["gguf"] not in registry.artifacts()

    out = cli("rm", ids["adapter"], "--force").stdout
    assert "now without their parent: " + ids["merged"] in out
    assert not (job / "adapter").exists() and ids["merged"] in registry.artifacts()
    log = registry.audit_log()
    assert len(log) == before + 2  # the refusal changed nothing; both removals are recorded
    assert log[-1]["action"] == "models.rm" and log[-1]["forced"] is True and log[-1]["orphaned"] == [ids["merged"]]
    assert log[-2]["id"] == ids["gguf"] and log[-2]["files_deleted"] is True
    assert f"models.rm  id={ids['adapter']}" in cli("audit", "--tail", "1").stdout
    # history is appended, never rewritten: the removed records are still in the file
    lines = (airlock_home / "registry" / "artifacts.jsonl").read_text().splitlines()
    assert any(json.loads(line).get("id") == ids["gguf"] and "kind" in json.loads(line) for line in lines)


def test_files_outside_the_data_directory_are_never_deleted(tmp_path):
    mine = tmp_path / "my-model.gguf"
    mine.write_bytes(b"GGUF")
    registry.record("gguf", f"outside-{uuid.uuid4().hex[:6]}", mine, parents=[])
    entry = [e for e in registry.artifacts().values() if e["path"] == str(mine)][0]
    assert lineage.remove(entry["id"])["files_deleted"] is False and mine.exists()
    with pytest.raises(AirlockError, match="no artifact"):
        lineage.resolve(entry["id"])

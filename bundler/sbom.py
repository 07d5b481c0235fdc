"""A CycloneDX 1.5 SBOM (JSON) of a bundle: wheels as libraries (purl + hashes), models as
machine-learning-model components (revision, licence, per-file hashes), datasets as data, tools and env as
applications. Written beside the manifest as sbom.cdx.json."""

import json
import time
import uuid


def _hashes(*shas: str) -> list[dict]:
    return [{"alg": "SHA-256", "content": s} for s in shas]


def build_sbom(manifest: dict) -> dict:
    files = manifest["files"]
    components = []
    for w in manifest.get("wheels", []):
        components.append({"type": "library", "bom-ref": w["purl"], "name": w["name"], "version": w["version"],
                           "purl": w["purl"], "hashes": _hashes(w["sha256"]),
                           "properties": [{"name": "airlock:file", "value": w["filename"]}]})
    for m in manifest.get("models", []):
        owned = [f for f in files if f["path"].startswith(m["prefix"] + "/")]
        weights = sorted((f for f in owned if f["path"].endswith((".safetensors", ".bin", ".pt", ".pth"))),
                         key=lambda f: -f["size"])
        comp = {"type": "machine-learning-model", "bom-ref": f"model:{m['repo_id']}@{m['revision']}",
                "name": m["repo_id"], "version": m["revision"],
                "purl": f"pkg:huggingface/{m['repo_id']}@{m['revision']}",
                "hashes": _hashes(*(f["sha256"] for f in weights[:1])),
                "description": m["source"],
                "properties": [{"name": "airlock:allow_pickle", "value": str(bool(m["pickle_weights"])).lower()},
                               {"name": "airlock:trust_remote_code", "value": str(bool(m["remote_code"])).lower()}],
                "components": [{"type": "file", "name": f["path"][len(m["prefix"]) + 1:],
                                "hashes": _hashes(f["sha256"])} for f in owned]}
        if m.get("license"):
            comp["licenses"] = [{"license": {"name": m["license"]}}]
        components.append(comp)
    for f in files:
        if f["kind"] == "dataset":
            components.append({"type": "data", "bom-ref": f"data:{f['path']}", "name": f["path"],
                               "hashes": _hashes(f["sha256"])})
    for name, facts in manifest.get("tools", {}).items():
        components.append({"type": "application", "bom-ref": f"tool:{name}", "name": name,
                           "version": str(facts.get("version", ""))})
    env = manifest.get("env", {})
    if env.get("mode") == "conda":
        components.append({"type": "application", "bom-ref": "env:conda", "name": "conda environment (conda-pack)",
                           "hashes": _hashes(env["sha256"])})
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "metadata": {"timestamp": manifest.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "tools": {"components": [{"type": "application", "name": "airlock",
                                               "version": manifest.get("tool", "")}]},
                     "component": {"type": "application", "bom-ref": "bundle", "name": manifest["name"],
                                   "version": manifest["version"]}},
        "components": components,
    }


def write_sbom(path, manifest: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(build_sbom(manifest), fh, indent=1)
        fh.write("\n")

"""The one path that needs the package registry: `pip download` for the target with every dependency, hashes
recorded, then an offline `pip install --no-index --require-hashes` in a fresh venv inside `unshare -n`.
Skipped, with the reason, where no registry answers."""

import json
import subprocess
import sys

import pytest


def _registry_answers() -> bool:
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "mdurl"], capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


pytestmark = [pytest.mark.registry,
              pytest.mark.skipif(not _registry_answers(), reason="no package registry answers from here")]


def test_download_for_target_then_offline_install_with_hashes(tmp_path, run_offline):
    from bundler.spec import Target, WheelsSpec
    from bundler.wheels import gather, requirements_txt

    wheels_dir = tmp_path / "wheels"
    wheels = gather(WheelsSpec(requirements=["markdown-it-py==4.0.0"]), Target(), wheels_dir)
    names = {w.name.lower().replace("_", "-") for w in wheels}
    assert {"markdown-it-py", "mdurl"} <= names  # the dependency came along
    (wheels_dir / "requirements.txt").write_text(requirements_txt(wheels))
    assert all("--hash=sha256:" in line for line in (wheels_dir / "requirements.txt").read_text().splitlines()[1:])

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    # the hashes the site uses come from the (signed) manifest, recorded here before anything is tampered with
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps([{"name": w.name, "version": w.version, "sha256": w.sha256} for w in wheels]))
    code = ("import json; from pathlib import Path; from types import SimpleNamespace as W; "
            "from installer.envsetup import pip_install; "
            f"pip_install(Path({str(venv / 'bin' / 'python')!r}), Path({str(wheels_dir)!r}), "
            f"[W(**x) for x in json.loads(Path({str(pins)!r}).read_text())])")
    run_offline([sys.executable, "-c", code])
    out = subprocess.run([venv / "bin" / "python", "-c", "import markdown_it, mdurl; print('ok')"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"

    # a wheel whose bytes differ from the recorded hash is refused by pip offline
    victim = next(p for p in wheels_dir.glob("mdurl-*.whl"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    fresh = tmp_path / "venv2"
    subprocess.run([sys.executable, "-m", "venv", fresh], check=True)
    code = code.replace(str(venv), str(fresh))
    proc = run_offline([sys.executable, "-c", code], check=False)
    assert proc.returncode != 0 and "hash" in (proc.stderr + proc.stdout).lower()

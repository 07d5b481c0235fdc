"""Offline rehearsal before the media leaves: in a network namespace with no network (`unshare -n`), load each
staged model's config and tokenizer from the staged HF cache by repo id, and run llama.cpp's converter with
--vocab-only, so an unsupported tokenizer (e.g. an unknown BPE pre-tokenizer) is found here, not at the site.

Child process: python -m bundler.rehearsal REPO_ID@REVISION ... (loads config + tokenizer, HF_HUB_OFFLINE=1).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from appliance.errors import AirlockError
from appliance.offline import guarded_python_command, offline_env
from appliance.paths import CHECKOUT


def _airgap() -> list[str]:
    """`unshare -n` where we may use it; otherwise the socket guard alone (said so in the manifest)."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n"]
    return []


def rehearse(models: list, cache: Path, converter: Path | None, log=print) -> dict:
    """Returns {"airgap": "unshare -n"|"guard only", "models": {repo_id: "ok"}}; raises AirlockError on failure."""
    gap = _airgap()
    env = offline_env()
    env.update(HF_HUB_CACHE=str(cache), HF_HOME=str(Path(cache).parent / "hf-home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])))
    results = {}
    for m in models:
        log(f"rehearsal: {m.repo_id}@{m.revision[:12]} tokenizer + config, offline")
        run = subprocess.run([*gap, sys.executable, "-m", "bundler.rehearsal", f"{m.repo_id}@{m.revision}"],
                             env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise AirlockError(f"{m.repo_id}: loading config/tokenizer offline failed:\n{run.stderr[-1500:]}",
                               where="rehearsal", fix="the site would fail the same way: fix or replace the model")
        if converter is not None:
            log(f"rehearsal: {m.repo_id} converter --vocab-only, offline")
            with tempfile.TemporaryDirectory() as tmp:
                argv = guarded_python_command(str(Path(converter) / "convert_hf_to_gguf.py"), str(m.snapshot),
                                              "--vocab-only", "--outfile", str(Path(tmp) / "vocab.gguf"))
                conv = subprocess.run([*gap, *argv], env=env, capture_output=True, text=True)
            if conv.returncode != 0:
                raise AirlockError(
                    f"{m.repo_id}: llama.cpp's converter cannot handle this tokenizer:\n{conv.stderr[-1500:]}",
                    where="rehearsal", fix="GGUF export would fail at the site: use a model whose tokenizer "
                    "llama.cpp supports, or leave rehearsal on and change the model")
        results[m.repo_id] = "ok"
    return {"airgap": "unshare -n" if gap else "guard only", "converter": converter is not None, "models": results}


def _child(specs: list[str]) -> None:
    from appliance.offline import enforce_offline

    enforce_offline()
    from transformers import AutoConfig, AutoTokenizer

    for spec in specs:
        repo_id, _, revision = spec.partition("@")
        AutoConfig.from_pretrained(repo_id, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision)
        if getattr(tokenizer, "chat_template", None):
            tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                          add_generation_prompt=True)


if __name__ == "__main__":
    _child(sys.argv[1:])

"""The install's smoke test, run offline in the env that will run the appliance, before the release is committed.

A bundle that carries Airlock itself runs the installed `airlock selftest` (every engine imports, tokenizers
load, llama.cpp converts and generates); any other bundle imports the HF stack and loads each model's tokenizer.
"""

import os
import subprocess
from pathlib import Path

from appliance.errors import AirlockError

from .layout import Layout
from .manifest import Manifest
from .progress import step

TOKENIZERS = """
import sys
import appliance.offline as o
o.enforce_offline()
from transformers import AutoTokenizer
for repo in sys.argv[1:]:
    assert len(AutoTokenizer.from_pretrained(repo)("smoke test")["input_ids"]) > 0
print("smoke ok:", *sys.argv[1:])
"""


def smoke_test(m: Manifest, lay: Layout, python: Path, release_files: Path) -> None:
    from appliance.offline import offline_env

    repos = [x.repo_id for x in m.models]
    env = offline_env()
    env.update(AIRLOCK_HOME=str(lay.root), HF_HUB_CACHE=str(lay.hf_cache), HF_HOME=str(lay.root / "hf-home"))
    if m.appliance:
        step("smoke test: airlock selftest (engines, tokenizers, llama.cpp generation), offline")
        converters = sorted((release_files / "tools").glob("llama.cpp-*"))
        # -I: the env's own airlock, never one from the current directory or PYTHONPATH
        argv = [str(python), "-I", "-m", "appliance", "selftest", *(a for r in repos for a in ("--model", r)),
                *(["--converter", str(converters[0])] if converters else [])]
    else:
        step("smoke test: import the stack, load tokenizers offline")
        pkg_root = Path(__file__).resolve().parents[1]  # so `appliance` imports from the pyz or the checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pkg_root), env.get("PYTHONPATH")]))
        argv = [str(python), "-c", TOKENIZERS, *repos]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=lay.root)
    if run.returncode != 0:
        raise AirlockError(f"smoke test failed:\n{(run.stderr or run.stdout)[-2000:]}", where="smoke test",
                           fix="the env lacks part of the stack, or a model does not load; nothing was committed")
    for line in run.stdout.strip().splitlines():  # a few lines: the engines, the models, where things run
        step(line)

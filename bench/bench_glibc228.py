"""RHEL 8 hosts (glibc 2.28): the llama-cpp-python wheel the bundler builds with zig for that glibc (bundler/zig.py),
against the wheel `make setup` built with this machine's compiler (OpenMP), on the same Q8_0 GGUF of the embedded
default. Checks the zig wheel's tag with `auditwheel show` (manylinux_2_28 or older) and that it loads here, then
reports decode tokens/s of each (higher is better), interleaved A B A B, each run in a fresh process.

    .venv/bin/python -m bench glibc228 [--quick]

The first run builds the zig wheel (about 8 minutes on 2 cores; kept in .airlock/wheels for the next bundle).
"""

import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from .harness import compare

DECODE = """import llama_cpp, sys, time
llm = llama_cpp.Llama(sys.argv[1], n_ctx=256, n_threads=2, verbose=False)
no_end = {llm.token_eos(): -100.0}  # every run decodes the same number of tokens
llm.create_completion("Hello", max_tokens=4, temperature=0.0)
start = time.perf_counter()
out = llm.create_completion("Once upon a time", max_tokens=int(sys.argv[2]), temperature=0.0, logit_bias=no_end)
print(out["usage"]["completion_tokens"] / (time.perf_counter() - start))
"""


def _unpacked(wheel: Path, into: Path) -> Path:
    zipfile.ZipFile(wheel).extractall(into)
    return into


def _tokens_per_s(site: Path, gguf: Path, tokens: int) -> float:
    run = subprocess.run([sys.executable, "-c", DECODE, str(gguf), str(tokens)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(site)}, check=True)
    return float(run.stdout.split()[-1])


def run(quick: bool = False) -> list[dict]:
    from appliance.embedded import default_model_path
    from appliance.export.gguf import convert_model
    from bundler import tools
    from bundler.spec import Target

    target = Target(glibc="2.28")
    work = Path(tempfile.mkdtemp(prefix="bench-glibc228-"))
    started = time.perf_counter()
    zig_wheel, args = tools.llama_cpp_wheel(target, work / "zig", log=print)
    built_s = time.perf_counter() - started
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(zig_wheel)], capture_output=True,
                          text=True, check=True).stdout
    tag = show.split('platform tag: "')[1].split('"')[0]
    if not (tag.startswith("manylinux_2_") and int(tag.split("_")[2]) <= 28):
        raise SystemExit(f"the zig wheel is {tag}, not manylinux_2_28 or older:\n{show}")
    print(f"zig wheel {zig_wheel.name}: auditwheel says {tag}; {args}; ready in {built_s / 60:.1f} min")
    native = tools.repair(tools.setup_wheel(), work / "native", Target())
    gguf = convert_model(default_model_path(), work / "m.gguf", "q8_0")
    sites = {name: _unpacked(w, work / f"site-{name}") for name, w in (("zig", zig_wheel), ("native", native))}
    tokens = 32 if quick else 128
    return [compare("decode, glibc 2.28 wheel (zig, no OpenMP)", lambda: _tokens_per_s(sites["zig"], gguf, tokens),
                    lambda: _tokens_per_s(sites["native"], gguf, tokens), peer_name="make setup's wheel (gcc, OpenMP)",
                    rounds=2 if quick else 5, unit="tok/s", lower_is_better=False, measure=lambda s, r: r)]

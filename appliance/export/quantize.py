"""Quantize a GGUF in-process with llama.cpp (llama_cpp.llama_model_quantize), one type at a time.

llama.cpp chooses per tensor: where a tensor's row size does not fit a type's block (K-quants use 256-wide
blocks) it falls back to a compatible type, so tiny models quantize too, just less uniformly.
"""

import ctypes
from pathlib import Path

from ..errors import AirlockError
from .files import no_space, staged_file

# Our type names -> llama.cpp ftype constant names (resolved lazily: llama_cpp loads a shared library).
FTYPES = {
    "f32": "LLAMA_FTYPE_ALL_F32",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
}


def quantize(src: Path, dst: Path, qtype: str, *, threads: int | None = None) -> Path:
    """Write `src` quantized to `qtype` at `dst` (temporary name, then renamed). Returns dst."""
    from ..llamacpp import captured_stderr, interrupts_after_call, llama_cpp as load

    llama_cpp = load()

    if qtype not in FTYPES:
        raise AirlockError(f"unknown quantization type {qtype!r}", fix=f"use one of {', '.join(FTYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[qtype])
    params.nthread = threads or 0  # 0: llama.cpp uses all hardware threads
    with staged_file(dst) as tmp:
        with captured_stderr() as log, interrupts_after_call():
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            text = log()
            if "No space left" in text or _nearly_full(Path(dst).parent, Path(src).stat().st_size):
                raise no_space(Path(dst).parent)
            tail = "\n".join(text.strip().splitlines()[-5:])
            raise AirlockError(f"llama.cpp could not quantize to {qtype} (return code {rc}):\n{tail}", where=str(src),
                               fix="check that the source GGUF is intact (re-run the export)")
    return Path(dst)


def kquant_report(path: Path, qtype: str) -> dict | None:
    """For a K-quant type: which weight matrices llama.cpp could not K-quantize (K-quants pack 256 values a block,
    so a row length that is not a multiple of 256 falls back to another type) and what it used instead, read from
    the written GGUF itself. None for other types."""
    if "_k" not in qtype:
        return None
    from collections import Counter

    from gguf import GGUFReader

    matrices = [t for t in GGUFReader(path).tensors if len(t.shape) >= 2]
    fallback = [t for t in matrices if not t.tensor_type.name.endswith("_K")]
    return {"matrices": len(matrices), "k_quantized": len(matrices) - len(fallback),
            "fallback_types": dict(Counter(t.tensor_type.name.lower() for t in fallback)),
            "fallback_row_lengths": sorted({int(t.shape[0]) for t in fallback if int(t.shape[0]) % 256})}


def describe_kquants(qtype: str, report: dict | None) -> str | None:
    """One line for the export's output when some matrices are not K-quantized, else None."""
    if not report or not report["fallback_types"]:
        return None
    used = ", ".join(f"{t} x{n}" for t, n in sorted(report["fallback_types"].items()))
    rows = report["fallback_row_lengths"]
    why = f"rows of {', '.join(map(str, rows))} are not a multiple of 256" if rows else "llama.cpp's mix for this type"
    return (f"  {qtype}: {report['k_quantized']} of {report['matrices']} matrices are K-quants; the rest are {used} "
            f"({why})")


def _nearly_full(directory: Path, needed_hint: int) -> bool:
    import shutil

    return shutil.disk_usage(directory).free < needed_hint

"""The one way Airlock loads llama.cpp's Python binding (llama-cpp-python), and keeps Ctrl-C working around it.

A CUDA build of it (an appliance bundle for a cuda12/cuda13 host) links CUDA's runtime and cuBLAS, which the
bundle carries only inside the NVIDIA wheels torch depends on: importing torch first loads them, so the dynamic
linker finds them by name when llama.cpp's CUDA backend is loaded. A CPU build loads as it is.
"""

import contextlib
import ctypes
import importlib.util
import os
import signal
import sys
import threading
from pathlib import Path


def llama_cpp():
    """The llama_cpp module, with CUDA's libraries loaded first when its build needs them."""
    spec = importlib.util.find_spec("llama_cpp")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if any((Path(location) / "lib").glob("libggml-cuda.so*")):
            import torch  # noqa: F401  (loads libcudart and libcublas from the NVIDIA wheels)
            break
    if spec is None:  # a bundle always carries it; a hand-made environment may not
        from .errors import AirlockError

        raise AirlockError("llama.cpp's Python binding (llama-cpp-python) is not installed in this environment",
                           where=sys.executable, fix="install Airlock from its bundle (install.sh carries the "
                           "binding), or `pip install llama-cpp-python` on a connected machine")
    import llama_cpp

    return llama_cpp


def is_cuda_build() -> bool:
    """Whether the installed llama.cpp binding was built with its CUDA backend."""
    spec = importlib.util.find_spec("llama_cpp")
    return any(any((Path(loc) / "lib").glob("libggml-cuda.so*")) for loc in (spec.submodule_search_locations or [])
               ) if spec else False


def offload() -> tuple[int, str]:
    """(n_gpu_layers, where llama.cpp runs, in words) for chat, serve and fidelity: every layer on the GPU when this
    build has a GPU backend and it sees a device, else the CPU and why. AIRLOCK_GPU_LAYERS=N overrides (0: CPU)."""
    forced = os.environ.get("AIRLOCK_GPU_LAYERS")
    if forced is not None and forced.lstrip("-").isdigit():
        layers = int(forced)
        return layers, f"llama.cpp with {layers if layers >= 0 else 'all'} layers on the GPU (AIRLOCK_GPU_LAYERS)"
    lc = llama_cpp()
    with captured_stderr():  # a CUDA build without a driver logs its failed probe on fd 2: said below instead
        gpu = bool(lc.llama_supports_gpu_offload())
    if gpu:
        return -1, "llama.cpp on the GPU (every layer offloaded)"
    if is_cuda_build():
        return 0, "llama.cpp on the CPU: this CUDA build found no NVIDIA GPU or driver"
    return 0, "llama.cpp on the CPU (a CPU build)"


@contextlib.contextmanager
def interrupts_after_call():
    """Hold Ctrl-C (and SIGTERM) that arrive during a long llama.cpp call, and raise KeyboardInterrupt once it returns.

    llama-cpp-python logs through a Python callback that llama.cpp calls from C. A KeyboardInterrupt raised there
    (which is where Python delivers a Ctrl-C pressed during, say, a quantization) is printed and swallowed by ctypes,
    so the interrupt would be lost and the work would carry on. Here the signal only sets a flag while the call
    runs; the interrupt is raised in Python's own frame right after it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        if signal.SIGINT not in received and previous[signal.SIGTERM] in (signal.SIG_DFL, None):
            signal.raise_signal(signal.SIGTERM)  # the process had no SIGTERM handler: die of it as it would have
        raise KeyboardInterrupt


@contextlib.contextmanager
def captured_stderr():
    """Keep llama.cpp's own log (written from C to fd 2, below sys.stderr) off the screen, but readable."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: (sink.seek(0), sink.read().decode("utf-8", "replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def trained_context_length(path: Path) -> int | None:
    """The context a GGUF's model was trained for (`<arch>.context_length`), or None when its header lacks it.

    Read by llama.cpp from the header with the vocabulary only, no weights: 0.1 s for SmolLM2-135M, where the gguf
    package's reader, which parses every tensor's entry in Python, took 2.4 s.
    """
    lc = llama_cpp()
    params = lc.llama_model_default_params()
    params.vocab_only = True
    with captured_stderr():
        model = lc.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        return None  # an unusual header: let llama.cpp decide (and say why) when it loads the model for real
    try:
        def value(key: str) -> str | None:
            buf = ctypes.create_string_buffer(256)
            return buf.value.decode() if lc.llama_model_meta_val_str(model, key.encode(), buf, len(buf)) >= 0 else None

        arch = value("general.architecture")
        length = value(f"{arch}.context_length") if arch else None
        return int(length) if length and length.isdigit() else None
    finally:
        lc.llama_model_free(model)

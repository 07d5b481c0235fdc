"""The one way Airlock loads llama.cpp's Python binding (llama-cpp-python), and keeps Ctrl-C working around it.

A CUDA build of it (an appliance bundle for a cuda12/cuda13 host) links CUDA's runtime and cuBLAS, which the
bundle carries only inside the NVIDIA wheels torch depends on: importing torch first loads them, so the dynamic
linker finds them by name when llama.cpp's CUDA backend is loaded. A CPU build loads as it is.
"""

import contextlib
import importlib.util
import signal
import threading
from pathlib import Path


def llama_cpp():
    """The llama_cpp module, with CUDA's libraries loaded first when its build needs them."""
    spec = importlib.util.find_spec("llama_cpp")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if any((Path(location) / "lib").glob("libggml-cuda.so*")):
            import torch  # noqa: F401  (loads libcudart and libcublas from the NVIDIA wheels)
            break
    import llama_cpp

    return llama_cpp


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

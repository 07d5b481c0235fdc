"""The one way Airlock loads llama.cpp's Python binding (llama-cpp-python).

A CUDA build of it (an appliance bundle for a cuda12/cuda13 host) links CUDA's runtime and cuBLAS, which the
bundle carries only inside the NVIDIA wheels torch depends on: importing torch first loads them, so the dynamic
linker finds them by name when llama.cpp's CUDA backend is loaded. A CPU build loads as it is.
"""

import importlib.util
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

"""Airlock's offline side: one library (data, train, jobs, merge, export, chat, ...) under two faces, the CLI and the TUI.

Modules here import only the standard library at import time; torch and the HF stack are imported inside the
functions that need them, so `airlock --help` and the TUI's first frame stay fast.
"""

__version__ = "0.1.0"

import warnings

# transformers 5 warns about its own renames (gradient_checkpointing -> activation_checkpointing ...) on every
# run, from inside trl/peft calls we do not control: noise for an operator, so it stays out of job logs.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\..*)?$")

import os as _os

# torch's CPU kernels and llama.cpp's both run on GNU OpenMP, whose idle threads spin for 300,000 rounds before
# sleeping. On a host shared with other CPU-hungry work those spinning threads take the cores the straggler
# thread (and the neighbour) need: a LoRA step measured 8x slower beside a neighbour using every core. A short
# spin keeps nearly all of the idle-host speed and cuts that to about 3x (`python -m bench busy` measures both).
# Set here, before any library loads libgomp; an operator's own GOMP_SPINCOUNT or OMP_WAIT_POLICY wins.
if "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "10000"

"""Airlock's offline side: one library (data, train, jobs, merge, export, chat, ...) under two faces, the CLI and the TUI.

Modules here import only the standard library at import time; torch and the HF stack are imported inside the
functions that need them, so `airlock --help` and the TUI's first frame stay fast.
"""

__version__ = "0.1.0"

import warnings

# transformers 5 warns about its own renames (gradient_checkpointing -> activation_checkpointing ...) on every
# run, from inside trl/peft calls we do not control: noise for an operator, so it stays out of job logs.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\..*)?$")

"""`airlock tui`: the terminal face of the library (Textual). A view over the same functions the CLI calls.

    airlock tui                 # opens on Home; 1-7 switch screens, Ctrl+P lists every command, Ctrl+Q quits

Layout: app.py (the App, navigation, error reporting), screens/ (one module per screen), widgets/ (reusable parts
with their .tcss beside them), host.py (GPU/CPU/RAM/disk facts for display). Heavy libraries (torch,
transformers, llama_cpp) are imported only inside worker threads, so the first frame stays fast.
"""

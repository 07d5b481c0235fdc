"""Benchmarks: Airlock side by side with the peer it replaces, in one run, on the same machine.

    make bench                      # every bench/bench_*.py, results in bench/results/
    .venv/bin/python -m bench export chat   # only some

Each bench module defines `run(quick: bool) -> dict` returning rows made with `harness.compare(...)`.
Speed is measured here, never asserted in unit tests.
"""

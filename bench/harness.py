"""Interleaved A/B timing: run ours and the peer alternately (A B A B ...), report medians, spread and the ratio.

Interleaving spreads machine noise (another process, thermal state, page cache) over both sides equally, which a
block of A runs followed by a block of B runs does not.
"""

import statistics
import time
from typing import Callable


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def compare(name: str, ours: Callable[[], object], peer: Callable[[], object], *, peer_name: str,
            rounds: int = 3, setup: Callable[[], None] | None = None, unit: str = "s",
            lower_is_better: bool = True, measure: Callable[[float, object], float] | None = None) -> dict:
    """Time `ours` and `peer` alternately `rounds` times; `measure(seconds, result)` turns a run into the figure
    reported (default: seconds). Returns a row with medians, min/max and ours/peer ratio."""
    samples: dict[str, list[float]] = {"ours": [], "peer": []}
    for _ in range(rounds):
        for side, fn in (("ours", ours), ("peer", peer)):
            if setup:
                setup()
            seconds, result = timed(fn)
            samples[side].append(measure(seconds, result) if measure else seconds)
    med = {side: statistics.median(values) for side, values in samples.items()}
    ratio = med["ours"] / med["peer"] if med["peer"] else float("nan")
    return {
        "bench": name, "peer": peer_name, "unit": unit, "rounds": rounds,
        "ours_median": med["ours"], "peer_median": med["peer"],
        "ours_range": [min(samples["ours"]), max(samples["ours"])],
        "peer_range": [min(samples["peer"]), max(samples["peer"])],
        "ratio": ratio, "lower_is_better": lower_is_better,
    }


def markdown_table(rows: list[dict]) -> str:
    lines = ["| bench | ours (median) | peer | peer (median) | ours/peer | better is |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['bench']} | {r['ours_median']:.4g} {r['unit']} | {r['peer']} | {r['peer_median']:.4g} {r['unit']} "
            f"| {r['ratio']:.3f} | {'lower' if r['lower_is_better'] else 'higher'} |")
    return "\n".join(lines)

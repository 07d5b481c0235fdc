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
            lower_is_better: bool = True, measure: Callable[[float, object], float] | None = None,
            warmup: bool = False) -> dict:
    """Time `ours` and `peer` alternately `rounds` times; `measure(seconds, result)` turns a run into the figure
    reported (default: seconds). Returns a row with medians, min/max and ours/peer ratio. `warmup` runs each side
    once first, untimed, for library calls whose first call in a process pays one-time imports."""
    samples: dict[str, list[float]] = {"ours": [], "peer": []}
    if warmup:
        for fn in (ours, peer):
            if setup:
                setup()
            fn()
    for _ in range(rounds):
        for side, fn in (("ours", ours), ("peer", peer)):
            if setup:
                setup()
            seconds, result = timed(fn)
            samples[side].append(measure(seconds, result) if measure else seconds)
    return row(name, peer_name, samples["ours"], samples["peer"], unit=unit, lower_is_better=lower_is_better)


def row(name: str, peer_name: str, ours: list[float], peer: list[float], *, unit: str = "s",
        lower_is_better: bool = True) -> dict:
    """A result row from the samples of each side: medians, min/max and the ours/peer ratio of the medians."""
    med_ours, med_peer = statistics.median(ours), statistics.median(peer)
    return {
        "bench": name, "peer": peer_name, "unit": unit, "rounds": len(ours),
        "ours_median": med_ours, "peer_median": med_peer,
        "ours_range": [min(ours), max(ours)], "peer_range": [min(peer), max(peer)],
        "ratio": med_ours / med_peer if med_peer else float("nan"), "lower_is_better": lower_is_better,
    }


def markdown_table(rows: list[dict]) -> str:
    lines = ["| bench | ours (median) | peer | peer (median) | ours/peer | better is |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['bench']} | {_figure(r['ours_median'], r['unit'])} | {r['peer']} "
                     f"| {_figure(r['peer_median'], r['unit'])} | {_figure(r['ratio'])} "
                     f"| {'lower' if r['lower_is_better'] else 'higher'} |")
    return "\n".join(lines)


def _figure(value: float, unit: str = "") -> str:
    """A number for the table; a stage with no peer has NaN there and shows a dash."""
    if value != value:
        return "-"
    return f"{value:.4g} {unit}".strip() if unit else f"{value:.3f}"

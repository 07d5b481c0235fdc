"""python -m bench [NAME ...] [--quick] [--ranks N]: run bench/bench_<NAME>.py (all by default), write
bench/results/. --ranks N (train only): N gloo ranks against one process with the same global batch."""

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from .harness import markdown_table

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="bench modules to run (bench_<name>.py); default all")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller inputs")
    parser.add_argument("--ranks", type=int, default=1,
                        help="train: compare N distributed ranks with one process at the same global batch")
    args = parser.parse_args()
    available = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    names = args.names or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"unknown bench: {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        extra = {"ranks": args.ranks} if name == "train" and args.ranks > 1 else {}
        result = module.run(quick=args.quick, **extra)
        rows.extend(result if isinstance(result, list) else [result])
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(rows, indent=2))
    table = markdown_table(rows)
    (out / f"bench-{stamp}.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

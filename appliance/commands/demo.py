"""`airlock demo`: appliance bundle -> install on a bare host (offline) -> data check -> LoRA -> merge -> GGUF -> chat,
on the embedded default, the offline half run by the installed airlock."""


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline end to end on the embedded default model (make demo)")
    p.add_argument("--steps", type=int, help="training steps (default: the demo config's); fewer for a quick smoke run")
    p.add_argument("--inside", action="store_true", help=argparse_suppress())
    p.add_argument("--site", help=argparse_suppress())
    p.add_argument("--times", help=argparse_suppress())
    p.set_defaults(func=run)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def run(args) -> int:
    import json
    from pathlib import Path

    from .. import demo

    if not args.inside:
        return demo.run(steps=args.steps)
    stages_before = json.loads(args.times or "{}")
    return demo.run(inside=True, site=Path(args.site), times_before=stages_before, steps=args.steps)

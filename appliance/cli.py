"""`airlock`: the command-line face of the library.

Every module in appliance/commands/ adds its subcommands through `register(subparsers)`; handlers take the parsed
args and return an exit code. Command modules import only argparse-level things at the top: torch and the HF
stack load inside the handlers, so `airlock --help` stays fast. Offline commands (set_defaults(offline=True))
run with the network guard on (see appliance.offline).
"""

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .errors import AirlockError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airlock",
        description="Offline fine-tuning appliance: data -> train -> merge -> export -> chat, on an air-gapped host.",
    )
    parser.add_argument("--version", action="version", version=f"airlock {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        if getattr(args, "offline", False):
            from .offline import enforce_offline

            enforce_offline()
        return int(args.func(args) or 0)
    except AirlockError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

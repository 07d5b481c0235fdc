"""`airlock`: the command-line face of the library.

Every module in appliance/commands/ adds its subcommands through `register(subparsers)`; handlers take the parsed
args and return an exit code. Command modules import only argparse-level things at the top: torch and the HF
stack load inside the handlers, so `airlock --help` stays fast. Offline commands (set_defaults(offline=True))
run with the network guard on (see appliance.offline).
"""

import argparse
import importlib
import os
import pkgutil
import sys

from . import __version__, commands
from .errors import AirlockError, from_os_error


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
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at interpreter exit
        return code
    except AirlockError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`airlock jobs logs JOB | head`): stop quietly, as coreutils do. Point stdout at
        # /dev/null so the interpreter's own final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # SIGPIPE
    except OSError as exc:
        error = from_os_error(exc)
        print(f"error: {error.render()}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())

"""`airlock selftest`: check that this installation works offline (engines, tokenizers, llama.cpp). The work is in
appliance.selftest."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("selftest", help="check the installation offline: engines import, tokenizers load, "
                       "llama.cpp generates")
    p.add_argument("--model", action="append", default=[], metavar="REPO_ID",
                   help="models whose tokenizers to load (default: the catalog's default model)")
    p.add_argument("--converter", type=Path, help="llama.cpp's converter directory (default: the installed one)")
    p.set_defaults(func=run, offline=True)


def run(args) -> int:
    from ..selftest import selftest

    result = selftest(args.model, args.converter)
    print(f"selftest ok in {result['seconds']} s")
    return 0

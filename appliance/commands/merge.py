"""`airlock merge JOB|ADAPTER_DIR [--out DIR] [--adapter-only]`: merge a LoRA adapter into its base model."""


def register(sub) -> None:
    p = sub.add_parser("merge", help="merge a LoRA adapter into its base model (safetensors + tokenizer + provenance)")
    p.add_argument("source", metavar="JOB|ADAPTER_DIR", help="a job id or directory, or a PEFT adapter directory")
    p.add_argument("--out", help="output directory (default: <job>/merged, or <home>/merged/<name>)")
    p.add_argument("--adapter-only", action="store_true", help="copy the adapter alone, with its provenance")
    p.set_defaults(func=run, offline=True)


def run(args) -> int:
    from pathlib import Path

    from ..errors import AirlockError
    from ..merge import export_adapter, merge

    if args.adapter_only:
        if not args.out:
            raise AirlockError("--adapter-only needs --out DIR", where="--out")
        export_adapter(args.source, Path(args.out))
    else:
        merge(args.source, Path(args.out) if args.out else None)
    return 0

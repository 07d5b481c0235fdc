"""`airlock export gguf SRC --type q4_k_m [--type q8_0 ...]`: GGUF files for llama.cpp and Ollama, with fidelity."""


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model (GGUF for llama.cpp / Ollama)")
    kinds = p.add_subparsers(title="formats", metavar="FORMAT")
    g = kinds.add_parser("gguf", help="convert with llama.cpp's converter and quantize; writes Modelfiles and fidelity.json")
    g.add_argument("source", metavar="SRC", help="a job, adapter dir, merged/HF model dir or cached repo id")
    g.add_argument("--type", action="append", dest="types", metavar="TYPE",
                   help="f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m, ... (repeat or comma-separate; default q4_k_m)")
    g.add_argument("--out", help="output directory (default: <job>/gguf or <home>/exports/<name>)")
    g.add_argument("--system", help="SYSTEM prompt for the Ollama Modelfile")
    g.add_argument("--lora", action="store_true",
                   help="also write the adapter as a llama.cpp LoRA GGUF (plus the base model's f16 GGUF)")
    g.add_argument("--pre-tokenizer", metavar="NAME",
                   help="force llama.cpp's BPE pre-tokenizer NAME when the converter does not recognize the "
                   "tokenizer; accepted only if tokenization matches the HF tokenizer exactly")
    g.add_argument("--no-fidelity", action="store_true", help="skip the fidelity measurement")
    g.add_argument("--prompts", metavar="JSONL", help="held-out prompts for the fidelity check (default: sample data)")
    g.add_argument("--text", metavar="FILE", help="held-out text for perplexity (default: sample data)")
    g.add_argument("--threads", type=int, help="threads for quantization and llama.cpp (default: physical cores)")
    g.add_argument("--detach", action="store_true",
                   help="run as a detached job that survives this terminal (follow: airlock jobs logs -f JOB)")
    g.set_defaults(func=run, offline=True)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run(args) -> int:
    import signal
    import sys
    from pathlib import Path

    from ..errors import AirlockError
    from ..export.fidelity import heldout_prompts
    from ..export.pipeline import export_gguf

    # A terminated export unwinds like Ctrl-C: temporary files are deleted and the converter child is killed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    prompts = None
    if args.prompts:
        if not Path(args.prompts).is_file():
            raise AirlockError("no such file", where=args.prompts)
        prompts = heldout_prompts(Path(args.prompts), limit=10**6)
    text = None
    if args.text:
        if not Path(args.text).is_file():
            raise AirlockError("no such file", where=args.text)
        text = Path(args.text).read_text(encoding="utf-8")
    if args.detach:
        from ..export.job import start

        if prompts is not None or text is not None:
            raise AirlockError("--prompts and --text go with a foreground export", fix="drop --detach, or them")
        job = start(args.source, ["airlock", *sys.argv[1:]], types=args.types, out=args.out, system=args.system,
                    lora=args.lora, pre_tokenizer=args.pre_tokenizer, fidelity=not args.no_fidelity,
                    threads=args.threads)
        print(f"job {job.id} started; directory {job.path}\nfollow: airlock jobs logs -f {job.id}\n"
              f"stop:   airlock jobs stop {job.id}")
        return 0
    export_gguf(args.source, args.types, out=Path(args.out) if args.out else None, system=args.system,
                lora=args.lora, pre_tokenizer=args.pre_tokenizer, fidelity=not args.no_fidelity, prompts=prompts,
                text=text, threads=args.threads, log=lambda line: print(line, flush=True))
    return 0

"""`airlock chat MODEL [--prompt TEXT]`: chat with a GGUF (llama.cpp) or a job/adapter/HF model (transformers).

Interactive: answers stream as they are generated; /reset, /save [file], /help, /exit. With --prompt it answers
once and prints only the answer (for scripts). Temperature 0 (the default) is greedy.
"""

HELP = """commands:
  /reset         forget the conversation (keeps the system prompt)
  /save [file]   write the conversation as JSON (default chat-<time>.json)
  /help          this text
  /exit          leave (Ctrl-D works too; Ctrl-C stops an answer)"""


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a GGUF (llama.cpp) or a job / adapter / HF model (transformers)")
    p.add_argument("model", metavar="MODEL", help="a .gguf file, a job id, an adapter dir or an HF model dir")
    p.add_argument("--prompt", help="answer this once and exit (stdout is the answer only)")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--lora", metavar="GGUF", help="a LoRA adapter GGUF to apply to a GGUF MODEL")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ctx", type=int, help="context window in tokens (default 2048, or the model's if smaller)")
    p.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    p.set_defaults(func=run, offline=True)


def run(args) -> int:
    import sys

    from ..chat import Chat, SamplingParams, open_session

    params = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                            max_tokens=args.max_tokens, seed=args.seed)
    params.validate()
    from ..cpus import busy_warning

    warning = busy_warning("this chat")
    if warning:
        print(warning, file=sys.stderr)
    session = open_session(args.model, n_ctx=args.ctx, threads=args.threads, lora=args.lora)
    if getattr(session, "runs_on", None):
        print(session.runs_on, file=sys.stderr, flush=True)  # which device, said once (notes go to stderr)
    chat = Chat(session, system=args.system)
    try:
        if args.prompt is not None:
            for piece in chat.send(args.prompt, params):
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return 0
        return _repl(chat, params)
    finally:
        session.close()


def _repl(chat, params) -> int:
    import sys
    import time
    from pathlib import Path

    from ..errors import AirlockError

    interactive = sys.stdin.isatty()
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731 (notes go to stderr, answers to stdout)
    say(f"chatting with {chat.session.name} (context {chat.session.n_ctx} tokens); /help for commands")
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            cmd, _, arg = text.partition(" ")
            if cmd in ("/exit", "/quit"):
                return 0
            if cmd == "/help":
                say(HELP)
            elif cmd == "/reset":
                chat.reset()
                say("conversation cleared")
            elif cmd == "/save":
                path = Path(arg.strip() or f"chat-{time.strftime('%Y%m%d-%H%M%S')}.json")
                chat.save(path, params)
                say(f"saved {len(chat.history)} messages to {path}")
            else:
                say(f"unknown command {cmd}; /help lists them")
            continue
        dropped_note = lambda n: say(f"[context full: dropped the oldest {n} turn(s)]")  # noqa: E731
        try:
            for piece in chat.send(text, params, on_drop=dropped_note):
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:
            chat.session.cancel()
            say("\n[stopped]")
        except AirlockError as exc:
            say(f"error: {exc.render()}")
        sys.stdout.write("\n")
        sys.stdout.flush()

"""`airlock serve MODEL... [--host H] [--port P] [--detach]`: models as an OpenAI-compatible service with API keys,
rates and quotas. The work is in appliance.serve (server.py says what MODEL may be and what is safe by default)."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve models over an OpenAI-compatible HTTP API (keys, limits, quotas)")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="a GGUF export (registry id or path), a job id or an HF model directory")
    p.add_argument("--lora", action="append", default=[], metavar="NAME=ADAPTER.gguf",
                   help="a LoRA adapter on the GGUF base, served as model NAME (repeatable; switched per request)")
    p.add_argument("--embeddings", action="append", default=[], metavar="MODEL",
                   help="a GGUF served at /v1/embeddings (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other needs a key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--parallel", type=int, default=4, help="answers generated at once per GGUF model (default 4)")
    p.add_argument("--ctx", type=int, default=2048, help="context per answer in tokens (default 2048)")
    p.add_argument("--threads", type=int, help="CPU threads for llama.cpp (default: physical cores)")
    p.add_argument("--max-tokens", type=int, default=1024,
                   help="the longest answer (default 1024): what a request asks for, up to this; without max_tokens, "
                   "this or the context its prompt leaves, whichever is less")
    p.add_argument("--max-request-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)")
    p.add_argument("--max-connections", type=int, default=512,
                   help="open connections at most (default 512); past it a new one gets 503")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a connection has to send a request's headers (default 10)")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a request has to send its body (default 30)")
    p.add_argument("--idle-timeout", type=float, default=5.0,
                   help="seconds an idle keep-alive connection stays open (default 5)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate for HTTPS")
    p.add_argument("--tls-key", type=Path, help="PEM private key for HTTPS")
    p.add_argument("--log-prompts", action="store_true", help="write prompts to the audit log (off by default)")
    p.add_argument("--engine", choices=("llama", "vllm"), default="llama",
                   help="llama: llama.cpp for GGUF, transformers for HF directories; vllm: vLLM on a CUDA host")
    p.add_argument("--vllm-arg", action="append", default=[], metavar="ARG", help="passed to vLLM (repeatable)")
    p.add_argument("--detach", action="store_true", help="run as a job: `airlock jobs list|logs|stop` manage it")
    p.add_argument("--name", help="the job's name (with --detach)")
    p.set_defaults(func=run, offline=True)


def run(args) -> int:
    import sys

    from ..serve.server import ServeConfig, serve

    cfg = ServeConfig(models=args.models, host=args.host, port=args.port, engine=args.engine,
                      parallel=args.parallel, ctx=args.ctx, threads=args.threads, max_tokens=args.max_tokens,
                      max_request_bytes=args.max_request_bytes, max_connections=args.max_connections,
                      header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                      idle_timeout=args.idle_timeout,
                      tls_cert=str(args.tls_cert) if args.tls_cert else None,
                      tls_key=str(args.tls_key) if args.tls_key else None, log_prompts=args.log_prompts,
                      vllm_args=args.vllm_arg, embeddings=args.embeddings, loras=args.lora)
    if not cfg.models and not cfg.embeddings:
        from ..errors import AirlockError

        raise AirlockError("nothing to serve", where="MODEL", fix="give a model to chat with, or --embeddings MODEL")
    if not args.detach:
        return serve(cfg)
    from ..serve.server import start_job

    job = start_job(cfg, ["airlock", *sys.argv[1:]], args.name)
    print(f"job {job.id} started (pid {job.status().get('pid')}): serving {', '.join(args.models)} on "
          f"{cfg.host}:{cfg.port}")
    print(f"follow: airlock jobs logs -f {job.id}\nstop:   airlock jobs stop {job.id}")
    return 0

"""`airlock serve MODEL... [--host H] [--port P]`: the tuned models as an OpenAI-compatible service.

    airlock keys api create --name app1 --rpm 60        # prints the key once
    airlock serve demo-q4_k_m --host 0.0.0.0 --port 8000 --detach
    OpenAI(base_url="http://HOST:8000/v1", api_key="alk_app1_...").chat.completions.create(model="demo-q4_k_m", ...)

MODEL is a GGUF export by registry id or path (llama.cpp, continuous batching), or a job / adapter / HF model
directory (transformers, one answer at a time: for checking a job before export), or with --engine vllm an HF
model directory that vLLM serves on a CUDA host behind the same keys and limits. `--lora NAME=ADAPTER.gguf` adds a
LoRA adapter on the (one) GGUF base as model NAME; `--embeddings MODEL` serves a GGUF at /v1/embeddings. Safe by default: it listens on
127.0.0.1 unless --host says otherwise, and refuses any other address until at least one API key exists.
Connections are capped and timed (serve.connections: --max-connections, --header-timeout, --idle-timeout,
--body-timeout). SIGTERM (or `airlock jobs stop`) stops taking requests, lets the answers in flight finish (30 s at most) and exits.
"""

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import AirlockError
from .connections import guarded_protocol, open_file_limit, throttled_exception_handler


@dataclass
class ServeConfig:
    models: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    engine: str = "llama"  # llama (GGUF, or transformers for HF directories) | vllm
    parallel: int = 4  # answers generated at once per GGUF model (llama.cpp sequences)
    ctx: int = 2048  # context per answer, in tokens
    threads: int | None = None
    max_tokens: int = 1024  # the most a request may ask for
    max_request_bytes: int = 1 << 20
    max_connections: int = 512  # open connections; past it a new one gets 503 (serve.connections)
    header_timeout: float = 10.0  # seconds a connection has to send a request's headers
    body_timeout: float = 30.0  # seconds a request has to send its body
    idle_timeout: float = 5.0  # seconds an idle keep-alive connection stays open
    tls_cert: str | None = None
    tls_key: str | None = None
    log_prompts: bool = False
    vllm_args: list[str] | None = None
    embeddings: list[str] | None = None  # GGUFs served at /v1/embeddings
    loras: list[str] | None = None  # "NAME=ADAPTER.gguf": LoRA adapters on the (one) GGUF base, each a model id


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_model(ref: str) -> tuple[str, Path, str]:
    """(model id, path, kind gguf|hf) for a registry id or a path."""
    from .. import lineage, registry

    path = Path(ref).expanduser()
    if path.is_file():
        return path.stem, path, "gguf" if path.suffix == ".gguf" else "file"
    if path.is_dir():
        return path.name, path, "hf"
    state = registry.artifacts()
    try:
        entry = lineage.resolve(ref, state)
    except AirlockError:
        from ..jobs import find_job

        try:
            job = find_job(ref)
        except AirlockError:
            raise AirlockError(f"no model {ref!r}: not a file, a directory, a registry id or a job", where=ref,
                               fix="see `airlock models list` (GGUF exports) and `airlock jobs list`") from None
        return job.id, job.path, "hf"
    if not entry.get("path") or not Path(entry["path"]).exists():
        raise AirlockError(f"{entry['id']}: its file is gone ({entry.get('path')})", where=ref,
                           fix="export it again, or `airlock models rm` the stale record")
    kind = "gguf" if entry["kind"] == "gguf" else "hf"
    return entry["id"], Path(entry["path"]), kind


def load_engines(cfg: ServeConfig) -> dict:
    """Every model loaded (or refused with a clear error) before the port opens."""
    from .engine import AdapterView, LlamaEngine
    from .hf_engine import HFEngine

    engines, adapters = {}, parse_loras(cfg)
    try:
        for ref in cfg.models:
            name, path, kind = resolve_model(ref)
            if name in engines:
                raise AirlockError(f"model {name!r} given twice", where=ref, fix="name each model once")
            if cfg.engine == "vllm":
                from .vllm import VllmEngine

                engines[name] = VllmEngine(path, name, cfg.vllm_args or [])
            elif kind == "gguf":
                engines[name] = LlamaEngine(path, slots=cfg.parallel, ctx_per_slot=cfg.ctx, threads=cfg.threads,
                                            adapters=adapters)
                engines.update((adapter, AdapterView(engines[name], adapter)) for adapter in adapters)
            elif kind == "hf":
                engines[name] = HFEngine(path, ctx=cfg.ctx, threads=cfg.threads)
            else:
                raise AirlockError(f"{path.name} is neither a GGUF nor a model directory", where=ref,
                                   fix="give a .gguf export, a job id or a model directory")
    except BaseException:
        for engine in engines.values():
            engine.close(timeout=0)
        raise
    return engines


def parse_loras(cfg: ServeConfig) -> dict[str, Path]:
    """{name: LoRA GGUF} of the --lora options, checked before anything loads: one GGUF base to put them on,
    names that are not already model ids."""
    adapters = {}
    for option in cfg.loras or []:
        name, sep, ref = option.partition("=")
        where = f"--lora {option}"
        if not sep or not name or not ref:
            raise AirlockError("expected NAME=ADAPTER.gguf", where=where,
                               fix="e.g. --lora support-v2=exports/support-v2-lora-f16.gguf")
        if name in adapters or name in [resolve_model(m)[0] for m in cfg.models]:
            raise AirlockError(f"the name {name!r} is already a model id here", where=where, fix="name it otherwise")
        _, path, kind = resolve_model(ref)
        if kind != "gguf":
            raise AirlockError("a LoRA adapter is served from its GGUF", where=where,
                               fix="export the job with `airlock export gguf JOB --lora` and give the -lora-f16.gguf")
        adapters[name] = path
    if adapters and (cfg.engine != "llama" or len(cfg.models) != 1 or resolve_model(cfg.models[0])[2] != "gguf"):
        raise AirlockError("--lora puts adapters on one GGUF base model", where="--lora",
                           fix="serve one base GGUF with its adapters: airlock serve BASE.gguf --lora NAME=ADAPTER.gguf")
    return adapters


def load_embedders(cfg: ServeConfig) -> dict:
    """The --embeddings models (GGUF), each loaded in embedding mode before the port opens."""
    from .embeddings import Embedder

    embedders = {}
    try:
        for ref in cfg.embeddings or []:
            name, path, kind = resolve_model(ref)
            if kind != "gguf":
                raise AirlockError(f"{name}: embeddings are served from a GGUF", where=ref,
                                   fix="export the model to GGUF (`airlock export gguf ...`) and give that")
            if name in embedders:
                raise AirlockError(f"embedding model {name!r} given twice", where=ref, fix="name each model once")
            embedders[name] = Embedder(path, ctx=cfg.ctx, threads=cfg.threads)
    except BaseException:
        for embedder in embedders.values():
            embedder.close()
        raise
    return embedders


def check_safety(cfg: ServeConfig, guard) -> None:
    for value, flag in ((cfg.max_connections, "--max-connections"), (cfg.header_timeout, "--header-timeout"),
                        (cfg.body_timeout, "--body-timeout"), (cfg.idle_timeout, "--idle-timeout")):
        if value <= 0:
            raise AirlockError(f"{flag} must be above 0 (got {value})", where=flag)
    if not is_loopback(cfg.host) and not guard.live_keys():
        raise AirlockError(f"refusing to listen on {cfg.host} without an API key: anyone on the network could use "
                           "the model", where="--host", fix="create one first: airlock keys api create --name app1")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise AirlockError("TLS needs both --tls-cert and --tls-key", where="--tls-cert/--tls-key")
    for f in filter(None, (cfg.tls_cert, cfg.tls_key)):
        if not Path(f).is_file():
            raise AirlockError("file not found", where=f, fix="give the PEM certificate and key files")
    with socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((cfg.host, cfg.port))
        except OSError as exc:
            raise AirlockError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}", where="--host/--port",
                               fix="choose another --port, or stop what uses it") from None


def serve(cfg: ServeConfig, on_ready=None, on_tick=None) -> int:
    """Run the server until SIGTERM/SIGINT. `on_ready(url)` once listening; `on_tick(metrics)` every 5 s."""
    import uvicorn

    from ..paths import home
    from .api import create_app
    from .guard import Guard

    guard = Guard(open_access=is_loopback(cfg.host), home=home(), log_prompts=cfg.log_prompts)
    check_safety(cfg, guard)
    max_connections, lowered = open_file_limit(cfg.max_connections)
    if lowered:
        print(f"note: {lowered}", flush=True)
    engines = load_engines(cfg)
    try:
        embedders = load_embedders(cfg)
    except BaseException:
        for engine in engines.values():
            engine.close(timeout=0)
        raise
    engines_and_embedders = {**engines, **{f"{n} (embeddings)": e for n, e in embedders.items()}}
    app = create_app(engines, guard, max_tokens=cfg.max_tokens, max_request_bytes=cfg.max_request_bytes,
                     body_timeout=cfg.body_timeout, embedders=embedders)
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                            ssl_certfile=cfg.tls_cert, ssl_keyfile=cfg.tls_key, timeout_graceful_shutdown=30,
                            lifespan="off", http=guarded_protocol(max_connections, cfg.header_timeout),
                            timeout_keep_alive=max(1, round(cfg.idle_timeout)))
    server = _server_class()(config)
    scheme = "https" if cfg.tls_cert else "http"
    url = f"{scheme}://{cfg.host}:{cfg.port}/v1"
    done = threading.Event()

    def watch():
        while not server.started and not done.is_set():
            time.sleep(0.05)
        if server.started:
            print(f"serving {', '.join(sorted(engines_and_embedders))} at {url} ({'keys required' if guard.keys() else 'no keys'})",
                  flush=True)
            for name, engine in sorted(engines_and_embedders.items()):
                if getattr(engine, "runs_on", None):
                    print(f"  {name}: {engine.runs_on}", flush=True)
            if on_ready:
                on_ready(url)
        while on_tick and not done.wait(5.0):
            on_tick(app.state.metrics.snapshot())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        server.run()
    finally:
        done.set()
        for engine in engines_and_embedders.values():
            engine.close()
        guard.flush()
        if on_tick:
            on_tick(app.state.metrics.snapshot())
    return 0


def _server_class():
    import asyncio
    import contextlib
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGINT/SIGTERM end `serve` normally after the graceful shutdown (uvicorn
        re-raises the signal afterwards, which would kill the process before it can record that it stopped)."""

        async def startup(self, sockets=None):
            asyncio.get_running_loop().set_exception_handler(throttled_exception_handler())
            await super().startup(sockets)

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
    return Server


def start_job(cfg: ServeConfig, argv: list[str], name: str | None = None):
    """`airlock serve --detach`, for the CLI and the TUI alike: refuse what is unsafe before a job exists, then
    start the server as a detached job (`airlock jobs list|logs|stop` manage it). Returns the job."""
    from dataclasses import asdict

    from ..jobs import create_job, start_detached
    from ..paths import home
    from .guard import Guard

    check_safety(cfg, Guard(open_access=is_loopback(cfg.host), home=home()))
    for ref in [*cfg.models, *(cfg.embeddings or [])]:
        resolve_model(ref)
    parse_loras(cfg)
    job = create_job("serve", asdict(cfg), argv, name or "serve", runner="appliance.serve.server:run_job")
    start_detached(job)
    return job


def run_job(job) -> int:
    """The runner of a detached `airlock serve --detach`: the job's metrics are the server's running totals."""
    cfg = ServeConfig(**job.config())
    job.set_status(state="running", message="starting")

    def ready(url):
        job.set_status(state="running", message=f"serving at {url}", url=url)

    code = serve(cfg, on_ready=ready, on_tick=job.append_metrics)
    job.set_status(state="stopped", message="stopped")
    return code

"""`airlock serve` against llama-cpp-python's own server on the same GGUF and threads, side by side.

    .venv/bin/python -m bench serve [--quick]

The embedded model (SmolLM2-135M as Q8_0) is served by each side in turn (one at a time, rounds alternating
A B A B, so neither competes with the other for the cores); 1, 8 and 32 streaming clients each ask a few short
questions (64 tokens at most). Reported per level: aggregate generated tokens/s (stream chunks carrying text, one
per token on both sides) and p50/p95 time to first token. Goals: at 8+ clients >= 2x the peer's tokens/s with
p95 TTFT no worse; at 1 client >= 0.97x.
"""

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import row

PROMPTS = ["Who are you?", "What is the sea?", "Name three colours.", "Why is the sky blue?"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gguf(work: Path) -> Path:
    from appliance.embedded import ensure_default_model
    from appliance.export.gguf import convert_model

    return convert_model(ensure_default_model(), work / "smollm2-q8_0.gguf", "q8_0")


def _start(argv: list[str], port: int, home: Path) -> subprocess.Popen:
    """A server started with its keys and audit log in the bench's own AIRLOCK_HOME; returns once it answers."""
    import httpx

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, AIRLOCK_HOME=str(home)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {argv}")


async def _clients(url: str, model: str, clients: int, per_client: int) -> tuple[float, list[float]]:
    """(aggregate tokens/s, time-to-first-token of every request) for `clients` concurrent streams."""
    import httpx

    ttfts, tokens = [], 0

    async def client(i: int):
        nonlocal tokens
        async with httpx.AsyncClient(base_url=url, timeout=300) as http:
            for j in range(per_client):
                body = {"model": model, "messages": [{"role": "user", "content": PROMPTS[(i + j) % len(PROMPTS)]}],
                        "max_tokens": 64, "temperature": 0, "stream": True}
                start, first = time.perf_counter(), None
                async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            choices = json.loads(line[6:]).get("choices") or [{}]
                            if (choices[0].get("delta") or {}).get("content"):
                                tokens += 1
                                first = first or time.perf_counter()
                ttfts.append((first or time.perf_counter()) - start)

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return tokens / (time.perf_counter() - start), ttfts


def run(quick: bool = False) -> list[dict]:
    from appliance.chat import default_threads

    levels = (1, 8) if quick else (1, 8, 32)
    rounds, per_client = (1, 2) if quick else (3, 3)
    threads = default_threads()
    work = Path(tempfile.mkdtemp(prefix="airlock-bench-serve-"))
    gguf = _gguf(work)
    samples = {side: {n: {"tps": [], "ttft": []} for n in levels} for side in ("ours", "peer")}
    for _ in range(rounds):
        for side in ("ours", "peer"):
            port = _port()
            if side == "ours":
                argv = [sys.executable, "-m", "appliance", "serve", str(gguf), "--port", str(port), "--parallel", "8",
                        "--threads", str(threads), "--ctx", "1024"]
                model = gguf.stem
            else:
                # --interrupt_requests False: queue concurrent requests (by default a new request cuts off the
                # one streaming, which no multi-client service can use)
                argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port),
                        "--n_threads", str(threads), "--n_ctx", "2048", "--interrupt_requests", "False"]
                model = str(gguf)
            proc = _start(argv, port, work / "home")
            try:
                for n in levels:
                    tps, ttfts = asyncio.run(_clients(f"http://127.0.0.1:{port}", model, n, per_client))
                    samples[side][n]["tps"].append(tps)
                    samples[side][n]["ttft"].extend(ttfts)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    rows = []
    for n in levels:
        ours, peer = samples["ours"][n], samples["peer"][n]
        rows.append(row(f"serve {n} client(s): generated tokens/s", "llama_cpp.server", ours["tps"], peer["tps"],
                        unit="tok/s", lower_is_better=False))
        for q, label in ((50, "p50"), (95, "p95")):
            rows.append(row(f"serve {n} client(s): {label} time to first token", "llama_cpp.server",
                            [_pct(ours["ttft"], q)], [_pct(peer["ttft"], q)]))
    return rows


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

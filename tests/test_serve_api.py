"""`airlock serve` against the official `openai` client and raw HTTP, on loopback, with the connection guard on:
the embedded model (SmolLM2-135M as a Q8_0 GGUF) for the protocol and the greedy answer, the tiny model for load.

    .venv/bin/python -m pytest tests/test_serve_api.py -q
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import airlock_argv, wait_for

QUESTION = "Who are you?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`airlock serve` in its own AIRLOCK_HOME, with named keys made by the CLI."""

    def __init__(self, home: Path, models: list, *args, keys: dict | None = None, open_files: int | None = None):
        self.home, self.port = home, free_port()
        self.env = dict(os.environ, AIRLOCK_HOME=str(home), AIRLOCK_NET_GUARD_LOG=str(home / "net-guard.log"))
        self.keys = {name: self.cli("keys", "api", "create", "--name", name, *flags).stdout.splitlines()[0]
                     for name, flags in (keys or {}).items()}
        self.log = open(home / "server.log", "w")
        def limit():  # the process's file limit (ulimit -n), as a site's may be
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        self.proc = subprocess.Popen(airlock_argv("serve", *models, "--port", self.port, *args), env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=limit if open_files else None)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for(self.healthy, "the server to answer /health", timeout=120)

    def cli(self, *args, check=True):
        proc = subprocess.run(airlock_argv(*args), env=self.env, capture_output=True, text=True)
        assert not check or proc.returncode == 0, proc.stderr
        return proc

    def healthy(self) -> bool:
        assert self.proc.poll() is None, (self.home / "server.log").read_text()
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def audit(self) -> list[dict]:
        path = self.home / "registry" / "audit.jsonl"
        return [e for e in map(json.loads, path.read_text().splitlines()) if e["action"] == "serve-request"]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()
        guard = self.home / "net-guard.log"
        assert not guard.exists() or not guard.read_text(), f"the server tried to connect out:\n{guard.read_text()}"
        return self.proc.returncode


@pytest.fixture(scope="module")
def embedded_gguf(tmp_path_factory) -> Path:
    from appliance.embedded import default_model_path
    from appliance.export.gguf import convert_model

    snapshot = default_model_path()
    if snapshot is None:
        pytest.skip("the embedded default model is not set up (make setup)")
    return convert_model(snapshot, tmp_path_factory.mktemp("embedded") / "smollm2-q8_0.gguf", "q8_0")


@pytest.fixture(scope="module")
def server(embedded_gguf, tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-home")
    s = Server(home, [embedded_gguf], "--parallel", "2", "--ctx", "1024", "--max-tokens", "256",
               "--embeddings", embedded_gguf,
               keys={"app1": [], "slow": ["--rpm", "2"], "small": ["--quota-tokens", "40"],
                     "old": ["--expires", "2020-01-01"], "other": ["--models", "some-other-model"],
                     "gone": [], "ops": ["--admin"]})
    s.cli("keys", "api", "revoke", "gone")
    yield s
    assert s.stop() == 0


def client(server, key="app1"):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=server.keys.get(key, key), max_retries=0)


def test_serve_openai_client_chat_stream_completions_models(server, embedded_gguf):
    c = client(server)
    model = embedded_gguf.stem
    assert [m.id for m in c.models.list().data] == [model]
    whole = c.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}],
                                      temperature=0, max_tokens=24)
    assert whole.choices[0].message.content and whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 5
    pieces, usage = [], None
    for chunk in c.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}],
                                           temperature=0, max_tokens=24, stream=True,
                                           stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == whole.choices[0].message.content and usage.completion_tokens == whole.usage.completion_tokens
    text = c.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert text.choices[0].text and text.usage.prompt_tokens > 0


def test_serve_greedy_answer_equals_airlock_chat(server, embedded_gguf):
    served = client(server).chat.completions.create(
        model=embedded_gguf.stem, messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=48)
    chat = server.cli("chat", embedded_gguf, "--prompt", QUESTION, "--max-tokens", "48")
    assert served.choices[0].message.content.strip() == chat.stdout.strip()


def _status(server, key, body=None, path="/v1/chat/completions"):
    headers = {"Authorization": f"Bearer {server.keys.get(key, key)}"} if key else {}
    body = body or {"model": "smollm2-q8_0", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)


def test_serve_auth_statuses(server):
    assert _status(server, None).status_code == 401
    assert _status(server, "alk_app1_" + "x" * 43).status_code == 401
    assert _status(server, "gone").json()["error"]["message"] == "this API key was revoked"
    assert "expired" in _status(server, "old").json()["error"]["message"]
    assert _status(server, "other").status_code == 403
    assert _status(server, "app1").status_code == 200
    slow = [_status(server, "slow") for _ in range(3)]
    assert [r.status_code for r in slow] == [200, 200, 429] and int(slow[2].headers["Retry-After"]) >= 1
    small = [_status(server, "small") for _ in range(4)]
    assert small[-1].status_code == 429 and "quota" in small[-1].json()["error"]["message"]
    assert _status(server, "app1", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}).status_code == 404
    # SmolLM2-135M's chat template never mentions tools: refused by name, never answered without them
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    no_tools = _status(server, "app1", {"model": "smollm2-q8_0", "messages": [{"role": "user", "content": "x"}],
                                        "tools": [tool]})
    assert no_tools.status_code == 400 and no_tools.json()["error"]["param"] == "tools"
    assert "never mentions tools" in no_tools.json()["error"]["message"]
    old_name = _status(server, "app1", {"model": "smollm2-q8_0", "messages": [{"role": "user", "content": "x"}],
                                        "functions": [tool["function"]]})
    assert old_name.status_code == 400 and "use 'tools'" in old_name.json()["error"]["message"]
    big = httpx.post(f"{server.url}/v1/chat/completions", content=b"x" * (2 << 20), timeout=30,
                     headers={"Authorization": f"Bearer {server.keys['app1']}", "Content-Type": "application/json"})
    assert big.status_code == 413
    stored = (server.home / "serve" / "keys.json").read_text()
    assert not any(k.split("_", 2)[2] in stored for k in server.keys.values()), "a secret was stored in plain text"
    # /metrics names every key and its counts: an admin key's to read
    denied = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.keys['app1']}"})
    assert denied.status_code == 403 and "--admin" in denied.json()["error"]["message"]
    metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.keys['ops']}"}).text
    assert 'airlock_requests_total{key="slow",model="smollm2-q8_0",status="429"}' in metrics
    # /health: up or not for anyone; what is served only for a key
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    keyed = httpx.get(f"{server.url}/health", headers={"Authorization": f"Bearer {server.keys['app1']}"}).json()
    assert keyed["models"] == ["smollm2-q8_0"] and keyed["active"] >= 0
    listed = server.cli("keys", "api", "list").stdout
    assert any(line.split()[:1] == ["ops"] and " yes " in line for line in listed.splitlines()), listed


def test_serve_client_disconnect_frees_the_slot(server, embedded_gguf):
    body = {"model": embedded_gguf.stem, "messages": [{"role": "user", "content": "Write a long story."}],
            "max_tokens": 250, "stream": True, "temperature": 0}
    headers = {"Authorization": f"Bearer {server.keys['app1']}"}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i > 4:
                break  # hang up mid-answer
    wait_for(lambda: httpx.get(f"{server.url}/health", headers=headers).json()["active"] == 0, "the slot to be freed",
             timeout=30)
    wait_for(lambda: any(e["status"] == 499 for e in server.audit()), "the cancelled request in the audit log", 30)
    cancelled = [e for e in server.audit() if e["status"] == 499][-1]
    assert cancelled["completion_tokens"] < 250


def test_serve_refuses_an_open_port_without_keys(embedded_gguf, tmp_path):
    env = dict(os.environ, AIRLOCK_HOME=str(tmp_path))
    proc = subprocess.run(airlock_argv("serve", embedded_gguf, "--host", "0.0.0.0", "--port", free_port()),
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "without an API key" in proc.stderr and "Traceback" not in proc.stderr
    assert "airlock keys api create" in proc.stderr


@pytest.mark.parametrize("damage", ["missing", "not gguf", "truncated"])
def test_serve_bad_model_is_a_clear_error_at_start(damage, embedded_gguf, tmp_path):
    model = tmp_path / "model.gguf"
    if damage == "not gguf":
        model.write_text("hello")
    elif damage == "truncated":
        model.write_bytes(embedded_gguf.read_bytes()[:4096])
    proc = subprocess.run(airlock_argv("serve", model, "--port", free_port()), capture_output=True, text=True,
                          env=dict(os.environ, AIRLOCK_HOME=str(tmp_path)), timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert {"missing": "no model", "not gguf": "not a GGUF", "truncated": "cannot load"}[damage] in proc.stderr


def test_serve_keys_cli_list_rotate(tmp_path):
    env = dict(os.environ, AIRLOCK_HOME=str(tmp_path))

    def cli(*args):
        return subprocess.run(airlock_argv("keys", "api", *args), env=env, capture_output=True, text=True)

    first = cli("create", "--name", "team-a", "--rpm", "10", "--models", "m1,m2").stdout.splitlines()[0]
    assert first.startswith("alk_team-a_")
    assert cli("create", "--name", "team-a").returncode != 0
    second = cli("rotate", "team-a").stdout.splitlines()[0]
    assert second != first and "active" in cli("list").stdout and "m1,m2" in cli("list").stdout
    from appliance.serve import keys

    stored = keys.load(tmp_path / "serve" / "keys.json")
    assert keys.authenticate(first, stored)[0] is None and keys.authenticate(second, stored)[0].name == "team-a"
    assert oct((tmp_path / "serve" / "keys.json").stat().st_mode & 0o777) == "0o600"


def test_serve_detached_is_a_job(embedded_gguf, tmp_path):
    env = dict(os.environ, AIRLOCK_HOME=str(tmp_path))
    port = free_port()
    out = subprocess.run(airlock_argv("serve", embedded_gguf, "--port", port, "--detach", "--name", "api"),
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    job = out.stdout.split()[1]
    wait_for(lambda: _up(port), "the detached server", timeout=120)
    listed = subprocess.run(airlock_argv("jobs", "list"), env=env, capture_output=True, text=True).stdout
    assert job in listed and "serve" in listed
    stopped = subprocess.run(airlock_argv("jobs", "stop", job), env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not _up(port), "the server to stop", timeout=60)


def _up(port) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# ------------------------------------------------------------------ load and shutdown, on the tiny model
@pytest.fixture(scope="module")
def tiny_gguf(tiny_model, tmp_path_factory) -> Path:
    from appliance.export.gguf import convert_model

    return convert_model(tiny_model, tmp_path_factory.mktemp("tiny-gguf") / "tiny-f16.gguf", "f16")


async def _client_run(url, key, n, results):
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 headers={"Authorization": f"Bearer {key}"} if key else {}) as http:
        for i in range(n):
            stream = i % 2 == 0
            body = {"model": "tiny-f16", "messages": [{"role": "user", "content": f"question {i}"}],
                    "max_tokens": 6, "temperature": 0, "stream": stream}
            if stream:
                body["stream_options"] = {"include_usage": True}
                async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                    usage, done = {"completion_tokens": 0}, False
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            usage = json.loads(line[6:]).get("usage") or usage
                        done = done or line == "data: [DONE]"
                    results.append((key, r.status_code, "stream", usage, done))
            else:
                r = await http.post("/v1/chat/completions", json=body)
                results.append((key, r.status_code, "whole", r.json().get("usage"), True))


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


async def _slow_socket(port: int, closed: list) -> None:
    """A client that opens a request and sends its headers a byte a second (slowloris): the server must close it,
    whatever it keeps sending. Records what ended it: the server's answer, its close, or a reset."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    deadline = loop.time() + 60
    try:
        await writer.drain()
        while loop.time() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(1024), 1.0)
            except asyncio.TimeoutError:
                writer.write(b"x")  # one more header byte
                await writer.drain()
                continue
            closed.append(data[:12] or b"closed")
            break
    except (ConnectionError, OSError):
        closed.append(b"reset")
    writer.close()


async def _huge_chunked_body(url: str, key: str, sent: list) -> int:
    """One client streaming a 1 GB chunked body: refused at the cap, long before the gigabyte."""
    async def chunks():
        block = b" " * (1 << 20)
        for _ in range(1024):
            sent[0] += len(block)
            yield block
    async with httpx.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {key}"}) as http:
        try:
            return (await http.post(f"{url}/v1/chat/completions", content=chunks())).status_code
        except httpx.HTTPError:
            return 0  # the server closed the connection mid-upload


def test_serve_load_64_clients(tiny_gguf, tmp_path):
    """64 clients x 10 requests while 200 slow-header sockets are open and one client sends a 1 GB chunked body:
    no 5xx to the clients, every slow socket closed by the header timeout, the body refused at the cap, the
    server's memory bounded."""
    server = Server(tmp_path, [tiny_gguf], "--parallel", "4", "--ctx", "256", "--header-timeout", "3",
                    keys={"a": [], "b": [], "limited": ["--rpm", "5"]})
    try:
        keys = [server.keys["a"], server.keys["b"], server.keys["limited"], "alk_a_" + "y" * 43]
        results: list = []
        closed: list = []
        sent = [0]
        rss_before = _rss_kib(server.proc.pid)

        async def main():
            slow = [asyncio.create_task(_slow_socket(server.port, closed)) for _ in range(200)]
            await asyncio.sleep(0.5)
            huge = asyncio.create_task(_huge_chunked_body(server.url, server.keys["a"], sent))
            await asyncio.gather(*(_client_run(server.url, keys[i % 4], 10, results) for i in range(64)))
            await asyncio.gather(*slow)
            return await huge

        huge_status = asyncio.run(main())
        rss_after = _rss_kib(server.proc.pid)
    finally:
        assert server.stop() == 0
    print(f"server RSS {rss_before >> 10} -> {rss_after >> 10} MiB; the 1 GB body: {huge_status or 'closed'} after "
          f"{sent[0] >> 20} MiB sent")
    assert len(closed) == 200, f"{200 - len(closed)} slow sockets were left open"
    assert closed.count(b"HTTP/1.1 408") > 150, set(closed)  # most answered 408 (a few may see the close first)
    assert huge_status in (413, 0) and sent[0] < 64 << 20, (huge_status, sent[0])
    assert rss_after - rss_before < 200 << 10, f"the server grew by {(rss_after - rss_before) >> 10} MiB"
    assert len(results) == 640 and not [r for r in results if r[1] >= 500], "no 5xx"
    by_status = {}
    for key, status, *_ in results:
        by_status.setdefault((key, status), 0)
        by_status[(key, status)] += 1
    assert {s for (_, s) in by_status} <= {200, 401, 429}
    assert by_status.get((keys[3], 401)) == 160 and by_status.get((keys[2], 200)) == 5
    assert by_status.get((keys[0], 200)) == 160 and by_status.get((keys[1], 200)) == 160
    assert all(done for _, status, *_, done in results if status == 200), "every answer ended: nothing dropped"
    # what the audit log counts per key is exactly what the clients were told
    for name in ("a", "b", "limited"):
        told = sum(r[3]["completion_tokens"] for r in results if r[0] == server.keys[name] and r[1] == 200)
        audited = sum(e["completion_tokens"] for e in server.audit() if e["key"] == name and e["status"] == 200)
        assert told == audited > 0, name


def test_serve_connection_cap_and_timeouts(tiny_gguf, tmp_path):
    """Past the connection cap a client gets a clear 503 at once; idle sockets are closed by the header timeout
    and the server serves again; a cap above what the file limit allows is lowered and said so, and connections
    past it cost no traceback in the log."""
    server = Server(tmp_path, [tiny_gguf], "--ctx", "256", "--max-connections", "1000", "--header-timeout", "2",
                    open_files=100)
    body = {"model": "tiny-f16", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    try:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(36)]
        time.sleep(0.3)
        busy = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
        assert busy.status_code == 503 and busy.json()["error"]["type"] == "server_busy", busy.text
        assert busy.headers["Retry-After"] == "1"
        more = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(100)]  # past the file limit
        for s in held:
            s.settimeout(10)
            assert s.recv(1024).startswith(b"HTTP/1.1 408"), "an idle connection outlived the header timeout"
        for s in held + more:
            s.close()
        wait_for(lambda: httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30).status_code == 200,
                 "the server to serve again", timeout=30, poll=0.5)
    finally:
        assert server.stop() == 0
    log = (tmp_path / "server.log").read_text()
    assert "--max-connections 1000 lowered to 36" in log and "Traceback" not in log, log
    bad = server.cli("serve", tiny_gguf, "--header-timeout", "0", check=False)
    assert bad.returncode == 2 and "--header-timeout must be above 0" in bad.stderr


def test_serve_sigterm_under_load_finishes_cleanly(tiny_gguf, tmp_path):
    server = Server(tmp_path, [tiny_gguf], "--parallel", "2", "--ctx", "256")
    results = []

    async def one(i):
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            try:
                r = await http.post("/v1/chat/completions", json={
                    "model": "tiny-f16", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 64})
                results.append(r.status_code)
            except httpx.HTTPError as exc:
                results.append(type(exc).__name__)

    async def main():
        tasks = [asyncio.create_task(one(i)) for i in range(8)]
        await asyncio.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert server.proc.wait(timeout=60) == 0
    server.stop()
    assert all(r in (200, 499) or r in ("ConnectError", "RemoteProtocolError", "ReadError") for r in results), results
    assert 200 in results


def test_serve_budgets_the_context_and_checks_max_tokens(server, embedded_gguf):
    """Without max_tokens a prompt that fits is answered in the context it leaves (OpenAI's finish_reason "length"
    when it fills it); max_tokens 0 is a 400 as at OpenAI; the Bearer scheme is case-insensitive."""
    model = embedded_gguf.stem
    listed = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"bearer {server.keys['app1']}"}).json()
    entry = next(m for m in listed["data"] if m["id"] == model)
    context, cap = entry["context_length"], entry["max_tokens"]
    assert (context, cap) == (1024, 256)

    def ask(words: int, **extra):
        body = {"model": model, "temperature": 0, **extra,
                "messages": [{"role": "user", "content": "Repeat after me: " + "ship " * words}]}
        return _status(server, "app1", body)

    probe = ask(10, max_tokens=1).json()["usage"]["prompt_tokens"]
    words = context - 12 - (probe - 10)  # about 12 tokens of room left
    near_full = ask(words, max_tokens=1).json()["usage"]["prompt_tokens"]
    assert context - 40 < near_full < context, near_full
    assert ask(words, max_tokens=cap).status_code == 400  # asked for more than fits: refused, as before
    answered = ask(words)  # asked for nothing: it fits, so it is answered
    assert answered.status_code == 200, answered.text
    usage, choice = answered.json()["usage"], answered.json()["choices"][0]
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= context
    assert choice["finish_reason"] == "length" or usage["completion_tokens"] < context - near_full
    too_long = ask(context + 10)
    assert too_long.status_code == 400 and "exceed the context" in too_long.json()["error"]["message"]
    for bad in (0, -1):
        refused = ask(10, max_tokens=bad)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "max_tokens", refused.text
    assert ask(10, max_completion_tokens=0).json()["error"]["param"] == "max_completion_tokens"


def test_serve_logprobs_in_openai_shapes(server, embedded_gguf):
    """logprobs / top_logprobs through the official client: one entry per generated token, the greedy choice the
    most likely of its alternatives, the tokens spelling the answer; completions in the legacy shape; streamed
    chunks carry their tokens' entries."""
    import math

    c, model = client(server), embedded_gguf.stem
    messages = [{"role": "user", "content": "Name three colours."}]
    answer = c.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=12, logprobs=True,
                                       top_logprobs=3)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens and "".join(e.token for e in content) == \
        answer.choices[0].message.content
    for e in content:
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token  # greedy: the most likely
        assert e.logprob == e.top_logprobs[0].logprob <= 0 and bytes(e.bytes).decode() == e.token
        assert [t.logprob for t in e.top_logprobs] == sorted((t.logprob for t in e.top_logprobs), reverse=True)
        assert sum(math.exp(t.logprob) for t in e.top_logprobs) <= 1.0 + 1e-6
    plain = c.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=12)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == answer.choices[0].message.content

    streamed = c.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=12,
                                         logprobs=True, stream=True)
    entries = [e for chunk in streamed for choice in chunk.choices if choice.logprobs
               for e in choice.logprobs.content or []]
    assert [e.token for e in entries] == [e.token for e in content]
    assert all(e.top_logprobs == [] for e in entries)  # top_logprobs not asked: none

    legacy = c.completions.create(model=model, prompt="The capital of France is", max_tokens=6, temperature=0,
                                  logprobs=2).choices[0]
    assert len(legacy.logprobs.tokens) == len(legacy.logprobs.token_logprobs) == len(legacy.logprobs.top_logprobs)
    assert "".join(legacy.logprobs.tokens) == legacy.text
    assert legacy.logprobs.text_offset == [sum(map(len, legacy.logprobs.tokens[:i]))
                                           for i in range(len(legacy.logprobs.tokens))]
    assert all(len(top) <= 2 for top in legacy.logprobs.top_logprobs)

    def refused(**body):
        r = _status(server, "app1", {"model": model, "messages": messages, **body})
        return r.status_code, r.json()["error"]["param"]

    assert refused(top_logprobs=3) == (400, "top_logprobs")  # without logprobs: true, as OpenAI
    assert refused(logprobs=True, top_logprobs=21) == (400, "top_logprobs")


PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "colours"],
          "properties": {"name": {"type": "string", "maxLength": 24}, "age": {"type": "integer"},
                         "colours": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3}}}


def _valid_person(value) -> bool:
    """PERSON checked by hand (independent of the grammar converter)."""
    return (isinstance(value, dict) and set(value) == {"name", "age", "colours"} and isinstance(value["name"], str)
            and len(value["name"]) <= 24 and isinstance(value["age"], int) and not isinstance(value["age"], bool)
            and isinstance(value["colours"], list) and len(value["colours"]) <= 3
            and all(c in ("red", "green", "blue") for c in value["colours"]))


def test_serve_response_format_json_object_and_schema(server, embedded_gguf):
    """response_format through the official client: the answer parses as JSON (json_object) and holds to the
    schema (json_schema, strict), streamed or not; what the grammar cannot enforce is refused by name."""
    c, model = client(server), embedded_gguf.stem
    ask = [{"role": "user", "content": "Describe a person called Ada who likes the sky, as JSON."}]
    plain = c.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=40)
    obj = c.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=150,
                                    response_format={"type": "json_object"})
    assert obj.choices[0].finish_reason == "stop", obj.choices[0].message.content
    assert isinstance(json.loads(obj.choices[0].message.content), dict)
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    sampled = c.chat.completions.create(model=model, messages=ask, temperature=1.0, max_tokens=150, seed=7,
                                        response_format=fmt)  # sampled, not greedy: still valid
    assert sampled.choices[0].finish_reason == "stop", sampled.choices[0].message.content
    assert _valid_person(json.loads(sampled.choices[0].message.content)), sampled.choices[0].message.content
    streamed = c.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=150,
                                         response_format=fmt, stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in streamed if ch.choices)
    assert _valid_person(json.loads(text)) and not _valid_person_text(plain.choices[0].message.content)

    def refused(schema_or_format):
        body = {"model": model, "messages": ask, "response_format": schema_or_format}
        r = _status(server, "app1", body)
        return r.status_code, r.json()["error"]["param"], r.json()["error"]["message"]

    status, param, message = refused({"type": "json_schema", "json_schema": {
        "name": "n", "schema": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}})
    assert (status, param) == (400, "response_format") and "'minimum'" in message
    assert refused({"type": "json_schema", "json_schema": {"name": "n", "schema": {
        "type": "string", "format": "email"}}})[:2] == (400, "response_format")
    assert refused({"type": "yaml"})[:2] == (400, "response_format")


def _valid_person_text(text: str) -> bool:
    try:
        return _valid_person(json.loads(text))
    except ValueError:
        return False


def test_serve_body_cap_holds_for_a_chunked_body(server):
    """A chunked body (no Content-Length) is cut at the cap while it is read: 413, and the server does not hold
    what the client keeps sending (its memory stays where it was)."""
    def rss_mb() -> float:
        status = Path(f"/proc/{server.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024

    def body(total_mb: int):
        piece = b"x" * (1 << 20)
        for _ in range(total_mb):
            yield piece

    before = rss_mb()
    headers = {"Authorization": f"Bearer {server.keys['app1']}", "Content-Type": "application/json"}
    try:
        answer = httpx.post(f"{server.url}/v1/chat/completions", content=body(200), headers=headers, timeout=60)
        assert answer.status_code == 413, answer.text
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server answered and closed while the client was still sending: also a refusal
    assert rss_mb() - before < 50, (before, rss_mb())
    assert _status(server, "app1").status_code == 200  # and it still serves


def test_serve_embeddings_with_the_openai_client(server, embedded_gguf):
    """`--embeddings MODEL`: one unit-length vector per input, the same text the same vector, in the client's
    default base64 encoding and as floats alike; an input longer than the context refused, never cut."""
    import base64
    import struct

    import numpy as np

    c, model = client(server), embedded_gguf.stem
    listed = next(m for m in httpx.get(f"{server.url}/v1/models", headers={
        "Authorization": f"Bearer {server.keys['app1']}"}).json()["data"] if "embeddings" in m["endpoints"])
    assert (listed["id"], listed["dimensions"], listed["pooling"]) == (model, 576, "mean")  # SmolLM2-135M: 576 wide
    texts = ["Who are you?", "Who are you?", "The fryer is too hot."]
    answer = c.embeddings.create(model=model, input=texts)
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (3, 576) and [d.index for d in answer.data] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(vectors[0], vectors[1], atol=1e-5) and float(vectors[0] @ vectors[2]) < 0.999
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 10
    headers = {"Authorization": f"Bearer {server.keys['app1']}"}
    floats = httpx.post(f"{server.url}/v1/embeddings", headers=headers, timeout=60,
                        json={"model": model, "input": texts[0], "encoding_format": "float"}).json()
    packed = httpx.post(f"{server.url}/v1/embeddings", headers=headers, timeout=60,
                        json={"model": model, "input": texts[0], "encoding_format": "base64"}).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert np.allclose(struct.unpack(f"<{len(raw) // 4}f", raw), floats["data"][0]["embedding"], atol=1e-6)
    assert np.allclose(floats["data"][0]["embedding"], vectors[0], atol=1e-5)
    for body, status, param in (({"input": "word " * 3000}, 400, "input[0]"), ({"input": ""}, 400, "input"),
                                ({"input": "x", "dimensions": 12}, 400, "dimensions"),
                                ({"input": [[1, 2, 3]]}, 400, "input"), ({"model": "nope", "input": "x"}, 404, None)):
        r = httpx.post(f"{server.url}/v1/embeddings", headers=headers, timeout=60, json={"model": model, **body})
        assert r.status_code == status and r.json()["error"]["param"] == param, (body, r.text)
    # every error in OpenAI's shape, unknown endpoints and methods too
    for method, path, status in (("POST", "/v1/nope", 404), ("GET", "/v1/chat/completions", 405)):
        r = httpx.request(method, f"{server.url}{path}", headers=headers, timeout=30)
        assert r.status_code == status and r.json()["error"]["type"] == "invalid_request_error", r.text

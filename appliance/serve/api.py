"""The HTTP face of `airlock serve`: an OpenAI-compatible API (FastAPI + sse-starlette) over the engines.

    POST /v1/chat/completions   POST /v1/completions   POST /v1/embeddings   GET /v1/models   GET /health
    GET /metrics

Every request is authenticated and admitted by the Guard (keys, model permission, quota, rates), answered by its
model's engine (streamed as server-sent events, or whole; tool calls parsed out of the answer by serve.tool_calls),
counted (Prometheus, job metrics) and audited. A client
that goes away mid-answer frees its slot: its request is cancelled in the engine at the next step.
"""

import asyncio
import json
import time

from fastapi import FastAPI, Request as HttpRequest
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import AirlockError
from . import protocol, tool_calls
from .embeddings import encoded
from .engine import Request
from .guard import Denied, Guard
from .metrics import ServeMetrics


def create_app(engines: dict, guard: Guard, *, max_tokens: int = 1024, max_request_bytes: int = 1 << 20,
               body_timeout: float = 30.0, metrics: ServeMetrics | None = None,
               embedders: dict | None = None) -> FastAPI:
    app = FastAPI(title="Airlock", docs_url=None, redoc_url=None, openapi_url=None)
    embedders = embedders or {}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: HttpRequest, exc: StarletteHTTPException):
        """Unknown paths and methods answer in OpenAI's error shape too, as every other error here."""
        message = {404: f"no such endpoint: {request.method} {request.url.path} (see GET /v1/models)",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return JSONResponse(protocol.error(message, "invalid_request_error"), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
    bases = [e for e in engines.values() if getattr(e, "adapter", None) is None]  # not a LoRA adapter's view
    metrics = metrics or ServeMetrics()
    app.state.metrics, app.state.engines, app.state.guard = metrics, engines, guard

    def fail(status: int, message: str, kind: str, param: str | None = None, retry_after: int | None = None,
             key=None, model=None) -> JSONResponse:
        metrics.record(model, key.name if key else None, status)
        guard.audit(key, model, status, error=message)
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if status in (408, 413):  # the rest of the body is not wanted: close rather than read it to the end
            headers["Connection"] = "close"
        return JSONResponse(protocol.error(message, kind, param), status_code=status, headers=headers)

    async def read_json(request: HttpRequest):
        too_large = Denied(413, f"the request is larger than {max_request_bytes} bytes", "request_too_large")
        declared = request.headers.get("content-length")
        if declared and (not declared.isdigit() or int(declared) > max_request_bytes):
            raise too_large
        # read piece by piece and stop at the cap: a chunked body declares no length, and reading it whole first
        # would hold any amount a client sends in memory
        body, size = bytearray(), 0
        deadline = time.monotonic() + body_timeout  # a body trickled in forever would hold its connection
        pieces = request.stream().__aiter__()
        while True:
            try:
                piece = await asyncio.wait_for(pieces.__anext__(), max(0.0, deadline - time.monotonic()))
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise Denied(408, f"the request body did not arrive within {body_timeout:g} s",
                             "request_timeout") from None
            size += len(piece)
            if size > max_request_bytes:
                raise too_large
            body += piece
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise protocol.BadRequest(f"the body is not JSON: {exc}") from None

    @app.get("/health")
    async def health(request: HttpRequest):
        """Up or not, for anyone (a load balancer has no key); what is served only for a valid key."""
        status = {"status": "ok"}
        try:
            key = guard.authenticate(request.headers.get("authorization"))
        except Denied:
            return status
        return {**status, "models": sorted(n for n in {*engines, *embedders} if key is None or key.allows(n)),
                "queued": sum(e.queued() for e in bases), "active": sum(e.busy for e in bases)}

    @app.get("/metrics")
    async def prometheus(request: HttpRequest):
        try:
            key = guard.authenticate(request.headers.get("authorization"))
        except Denied as d:
            return fail(d.status, d.message, d.kind)
        if key is not None and not key.admin:  # it names every key and its counts
            return fail(403, "reading /metrics needs an admin key (airlock keys api create --name NAME --admin)",
                        "permission_denied")
        for name, engine in engines.items():
            metrics.active.labels(name).set(engine.busy)
            metrics.queued.labels(name).set(engine.queued())
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def list_models(request: HttpRequest):
        try:
            key = guard.authenticate(request.headers.get("authorization"))
        except Denied as d:
            return fail(d.status, d.message, d.kind)
        now = int(time.time())
        # beside OpenAI's fields: each model's context per request, and the longest answer a request gets (what
        # it asks for up to this; without max_tokens, this or the context the prompt leaves, whichever is less)
        # one entry per id; a model served for both says so in `endpoints`, with each side's facts
        listed = {}
        for name in sorted({*engines, *embedders}):
            if key is not None and not key.allows(name):
                continue
            entry = listed[name] = {"id": name, "object": "model", "created": now, "owned_by": "airlock",
                                    "endpoints": []}
            if name in engines:
                entry["endpoints"] += ["chat.completions", "completions"]
                entry.update(context_length=getattr(engines[name], "ctx_per_slot", None), max_tokens=max_tokens)
            if name in embedders:
                e = embedders[name]
                entry["endpoints"].append("embeddings")
                entry.update(embedding_context_length=e.ctx_per_slot, dimensions=e.dimensions, pooling=e.pooling)
        return {"object": "list", "data": list(listed.values())}

    @app.post("/v1/embeddings")
    async def embed(http: HttpRequest):
        key, model, n_tokens = None, None, 0
        try:
            key = guard.authenticate(http.headers.get("authorization"))
            body = await read_json(http)
            model, texts, encoding = protocol.embedding_request(body)
            embedder = embedders.get(model)
            if embedder is None:
                where = f"{model!r} is served for chat; " if model in engines else ""
                raise Denied(404, f"no embedding model {model!r} here ({where}serve one with `airlock serve ... "
                                  "--embeddings MODEL`; see GET /v1/models)", "model_not_found")
            if body.get("dimensions") not in (None, embedder.dimensions):
                raise protocol.BadRequest(f"'dimensions': {model!r} gives {embedder.dimensions} (vectors are not "
                                          "shortened)", "dimensions")
            counts = await run_in_threadpool(embedder.tokens, texts)
            n_tokens = sum(counts)
            if (longest := max(counts)) > embedder.ctx_per_slot:
                at = counts.index(longest)
                raise protocol.BadRequest(f"input[{at}] is {longest} tokens; {model!r} takes {embedder.ctx_per_slot}",
                                          f"input[{at}]")
            guard.admit(key, model, n_tokens)
            vectors = await run_in_threadpool(embedder.embed, texts)
        except Denied as d:
            return fail(d.status, d.message, d.kind, retry_after=d.retry_after, key=key, model=model)
        except protocol.BadRequest as exc:
            return fail(400, exc.message, "invalid_request_error", exc.param, key=key, model=model)
        guard.charge(key, 0, n_tokens)
        metrics.record(model, key.name if key else None, 200, n_tokens, 0)
        guard.audit(key, model, 200, n_tokens, 0, endpoint="embeddings", inputs=len(texts))
        return {"object": "list", "model": model, "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
                "data": [{"object": "embedding", "index": i, "embedding": encoded(v, encoding)}
                         for i, v in enumerate(vectors)]}

    @app.post("/v1/chat/completions")
    async def chat(request: HttpRequest):
        return await generate(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: HttpRequest):
        return await generate(request, chat=False)

    async def generate(http: HttpRequest, chat: bool):
        started, key, model, tools, calls = time.monotonic(), None, None, None, None
        try:
            key = guard.authenticate(http.headers.get("authorization"))
            body = await read_json(http)
            if chat:
                model, messages, sampling, stream, include_usage, tools = protocol.chat_request(body, max_tokens)
            else:
                model, prompt, sampling, stream, include_usage = protocol.completion_request(body, max_tokens)
            engine = engines.get(model)
            if engine is None:
                raise Denied(404, f"no model {model!r} here (see GET /v1/models)", "model_not_found")
            extended = getattr(engine, "proxy", False) or getattr(engine, "extended_sampling", False)
            for asked, field in ((sampling.logprobs is not None, "logprobs"), (sampling.grammar, "response_format"),
                                 (tools, "tools")):
                if asked and not extended:
                    raise protocol.BadRequest(f"'{field}' is served for GGUF models (llama.cpp); {model!r} is served "
                                              f"by {engine.kind}", field)
            if tools and not getattr(engine, "proxy", False):
                calls = tool_plan(engine, model, tools, sampling)
            text = engine.render(messages, tools.tools if tools else None)[0] if chat else prompt
            tokens = await run_in_threadpool(engine.tokenize, text, chat)
            guard.admit(key, model, len(tokens))
            loop, events = asyncio.get_running_loop(), asyncio.Queue()
            request = Request(tokens, sampling, emit=lambda kind, value: loop.call_soon_threadsafe(
                events.put_nowait, (kind, value)))
            if not getattr(engine, "proxy", False):
                engine.submit(request)
        except Denied as d:
            return fail(d.status, d.message, d.kind, retry_after=d.retry_after, key=key, model=model)
        except protocol.BadRequest as exc:
            return fail(400, exc.message, "invalid_request_error", exc.param, key=key, model=model)
        except AirlockError as exc:
            return fail(400, exc.message, "invalid_request_error", exc.where, key=key, model=model)
        rid = protocol.new_id("chatcmpl" if chat else "cmpl")
        facts = {"key": key, "model": model, "request": request, "started": started, "prompt": text, "calls": calls}
        if getattr(engine, "proxy", False):
            return await proxied(engine, chat, body, stream, include_usage, facts)
        if stream:
            return EventSourceResponse(stream_events(rid, chat, events, include_usage, facts), ping=15)
        return await whole_answer(http, rid, chat, events, facts)

    def tool_plan(engine, model: str, tools, sampling):
        """The model's tool-call format when the answer is parsed for calls (None for tool_choice none); a forced
        choice becomes the answer's grammar. A template that cannot write calls is refused by name."""
        fmt = engine.tool_format
        if fmt is None:
            raise protocol.BadRequest(tool_calls.unsupported(model, engine.template), "tools")
        if tools.forced:
            if sampling.grammar:
                raise protocol.BadRequest("'response_format' cannot be combined with a tool_choice that forces a "
                                          "call", "tool_choice")
            sampling.grammar = tool_calls.grammar(fmt, tools)
        return fmt if tools.parses else None

    def finished(facts: dict, status: int, reason: str) -> None:
        request, key, model = facts["request"], facts["key"], facts["model"]
        n_prompt, n_completion = len(request.tokens), request.completion_tokens
        guard.charge(key, n_completion, n_prompt)
        metrics.record(model, key.name if key else None, status, n_prompt, n_completion)
        if request.first_token_at:
            metrics.ttft.labels(model).observe(request.first_token_at - request.queued_at)
        metrics.duration.labels(model).observe(time.monotonic() - facts["started"])
        guard.audit(key, model, status, n_prompt, n_completion, finish=reason, prompt=facts["prompt"],
                    seconds=round(time.monotonic() - facts["started"], 3))

    async def whole_answer(http: HttpRequest, rid: str, chat: bool, events: asyncio.Queue, facts: dict):
        request = facts["request"]
        pieces, reason = [], "error"
        logprobs = [] if request.sampling.logprobs is not None else None
        while True:
            try:
                kind, value = await asyncio.wait_for(events.get(), timeout=0.5)
            except asyncio.TimeoutError:
                if await http.is_disconnected():
                    request.cancelled.set()
                continue
            if kind == "text":
                pieces.append(value)
                continue
            if kind == "logprob":
                logprobs.append(value)
                continue
            reason = value
            break
        if reason == "cancelled":
            finished(facts, 499, reason)
            return Response(status_code=499)
        if reason.startswith("error"):
            finished(facts, 500, reason)
            return JSONResponse(protocol.error(reason, "server_error"), status_code=500)
        finished(facts, 200, reason)
        text, calls = "".join(pieces), []
        if facts["calls"] and reason == "stop":
            text, calls = tool_calls.parse(text, facts["calls"])
        if chat:
            return protocol.chat_response(rid, facts["model"], text, reason, len(request.tokens),
                                          request.completion_tokens, logprobs, calls)
        return protocol.completion_response(rid, facts["model"], text, reason, len(request.tokens),
                                            request.completion_tokens, logprobs)

    async def stream_events(rid: str, chat: bool, events: asyncio.Queue, include_usage: bool, facts: dict):
        model, request, reason = facts["model"], facts["request"], "cancelled"
        calls = tool_calls.CallStream(facts["calls"]) if facts["calls"] else None
        # log probabilities of the tokens since the last chunk ride with the next one (a chunk's text may hold
        # several tokens, or part of one); None when not asked for
        logprobs, offset = ([] if request.sampling.logprobs is not None else None), 0

        def taken() -> list | None:
            """The entries gathered so far, handed to one chunk; `offset` moves past their tokens."""
            nonlocal logprobs, offset
            now, logprobs = logprobs, ([] if logprobs is not None else None)
            offset += sum(len(e["token"]) for e in now or [])
            return now

        try:
            if chat:
                yield {"data": json.dumps(protocol.chat_chunk(rid, model, {"role": "assistant", "content": ""}))}
            while True:
                kind, value = await events.get()
                if kind == "logprob":
                    logprobs.append(value)
                    continue
                if kind == "text":
                    if calls and not (value := calls.feed(value)):
                        continue  # held: it may open a tool call
                    start = offset
                    chunk = protocol.chat_chunk(rid, model, {"content": value}, logprobs=taken()) if chat else \
                        protocol.completion_chunk(rid, model, value, logprobs=taken(), offset=start)
                    yield {"data": json.dumps(chunk)}
                    continue
                reason = value
                break
            if calls and not reason.startswith("error"):  # what was held: the calls, or text after all
                rest, found = calls.finish()
                if rest:
                    yield {"data": json.dumps(protocol.chat_chunk(rid, model, {"content": rest}, logprobs=taken()))}
                for delta in protocol.call_deltas(found):
                    yield {"data": json.dumps(protocol.chat_chunk(rid, model, delta))}
                if found:
                    reason = "tool_calls"
            if reason.startswith("error"):
                yield {"data": json.dumps(protocol.error(reason, "server_error"))}
            else:
                start = offset
                final = protocol.chat_chunk(rid, model, {}, reason, logprobs=taken()) if chat else \
                    protocol.completion_chunk(rid, model, "", reason, logprobs=taken(), offset=start)
                yield {"data": json.dumps(final)}
                if include_usage:
                    use = protocol.usage(len(request.tokens), request.completion_tokens)
                    yield {"data": json.dumps(protocol.chat_chunk(rid, model, None, use=use) if chat else
                                              protocol.completion_chunk(rid, model, None, use=use))}
            yield {"data": "[DONE]"}
        finally:
            if reason == "cancelled":  # the client went away: free the slot
                request.cancelled.set()
            finished(facts, 200 if reason in ("stop", "length", "tool_calls") else (499 if reason == "cancelled" else 500), reason)

    async def proxied(engine, chat: bool, body: dict, stream: bool, include_usage: bool, facts: dict):
        """An upstream OpenAI server (vLLM) answers; keys, limits, counts and audit stay here."""
        from .vllm import usage_of

        request = facts["request"]
        status, result = await engine.forward("/v1/chat/completions" if chat else "/v1/completions", body, stream)
        if not stream:
            request.completion_tokens = (result.get("usage") or {}).get("completion_tokens", 0) if status == 200 else 0
            finished(facts, status, (result.get("choices") or [{}])[0].get("finish_reason") or "error")
            return JSONResponse(dict(result, model=facts["model"]) if status == 200 else result, status_code=status)

        async def relay():
            reason = "cancelled"
            try:
                async for data in result:
                    if data == "[DONE]":
                        reason = "stop"
                        yield {"data": data}
                        break
                    if use := usage_of(data):
                        request.completion_tokens = use.get("completion_tokens", 0)
                        if not include_usage:
                            continue
                    yield {"data": data}
            finally:
                finished(facts, 200 if reason == "stop" else 499, reason)
        return EventSourceResponse(relay(), ping=15)

    return app

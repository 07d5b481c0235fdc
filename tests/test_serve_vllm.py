"""`airlock serve --engine vllm` where vLLM cannot run (no GPU here): its command line, the start and health wait
(with a stand-in OpenAI server in vLLM's place), and Airlock's keys, rates and counts in front of it.

    .venv/bin/python -m pytest tests/test_serve_vllm.py -q
"""

import json
import sys
import textwrap

import pytest

from appliance.errors import AirlockError

STAND_IN = textwrap.dedent('''
    """A stand-in for vLLM's OpenAI server: ready after a second, answers 'hello world' with usage."""
    import json, sys, time
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/health")
    def health():
        return {}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
        if not body.get("stream"):
            return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello world"},
                                 "finish_reason": "stop"}], "usage": usage}
        def events():
            for piece in ("hello", " world"):
                yield "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0,
                    "model": body["model"], "choices": [{"index": 0, "delta": {"content": piece},
                    "finish_reason": None}]}) + "\\n\\n"
            assert body["stream_options"]["include_usage"]
            yield "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0,
                    "model": body["model"], "choices": [], "usage": usage}) + "\\n\\n"
            yield "data: [DONE]\\n\\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    time.sleep(1.0)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
''')


def test_vllm_command_line_listens_on_loopback_only(tmp_path):
    from appliance.serve.vllm import vllm_command

    argv = vllm_command(tmp_path / "model", "tuned", 9000, ["--max-model-len", "4096"])
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "9000"
    assert argv[argv.index("--served-model-name") + 1] == "tuned" and argv[-2:] == ["--max-model-len", "4096"]


def test_vllm_missing_is_a_clear_error(tmp_path):
    from appliance.serve.vllm import VllmEngine

    with pytest.raises(AirlockError, match="vLLM is not installed") as err:
        VllmEngine(tmp_path, "tuned")
    assert "cuda" in err.value.fix


def test_vllm_exiting_early_is_reported(tmp_path, monkeypatch):
    from appliance.serve.vllm import VllmEngine

    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path))
    with pytest.raises(AirlockError, match="exited .code 3. before it was ready"):
        VllmEngine(tmp_path, "tuned", command=[sys.executable, "-c", "print('no GPU'); raise SystemExit(3)"])


def test_vllm_route_keeps_keys_limits_and_counts(tiny_model, tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from appliance.serve import keys
    from appliance.serve.api import create_app
    from appliance.serve.guard import Guard
    from appliance.serve.vllm import VllmEngine, free_port

    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path))
    secret = keys.create("app1", rpm=2)
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    port = free_port()
    engine = VllmEngine(tiny_model, "tuned", command=[sys.executable, str(script), str(port)], port=port,
                        start_timeout=60)
    try:
        guard = Guard(open_access=False, home=tmp_path)
        http = TestClient(create_app({"tuned": engine}, guard))
        auth = {"Authorization": f"Bearer {secret}"}
        body = {"model": "tuned", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        assert http.post("/v1/chat/completions", json=body).status_code == 401
        whole = http.post("/v1/chat/completions", json=body, headers=auth)
        assert whole.status_code == 200 and whole.json()["choices"][0]["message"]["content"] == "hello world"
        with http.stream("POST", "/v1/chat/completions", json=dict(body, stream=True), headers=auth) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and not any('"usage"' in line for line in lines)  # not asked for
        assert "".join(json.loads(x[6:])["choices"][0]["delta"].get("content", "") for x in lines[:-1]) == "hello world"
        assert http.post("/v1/chat/completions", json=body, headers=auth).status_code == 429  # rpm 2
        guard.flush()
        assert json.loads((tmp_path / "serve" / "usage.json").read_text())["app1"] > 0
        audited = [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]
        served = [e for e in audited if e["action"] == "serve-request" and e["status"] == 200]
        assert [e["completion_tokens"] for e in served] == [2, 2]
    finally:
        engine.close()

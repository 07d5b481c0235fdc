"""`airlock serve --engine vllm`: vLLM's own OpenAI server for an HF model on a CUDA host, started as a child on a
private loopback port, with Airlock in front (the same keys, limits, quotas, audit and metrics as llama.cpp).

vLLM does not run on a CPU-only machine: bundle it for a CUDA target (wheels.requirements: ["vllm==..."] with
target.accelerator cuda12/cuda13). What runs anywhere: the command line (`vllm_command`), the start and the
health wait (`VllmEngine`, with `command` replaced in tests by a stand-in server), and the forwarding.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import AirlockError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_command(model_dir: Path, name: str, port: int, extra: list[str] = ()) -> list[str]:
    """vLLM's OpenAI server for `model_dir` as `name`, on loopback only (Airlock is the only door to it)."""
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), "--disable-uvicorn-access-log",
            *extra]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Poll GET url until 200; fail clearly if the child exits or the time runs out."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
            raise AirlockError(f"vLLM exited (code {proc.returncode}) before it was ready:\n{tail}", where="vllm",
                               fix="see the log above; vLLM needs a CUDA GPU and its wheels in the env")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise AirlockError(f"vLLM was not ready after {timeout:.0f} s", where="vllm",
                       fix="a large model takes a while to load: raise --vllm-start-timeout")


class VllmEngine:
    kind = "vllm"
    proxy = True

    def __init__(self, model_dir: Path, name: str, extra: list[str] = (), *, command: list[str] | None = None,
                 port: int | None = None, start_timeout: float = 600.0):
        from ..paths import home

        self.name, self.busy, self.port = name, 0, port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = command or vllm_command(Path(model_dir), name, self.port, list(extra))
        if command is None and subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True).returncode:
            raise AirlockError("vLLM is not installed in this environment", where="--engine vllm",
                               fix="vLLM runs on CUDA hosts: bundle it (wheels.requirements: [\"vllm==...\"] with "
                               "target.accelerator cuda12 or cuda13), or serve a GGUF with llama.cpp")
        self.log = home() / "serve" / f"vllm-{name}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=dict(os.environ, VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1"))
        wait_healthy(f"{self.base}/health", self.proc, start_timeout, self.log)
        self.tokenizer = _tokenizer(model_dir)

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> tuple[str, list[str]]:
        if self.tokenizer is None:
            return "\n".join(m["content"] for m in messages), []
        return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                                  add_generation_prompt=True), []

    def tokenize(self, text: str, rendered: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=not rendered)["input_ids"] if self.tokenizer else text.split()

    def queued(self) -> int:
        return 0

    async def forward(self, path: str, body: dict, stream: bool):
        """The upstream answer: a dict, or (for a stream) an async iterator of SSE data strings. Usage is always
        asked for, so quotas see the real token counts; the caller drops it if the client did not ask."""
        import httpx

        body = dict(body, model=self.name)
        if stream:
            body["stream_options"] = {"include_usage": True}
        client = httpx.AsyncClient(base_url=self.base, timeout=httpx.Timeout(600.0, connect=5.0))
        if not stream:
            async with client:
                response = await client.post(path, json=body)
                return response.status_code, response.json()

        async def lines():
            async with client, client.stream("POST", path, json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        yield line[len("data: "):]
        return 200, lines()

    def close(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout or 1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _tokenizer(model_dir: Path):
    """The model's tokenizer for counting tokens (rates and quotas) in front of vLLM; None when there is none."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError):
        return None


def usage_of(data: str) -> dict | None:
    try:
        return json.loads(data).get("usage")
    except (json.JSONDecodeError, AttributeError):
        return None

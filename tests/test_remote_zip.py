"""A wheel's sizes read through HTTP range requests: the same numbers as the file on disk, a registry that fails
for a moment retried, and one that keeps failing ends in a clear error naming the wheel (no traceback).

    .venv/bin/python -m pytest tests/test_remote_zip.py -q
"""

import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from appliance.errors import AirlockError
from bundler import remote_zip


@pytest.fixture
def wheel(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("demo/__init__.py", "x = 1\n" * 5000)
        zf.writestr("demo/data.bin", bytes(range(256)) * 4000)
        for i in range(300):  # a central directory bigger than one read-ahead window would be read in pieces
            zf.writestr(f"demo/m{i:03}.py", f"v = {i}\n")
    return path


def serve(body: bytes, failures: int):
    """A registry answering range requests for one file; the first `failures` requests get a 503."""
    state = {"left": failures, "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, send_body: bool):
            state["requests"] += 1
            if state["left"] > 0:
                state["left"] -= 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            ranged = self.headers.get("Range")
            if ranged:
                start, stop = (int(x) for x in ranged.removeprefix("bytes=").split("-"))
                part = body[start:stop + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{start + len(part) - 1}/{len(body)}")
            else:
                part = body
                self.send_response(200)
            self.send_header("Content-Length", str(len(part) if send_body else len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(part)

        def do_HEAD(self):
            self._answer(False)

        def do_GET(self):
            self._answer(True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


def test_remote_sizes_match_the_file_and_a_flaky_registry_is_retried(wheel, monkeypatch):
    monkeypatch.setattr(remote_zip.time, "sleep", lambda s: None)
    local = remote_zip.wheel_sizes([str(wheel)])[str(wheel)]
    with zipfile.ZipFile(wheel) as zf:
        assert local.unpacked == sum(i.file_size for i in zf.infolist())
    assert local.size == wheel.stat().st_size and 0 < local.python < local.unpacked
    server, state = serve(wheel.read_bytes(), failures=2)
    try:
        url = f"http://127.0.0.1:{server.server_port}/{wheel.name}"
        assert remote_zip.wheel_sizes([url])[url] == local
        assert state["requests"] > 3  # two 503s, then the HEAD and the range reads
    finally:
        server.shutdown()


def test_a_registry_that_keeps_failing_is_a_clear_error(wheel, monkeypatch):
    monkeypatch.setattr(remote_zip.time, "sleep", lambda s: None)
    server, state = serve(wheel.read_bytes(), failures=100)
    try:
        url = f"http://127.0.0.1:{server.server_port}/{wheel.name}"
        with pytest.raises(AirlockError) as caught:
            remote_zip.wheel_sizes([url])
        assert caught.value.code == "bundle.registry" and wheel.name in caught.value.message
        assert state["requests"] == remote_zip.ATTEMPTS
    finally:
        server.shutdown()

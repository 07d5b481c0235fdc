"""A real hub-protocol server on loopback for the hub tests: olah, the self-hosted Hugging Face mirror that sites
run, serving git repositories made in the test (its `mirrors-path`, offline mode), to the real huggingface_hub
client. olah lives in its own venv (.airlock/hub-mirror, built by `make test`).

olah mirrors public repositories only, so one part is written here, in front of it: a gate that answers for the
repos a test marks gated the way the Hugging Face hub does (its documented X-Error-Code / X-Error-Message
headers): no token -> 401 GatedRepo; an unknown token -> 401 "Invalid credentials in Authorization header"; a known
token without access -> 403 GatedRepo. Every other request passes through to olah unchanged.

    mirror = HubMirror(tmp_path); commit = mirror.add_repo("acme/tiny", files); mirror.start()
    ... HF_ENDPOINT=mirror.endpoint ...; mirror.stop()
"""

import http.client
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OLAH = ROOT / ".airlock" / "hub-mirror" / "bin" / "olah-cli"
GIT = ["git", "-c", "user.name=airlock-test", "-c", "user.email=test@airlock.invalid", "-c", "init.defaultBranch=main"]
GRANTED = "hf_granted_test_token_0123456789"  # a token whose account was granted every gated repo
NOT_GRANTED = "hf_not_granted_test_token_987654"  # a valid token of an account that was not


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on {port}")


class HubMirror:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.gated: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request the gate saw
        self.olah_port, self.gate_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.gate_port}"
        self._olah = self._gate = None

    # ------------------------------------------------------------------ repositories
    def add_repo(self, repo_id: str, files: dict, gated: bool = False) -> str:
        """A git repo of `files` ({name: bytes or a Path to copy}) on branch main; returns its commit."""
        repo = self.mirrors / "models" / repo_id
        repo.mkdir(parents=True)
        subprocess.run([*GIT, "init", "-q", str(repo)], check=True)
        if gated:
            self.gated.add(repo_id)
        return self.commit(repo_id, files)

    def commit(self, repo_id: str, files: dict, message: str = "update") -> str:
        repo = self.mirrors / "models" / repo_id
        for name, content in files.items():
            dst = repo / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, dst)
            else:
                dst.write_bytes(content)
        subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", message], check=True)
        return subprocess.run([*GIT, "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()

    # ------------------------------------------------------------------ servers
    def start(self) -> "HubMirror":
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.olah_port}\nrepos-path = "{self.root / "repos"}"\n'
            'mirror-scheme = "http"\n'
            f'mirror-netloc = "127.0.0.1:{self.gate_port}"\nmirror-lfs-netloc = "127.0.0.1:{self.gate_port}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n'
            "[accessibility]\noffline = true\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON"))}
        self._olah = subprocess.Popen([str(OLAH), "-c", str(config)], cwd=self.root, env=env,
                                      stdout=open(self.root / "olah.log", "wb"), stderr=subprocess.STDOUT)
        self._gate = ThreadingHTTPServer(("127.0.0.1", self.gate_port), _gate_handler(self))
        threading.Thread(target=self._gate.serve_forever, daemon=True).start()
        wait_port(self.olah_port, "olah")
        return self

    def stop(self) -> None:
        if self._gate:
            self._gate.shutdown()
            self._gate.server_close()
        if self._olah:
            self._olah.terminate()
            self._olah.wait(timeout=30)


def _repo_of(path: str) -> str | None:
    """The model repo a hub URL path is about: /api/models/ORG/NAME/... or /ORG/NAME/resolve/..."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[:2] == ["api", "models"] and len(parts) >= 4:
        return f"{parts[2]}/{parts[3]}"
    if len(parts) >= 3 and parts[2] == "resolve":
        return f"{parts[0]}/{parts[1]}"
    return None


def _gate_handler(mirror: HubMirror):
    class Gate(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def refuse(self, status: int, code: str | None, message: str):
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            body = f'{{"error": "{message}"}}'.encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def check_gate(self) -> bool:
            repo = _repo_of(self.path)
            if repo not in mirror.gated:
                return True
            auth = self.headers.get("Authorization", "")
            token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else ""
            if not token:
                self.refuse(401, "GatedRepo", f"Access to model {repo} is restricted. You must have access to it "
                            "and be authenticated to access it. Please log in.")
            elif token not in (GRANTED, NOT_GRANTED):
                self.refuse(401, None, "Invalid credentials in Authorization header")
            elif token == NOT_GRANTED:
                self.refuse(403, "GatedRepo", f"Access to model {repo} is restricted and you are not in the "
                            "authorized list.")
            return token == GRANTED

        def forward(self):
            mirror.requests.append((self.command, self.path))
            if not self.check_gate():
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = http.client.HTTPConnection("127.0.0.1", mirror.olah_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(answer.getheader("Content-Length") or len(data))
                             if self.command == "HEAD" else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            upstream.close()

        do_GET = do_HEAD = do_POST = forward

    return Gate

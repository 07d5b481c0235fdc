"""The Hugging Face hub, or a site's mirror of it, as the bundler sees it: resolve a branch to its commit, list a
commit's files with their sizes, download exactly those files of that commit. Every failure (gated, no access,
not found, unreachable, DNS, TLS, timeout) becomes one AirlockError that names the model and the fix.

    hub = Hub(spec.hub)                       # endpoint: hub.endpoint, else $HF_ENDPOINT, else huggingface.co
    commit = hub.resolve("Qwen/Qwen2.5-7B-Instruct", "main", where)
    sizes = hub.files(repo_id, commit, where)  # {path: bytes}, no weights downloaded
    folder = hub.download(repo_id, commit, names, where)

Downloads go through huggingface_hub's own cache on this machine (HF_HUB_CACHE), so an interrupted download
resumes where it stopped and a second bundle of the same commit downloads nothing; its progress bars show.
The token (hub.token_file, else $HF_TOKEN, else the one `hf auth login` stored) is handed to huggingface_hub
and to nothing else: it never appears in a message, the lock file or the bundle.
"""

import os
import re
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from appliance.errors import AirlockError

from .spec import HubSpec

DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT = re.compile(r"[0-9a-f]{40}")


def offline_mode() -> bool:
    """HF_HUB_OFFLINE is set: huggingface_hub answers from its cache only, and so does the bundler."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def shown_endpoint(url: str) -> str:
    """The endpoint as it may be shown and recorded: without user:password@ (a mirror URL may carry them)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class Hub:
    """One endpoint with one token, used for every hub model of a bundle."""

    def __init__(self, spec: HubSpec | None = None):
        spec = spec or HubSpec()
        self.endpoint = (spec.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        self.shown = shown_endpoint(self.endpoint)
        self.timeout = spec.timeout
        self.token_source = "hub.token_file" if spec.token_file else ("HF_TOKEN" if os.environ.get("HF_TOKEN")
                                                                       else "")
        self._token = _read_token(spec.token_file) if spec.token_file else None
        self._api = None

    @property
    def token_who(self) -> str:
        """Where the token came from, for messages (never the token itself)."""
        return self.token_source or "the login huggingface_hub stored"

    @property
    def has_token(self) -> bool:
        from huggingface_hub import get_token

        return bool(self._token or get_token())

    def api(self):
        if self._api is None:
            from huggingface_hub import HfApi

            _use_timeout(self.timeout)
            self._api = HfApi(endpoint=self.endpoint, token=self._token)
        return self._api

    def resolve(self, repo_id: str, ref: str, where: str) -> str:
        """The commit `ref` (a branch, tag or commit) of `repo_id` points at now."""
        try:
            with self.errors(repo_id, ref, where):
                info = self.api().model_info(repo_id, revision=ref, timeout=self.timeout)
        except AirlockError as exc:
            if exc.code == "hub.not_found" and ref != "main" and self._exists(repo_id):
                raise no_revision(repo_id, ref, where, self) from None  # some mirrors answer "no such repo"
            raise
        if not COMMIT.fullmatch(info.sha or ""):
            raise AirlockError(f"{repo_id}@{ref}: the endpoint answered without a commit id", where=where,
                               fix=f"check that {self.shown} is a Hugging Face hub or a mirror of it",
                               code="hub.bad_answer")
        return info.sha

    def _exists(self, repo_id: str) -> bool:
        try:
            self.api().model_info(repo_id, revision="main", timeout=self.timeout)
            return True
        except Exception:  # noqa: BLE001 (only a probe: the caller reports the original failure otherwise)
            return False

    def files(self, repo_id: str, commit: str, where: str) -> dict[str, int]:
        """{path: size in bytes} of every file of the commit (metadata only, nothing downloaded)."""
        from huggingface_hub.hf_api import RepoFile

        with self.errors(repo_id, commit, where):
            tree = self.api().list_repo_tree(repo_id, revision=commit, recursive=True)
            return {f.path: f.size for f in tree if isinstance(f, RepoFile)}

    def read_json(self, repo_id: str, commit: str, name: str, where: str) -> dict | None:
        """A small JSON file of the commit (config.json), through the download cache."""
        import json

        from huggingface_hub import hf_hub_download

        with self.errors(repo_id, commit, where):
            path = hf_hub_download(repo_id, name, revision=commit, endpoint=self.endpoint, token=self._token,
                                   etag_timeout=self.timeout)
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return None

    def download(self, repo_id: str, commit: str, names: list[str], where: str) -> Path:
        """The snapshot folder of `commit` holding `names` (downloaded, resumed, or already cached)."""
        from huggingface_hub import snapshot_download

        with self.errors(repo_id, commit, where):
            return Path(snapshot_download(repo_id, revision=commit, allow_patterns=[_literal(n) for n in names],
                                          endpoint=self.endpoint, token=self._token, etag_timeout=self.timeout))

    @contextmanager
    def errors(self, repo_id: str, ref: str, where: str):
        """Any failure of the block as one AirlockError naming the model, the endpoint and the fix."""
        try:
            yield
        except AirlockError:
            raise
        except Exception as exc:  # huggingface_hub and its HTTP client raise many types; each is explained below
            raise explain(exc, repo_id, ref, where, self) from None


def _read_token(path: Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise AirlockError(f"cannot read the token file: {exc.strerror}", where=f"spec: hub.token_file {path}",
                           fix="give a file holding one hub read token", code="hub.token_file") from None
    if not token or any(c.isspace() for c in token):
        raise AirlockError("the token file must hold exactly one token", where=f"spec: hub.token_file {path}",
                           fix="write only the token (hf_...) into the file", code="hub.token_file")
    return token


def _literal(name: str) -> str:
    """A file name as an fnmatch pattern that matches only itself (allow_patterns takes patterns)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _use_timeout(seconds: float) -> None:
    """huggingface_hub's own HTTP client waits forever for an answer by default; give it the spec's timeout."""
    import huggingface_hub
    from huggingface_hub.utils._http import default_client_factory

    def factory():
        client = default_client_factory()
        client.timeout = seconds
        return client

    huggingface_hub.set_client_factory(factory)


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _status(exc) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def explain(exc: BaseException, repo_id: str, ref: str, where: str, hub: Hub) -> AirlockError:
    """The one message for a failed hub call: what went wrong with which model, and what to do."""
    from huggingface_hub import errors as hf

    model, page = f"{repo_id}@{ref}", f"{hub.shown}/{repo_id}"
    token_fix = ("set hub.token_file in the spec to a file holding a read token of an account that may read it "
                 "(or export HF_TOKEN); the token is never written into the bundle")

    def fail(code: str, message: str, fix: str) -> AirlockError:
        return AirlockError(f"{model}: {message}", where=where, fix=fix, code=f"hub.{code}")

    for e in _chain(exc):
        if isinstance(e, hf.OfflineModeIsEnabled):
            return fail("offline_mode", "HF_HUB_OFFLINE is set, so the hub cannot be asked",
                        "unset HF_HUB_OFFLINE to download, or take the model from an HF cache (models[].cache)")
        if isinstance(e, hf.GatedRepoError):
            if hub.has_token:
                return fail("gated", f"the model is gated and the account of the token ({hub.token_who}) has no "
                            "access to it",
                            f"accept the model's licence at {page} with that account, wait for access, and rerun")
            return fail("gated", "the model is gated: the hub serves it only to accounts that accepted its licence",
                        f"accept the licence at {page}, then {token_fix}")
        if isinstance(e, hf.RevisionNotFoundError):
            return no_revision(repo_id, ref, where, hub)
        if isinstance(e, hf.RepositoryNotFoundError):
            return fail("not_found", f"no such model at {hub.shown} (or it is private)",
                        "check the repo id (`airlock models catalog` lists the catalog); for a private model, "
                        + token_fix)
        if isinstance(e, (hf.EntryNotFoundError, hf.RemoteEntryNotFoundError)):
            return fail("file_missing", "a file the listing named is missing on the endpoint",
                        f"the mirror at {hub.shown} is incomplete for this commit: refresh it, or use the hub")
        if isinstance(e, hf.HfHubHTTPError) and _status(e) is not None:
            return _http_failure(_status(e), fail, hub, token_fix, page)
    return _connection_failure(exc, fail, hub)


def no_revision(repo_id: str, ref: str, where: str, hub: Hub) -> AirlockError:
    return AirlockError(f"{repo_id}@{ref}: {hub.shown} has no branch, tag or commit {ref!r} of this model",
                        where=where, fix="set models[].revision to a branch (main), a tag or a 40-hex commit the "
                        "repo has", code="hub.revision_not_found")


def _http_failure(status: int, fail, hub: Hub, token_fix: str, page: str) -> AirlockError:
    if status == 401:
        return fail("unauthorized", f"{hub.shown} refused the token ({hub.token_who})",
                    "the token is invalid or expired: make a new read token and put it in hub.token_file")
    if status == 403:
        return fail("forbidden", f"{hub.shown} refused access (403)",
                    f"ask for access at {page} with the token's account, or " + token_fix)
    if status == 429:
        return fail("rate_limited", f"{hub.shown} is limiting requests (429)",
                    "wait a few minutes and rerun; a token raises the limit")
    return fail("http", f"{hub.shown} answered HTTP {status}",
                "retry later; if it persists, check the endpoint (hub.endpoint / HF_ENDPOINT)")


def _connection_failure(exc: BaseException, fail, hub: Hub) -> AirlockError:
    import ssl

    host = urlsplit(hub.endpoint).hostname or hub.endpoint
    text = " ".join(f"{type(e).__name__}: {e}" for e in _chain(exc))
    names = {type(e).__name__ for e in _chain(exc)}
    if any(isinstance(e, ssl.SSLError) for e in _chain(exc)) or re.search(r"CERTIFICATE|SSL|TLS", text):
        return fail("tls", f"the TLS connection to {hub.shown} failed (its certificate is not trusted here, or the "
                    "endpoint does not speak https)",
                    "make the mirror's certificate trusted on this machine (its CA in the system store, or "
                    "SSL_CERT_FILE pointing at it), or correct the URL's scheme in hub.endpoint / HF_ENDPOINT")
    if names & {"ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException", "TimeoutError"}:
        return fail("timeout", f"{hub.shown} did not answer within {hub.timeout:g} s",
                    "check that the endpoint is up; on a slow link raise hub.timeout in the spec")
    if re.search(r"Name or service not known|nodename nor servname|Temporary failure in name resolution|"
                 r"No address associated|getaddrinfo failed|Errno -[235]\b", text):
        return fail("dns", f"the name {host} does not resolve on this machine",
                    "check the endpoint's spelling (hub.endpoint / HF_ENDPOINT) and this machine's DNS")
    if names & {"ConnectError", "ConnectionError", "ConnectionRefusedError", "OSError", "RemoteProtocolError",
                "ReadError", "LocalEntryNotFoundError", "NetworkError", "TransportError"}:
        return fail("unreachable", f"cannot connect to {hub.shown}",
                    "check this machine's network, or point the bundler at the site's mirror with hub.endpoint "
                    "in the spec (or HF_ENDPOINT)")
    return fail("unexpected", f"the hub call failed: {type(exc).__name__}: {str(exc)[:300]}",
                f"check the endpoint {hub.shown} and rerun")

"""A wheel's sizes without downloading it: its length, and what it unpacks to, read from the zip's central
directory at the end of the file through HTTP range requests (a few KiB of a GB-sized wheel). Local files are
read the same way from disk.

    sizes = wheel_sizes(["https://files.pythonhosted.org/.../torch-...whl", "file:///path/x.whl"])
"""

import io
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from appliance.errors import AirlockError

READ_AHEAD = 1 << 16  # most central directories fit in one request
ATTEMPTS = 4  # a registry CDN drops the odd TLS handshake or answers 5xx for a moment; a wheel's size is worth a retry


@dataclass(frozen=True)
class ZipSizes:
    size: int  # bytes of the file itself
    unpacked: int  # bytes of its members, uncompressed
    python: int  # bytes of its .py members (the installer byte-compiles them)


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file: each read is an HTTP range request (with read-ahead)."""

    def __init__(self, client, url: str):
        self.client, self.url, self.pos = client, url, 0
        head = _request(client, "HEAD", url)
        self.length = int(head.headers["content-length"])
        self._buf_start, self._buf = 0, b""

    def seekable(self):
        return True

    def readable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence] + offset
        return self.pos

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.length - self.pos
        end = min(self.pos + n, self.length)
        if not (self._buf_start <= self.pos and end <= self._buf_start + len(self._buf)):
            start = max(0, min(self.pos, end - READ_AHEAD))
            stop = max(end, min(self.length, start + READ_AHEAD))
            answer = _request(self.client, "GET", self.url, headers={"Range": f"bytes={start}-{stop - 1}"})
            if answer.status_code != 206:
                raise OSError(f"{self.url}: the server ignores range requests")
            self._buf_start, self._buf = start, answer.content
        data = self._buf[self.pos - self._buf_start:end - self._buf_start]
        self.pos += len(data)
        return data


def _request(client, method: str, url: str, **kwargs):
    """One request, retried with backoff on transport errors and 5xx answers; the last failure is raised."""
    import httpx

    for attempt in range(ATTEMPTS):
        try:
            answer = client.request(method, url, **kwargs)
            if answer.status_code < 500:
                answer.raise_for_status()
                return answer
            failure: Exception = httpx.HTTPStatusError(f"{answer.status_code} from the server", request=answer.request,
                                                       response=answer)
        except httpx.TransportError as exc:
            failure = exc
        if attempt + 1 < ATTEMPTS:
            time.sleep(0.5 * 2 ** attempt)
    raise failure


def _sizes_of(fileobj, length: int) -> ZipSizes:
    with zipfile.ZipFile(fileobj) as zf:
        infos = zf.infolist()
    return ZipSizes(length, sum(i.file_size for i in infos), sum(i.file_size for i in infos
                                                                  if i.filename.endswith(".py")))


def zip_sizes(url: str, client=None) -> ZipSizes:
    """Sizes of one wheel at an http(s) or file URL (or a plain path)."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = Path(unquote(parts.path) if parts.scheme else url)
        with open(path, "rb") as fh:
            return _sizes_of(fh, path.stat().st_size)
    remote = RangeFile(client, url)
    return _sizes_of(remote, remote.length)


def wheel_sizes(urls: list[str], workers: int = 8) -> dict[str, ZipSizes]:
    """{url: ZipSizes} for many wheels, fetched in parallel (pip's proxy settings apply through the environment).
    A wheel the registry will not describe after the retries ends the plan with a clear error naming it."""
    import httpx

    def sizes(url):
        try:
            return zip_sizes(url, client)
        except (httpx.HTTPError, OSError, zipfile.BadZipFile) as exc:
            raise AirlockError(f"could not read the size of {url.rsplit('/', 1)[-1]} from the package registry "
                               f"({exc})", where=url, code="bundle.registry",
                               fix="check the connection to the registry (or pip's proxy settings) and run the "
                                   "command again") from None

    with httpx.Client(follow_redirects=True, timeout=60) as client, ThreadPoolExecutor(workers) as pool:
        return dict(zip(urls, pool.map(sizes, urls)))

"""A wheel's sizes without downloading it: its length, and what it unpacks to, read from the zip's central
directory at the end of the file through HTTP range requests (a few KiB of a GB-sized wheel). Local files are
read the same way from disk.

    sizes = wheel_sizes(["https://files.pythonhosted.org/.../torch-...whl", "file:///path/x.whl"])
"""

import io
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

READ_AHEAD = 1 << 16  # most central directories fit in one request


@dataclass(frozen=True)
class ZipSizes:
    size: int  # bytes of the file itself
    unpacked: int  # bytes of its members, uncompressed
    python: int  # bytes of its .py members (the installer byte-compiles them)


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file: each read is an HTTP range request (with read-ahead)."""

    def __init__(self, client, url: str):
        self.client, self.url, self.pos = client, url, 0
        head = client.head(url)
        head.raise_for_status()
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
            answer = self.client.get(self.url, headers={"Range": f"bytes={start}-{stop - 1}"})
            answer.raise_for_status()
            if answer.status_code != 206:
                raise OSError(f"{self.url}: the server ignores range requests")
            self._buf_start, self._buf = start, answer.content
        data = self._buf[self.pos - self._buf_start:end - self._buf_start]
        self.pos += len(data)
        return data


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
    """{url: ZipSizes} for many wheels, fetched in parallel (pip's proxy settings apply through the environment)."""
    import httpx

    with httpx.Client(follow_redirects=True, timeout=60) as client, ThreadPoolExecutor(workers) as pool:
        return dict(zip(urls, pool.map(lambda u: zip_sizes(u, client), urls)))

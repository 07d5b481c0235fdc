"""The payload as one byte stream over its chunk files: read (seekable, names the chunk at fault) and check.

`PayloadReader` serves payload bytes from chunks/NNNN-<sha256>.part in order, so the tar parser above it never
knows about chunks; a missing or short chunk is reported by name. `check_files` hashes every listed file in
parallel threads (hashlib releases the GIL), for `airlock bundle verify` and the pre-install check.
Every file from the media is opened with `open_regular`: a symlink, FIFO, device or directory in its place is
refused before a byte is read (a FIFO would otherwise block forever).
"""

import bisect
import hashlib
import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from appliance.errors import AirlockError

BLOCK = 1 << 20


def open_regular(path: Path, where: str, size: int | None = None):
    """A binary file object for `path`, which must be a regular file (not a symlink, FIFO, device or directory)
    of `size` bytes when given. Opened without following a final symlink and without blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise AirlockError(f"{Path(path).name} is missing", where=where, fix="copy it again from the media") from None
    except OSError as exc:
        raise AirlockError(f"{Path(path).name} cannot be opened ({exc.strerror}; a symlink?)", where=where,
                           fix="a bundle holds regular files only: copy it again from the media") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise AirlockError(f"{Path(path).name} is not a regular file", where=where,
                           fix="a bundle holds regular files only (no FIFOs, devices, links or directories)")
    if size is not None and info.st_size != size:
        os.close(fd)
        raise AirlockError(f"{Path(path).name} has {info.st_size} bytes, the signed list says {size}", where=where,
                           fix="copy that file again from the media")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=0)


def read_regular(path: Path, where: str, limit: int, size: int | None = None) -> bytes:
    """The whole content of a small regular file, refused beyond `limit` bytes."""
    with open_regular(path, where, size) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise AirlockError(f"{Path(path).name} is larger than {limit} bytes", where=where,
                           fix="the file was altered: do not install this bundle")
    return data


class PayloadReader(io.RawIOBase):
    def __init__(self, bundle: Path, chunks: list[dict]):
        self.bundle = Path(bundle)
        self.chunks = chunks
        self.starts = [c.offset for c in chunks]
        self.size = sum(c.size for c in chunks)
        self.pos = 0
        self._open_index = None
        self._fh = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else self.size + offset)
        return self.pos

    def chunk_at(self, offset: int) -> dict:
        return self.chunks[max(0, bisect.bisect_right(self.starts, offset) - 1)]

    def chunks_between(self, start: int, end: int) -> list[str]:
        return [c.name for c in self.chunks if c.offset < max(end, start + 1) and c.offset + c.size > start]

    def _handle(self, index: int):
        if self._open_index != index:
            if self._fh:
                self._fh.close()
            chunk = self.chunks[index]
            self._fh = open_regular(self.bundle / chunk.name, f"{self.bundle}: {chunk.name}", chunk.size)
            self._open_index = index
        return self._fh

    def readinto(self, buffer) -> int:
        """Fill `buffer` as far as the payload goes (tarfile treats a short read as the end of data)."""
        view, total = memoryview(buffer).cast("B"), 0
        while total < len(view) and (n := self._read_some(view[total:])):
            total += n
        return total

    def read(self, size: int = -1) -> bytes:
        size = self.size - self.pos if size is None or size < 0 else min(size, self.size - self.pos)
        buf = bytearray(max(size, 0))
        return bytes(buf[: self.readinto(buf)])

    def _read_some(self, buffer) -> int:
        if self.pos >= self.size:
            return 0
        index = bisect.bisect_right(self.starts, self.pos) - 1
        chunk = self.chunks[index]
        fh = self._handle(index)
        fh.seek(self.pos - chunk.offset)
        want = min(len(buffer), chunk.offset + chunk.size - self.pos)
        got = fh.readinto(buffer[:want])
        if not got:
            raise AirlockError(f"chunk ended early: {chunk.name}", where=str(self.bundle),
                               fix="copy that file from the media again")
        self.pos += got
        return got

    def close(self) -> None:
        if self._fh:
            self._fh.close()
        super().close()


class PayloadSlice(io.RawIOBase):
    """`size` bytes of the payload from `offset`, as a stream (one blob, read without extracting it)."""

    def __init__(self, reader: PayloadReader, offset: int, size: int):
        self.reader, self.left = reader, size
        reader.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")[:self.left]
        n = self.reader.readinto(view) if len(view) else 0
        self.left -= n
        return n


def sha256_path(path: Path, advance=None, where: str | None = None, size: int | None = None) -> str:
    digest = hashlib.sha256()
    with open_regular(path, where or str(path), size) as fh:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            digest.update(view[:n])
            if advance:
                advance(n)
    return digest.hexdigest()


def check_files(bundle: Path, listed: list[tuple[str, str, int]], *, full: bool = True, threads: int | None = None,
                advance=None) -> dict[str, list[str]]:
    """{'missing': [...], 'wrong_size': [...], 'damaged': [...]} by name, for [(sha256, name, size)]: present as
    regular files of the listed size, and (when `full`) of the listed sha256."""
    bundle = Path(bundle)
    report = {"missing": [], "wrong_size": [], "damaged": []}
    to_hash = []
    for sha, name, size in listed:
        try:
            info = os.lstat(bundle / name)
        except FileNotFoundError:
            report["missing"].append(name)
            continue
        if not stat.S_ISREG(info.st_mode):
            report["damaged"].append(f"{name} (not a regular file)")
        elif info.st_size != size:
            report["wrong_size"].append(name)
        else:
            to_hash.append((sha, name, size))
    if full and to_hash:
        # Largest first keeps every thread busy to the end; hashlib releases the GIL on big updates.
        to_hash.sort(key=lambda x: -x[2])

        def digest(item):
            try:
                return sha256_path(bundle / item[1], advance, size=item[2])
            except AirlockError:  # replaced between the look and the read
                return None

        with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 2)) as pool:
            for (sha, name, _), got in zip(to_hash, pool.map(digest, to_hash)):
                if got != sha:
                    report["damaged"].append(name)
    for names in report.values():
        names.sort()
    return report


def describe_problems(report: dict[str, list[str]]) -> str | None:
    lines = []
    for key, label in (("missing", "missing"), ("wrong_size", "truncated or wrong size"), ("damaged", "damaged")):
        lines += [f"  {label}: {name}" for name in report[key]]
    return "\n".join(lines) if lines else None

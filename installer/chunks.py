"""The payload as one byte stream over its chunk files: read (seekable, names the chunk at fault) and check.

`PayloadReader` serves payload bytes from chunks/NNNN-<sha256>.part in order, so the tar parser above it never
knows about chunks; a missing or short chunk is reported by name. `check_chunks` hashes every chunk in parallel
threads (hashlib releases the GIL), for `airlock bundle verify` and the pre-install check.
"""

import bisect
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from appliance.errors import AirlockError

BLOCK = 1 << 20


class PayloadReader(io.RawIOBase):
    def __init__(self, bundle: Path, chunks: list[dict]):
        self.bundle = Path(bundle)
        self.chunks = chunks
        self.starts = [c["offset"] for c in chunks]
        self.size = sum(c["size"] for c in chunks)
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
        return [c["name"] for c in self.chunks if c["offset"] < max(end, start + 1) and c["offset"] + c["size"] > start]

    def _handle(self, index: int):
        if self._open_index != index:
            if self._fh:
                self._fh.close()
            chunk = self.chunks[index]
            path = self.bundle / chunk["name"]
            if not path.is_file():
                raise AirlockError(f"chunk missing: {chunk['name']}", where=str(self.bundle),
                                   fix="copy that file from the media again")
            if path.stat().st_size != chunk["size"]:
                raise AirlockError(f"chunk has the wrong size (truncated or replaced): {chunk['name']}",
                                   where=str(self.bundle), fix="copy that file from the media again")
            self._fh, self._open_index = open(path, "rb"), index
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
        fh.seek(self.pos - chunk["offset"])
        want = min(len(buffer), chunk["offset"] + chunk["size"] - self.pos)
        got = fh.readinto(buffer[:want])
        if not got:
            raise AirlockError(f"chunk ended early: {chunk['name']}", where=str(self.bundle),
                               fix="copy that file from the media again")
        self.pos += got
        return got

    def close(self) -> None:
        if self._fh:
            self._fh.close()
        super().close()


def sha256_path(path: Path, advance=None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            digest.update(view[:n])
            if advance:
                advance(n)
    return digest.hexdigest()


def check_chunks(bundle: Path, chunks: list[dict], *, full: bool = True, threads: int | None = None,
                 advance=None) -> dict[str, list[str]]:
    """{'missing': [...], 'wrong_size': [...], 'damaged': [...]} by chunk name; hashes only when `full`."""
    bundle = Path(bundle)
    report = {"missing": [], "wrong_size": [], "damaged": []}
    to_hash = []
    for c in chunks:
        path = bundle / c["name"]
        if not path.is_file():
            report["missing"].append(c["name"])
        elif path.stat().st_size != c["size"]:
            report["wrong_size"].append(c["name"])
        else:
            to_hash.append(c)
    if full and to_hash:
        # Largest first keeps every thread busy to the end; hashlib releases the GIL on big updates.
        to_hash.sort(key=lambda c: -c["size"])
        with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 2)) as pool:
            digests = pool.map(lambda c: sha256_path(bundle / c["name"], advance), to_hash)
            for c, digest in zip(to_hash, digests):
                if digest != c["sha256"]:
                    report["damaged"].append(c["name"])
    for names in report.values():
        names.sort()
    return report


def describe_problems(report: dict[str, list[str]]) -> str | None:
    lines = []
    for key, label in (("missing", "missing"), ("wrong_size", "truncated or wrong size"), ("damaged", "damaged")):
        lines += [f"  {label}: {name}" for name in report[key]]
    return "\n".join(lines) if lines else None

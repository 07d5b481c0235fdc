"""Packing: content-addressed blobs in a tar stream of our own writing, cut into hashed chunks.

The payload is a plain ustar/pax tar whose members are `blobs/<sha256>` regular files, each unique blob once
(the same bytes under two paths are stored once). The stream is cut into chunks of at most `max_chunk` bytes
while it is written (one pass, hashing as it goes): chunks/NNNN-<sha256>.part. For each blob the manifest records
the offset of its data in the stream, so install.sh can cut the packed env out with `tail -c | head -c`.
"""

import hashlib
import os
import tarfile
from pathlib import Path

from installer.format import CHUNKS_DIR, chunk_name

BLOCK = 1 << 20


class ChunkWriter:
    """A write-only stream that lands in numbered chunk files no larger than max_chunk, hashing each."""

    def __init__(self, out: Path, max_chunk: int):
        if max_chunk < 1024:
            raise ValueError("max_chunk must be at least 1 KiB")
        self.dir = Path(out) / CHUNKS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_chunk = max_chunk
        self.pos = 0
        self.chunks: list[dict] = []
        self._fh = None

    def _start(self):
        self._tmp = self.dir / f"{len(self.chunks):04d}.tmp"
        self._fh, self._digest, self._size, self._offset = open(self._tmp, "wb"), hashlib.sha256(), 0, self.pos

    def _finish(self):
        if self._fh is None:
            return
        self._fh.close()
        sha = self._digest.hexdigest()
        name = chunk_name(len(self.chunks), sha)
        os.replace(self._tmp, self.dir.parent / name)
        self.chunks.append({"name": name, "offset": self._offset, "size": self._size, "sha256": sha})
        self._fh = None

    def write(self, data) -> int:
        view = memoryview(data)
        while view:
            if self._fh is None:
                self._start()
            room = self.max_chunk - self._size
            piece = view[:room]
            self._fh.write(piece)
            self._digest.update(piece)
            self._size += len(piece)
            self.pos += len(piece)
            view = view[len(piece):]
            if self._size == self.max_chunk:
                self._finish()
        return len(data)

    def close(self) -> list[dict]:
        self._finish()
        return self.chunks


def blob_member(sha256: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(f"blobs/{sha256}")
    info.size, info.mode, info.mtime, info.type = size, 0o644, 0, tarfile.REGTYPE
    info.uname = info.gname = "airlock"
    return info


def write_payload(writer: ChunkWriter, blobs: list[tuple[str, int, Path]], advance=None) -> dict[str, int]:
    """Write each (sha256, size, source) as a tar member; returns {sha256: data offset in the stream}."""
    offsets = {}
    for sha, size, source in blobs:
        header = blob_member(sha, size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        writer.write(header)
        offsets[sha] = writer.pos
        digest = hashlib.sha256()
        with open(source, "rb") as fh:
            while block := fh.read(BLOCK):
                writer.write(block)
                digest.update(block)
                if advance:
                    advance(len(block))
        if digest.hexdigest() != sha or writer.pos - offsets[sha] != size:
            raise RuntimeError(f"{source} changed while it was being packed")
        if pad := (-size) % tarfile.BLOCKSIZE:
            writer.write(bytes(pad))
    writer.write(bytes(2 * tarfile.BLOCKSIZE))  # end-of-archive marker
    return offsets

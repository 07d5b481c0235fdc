"""`/v1/embeddings` for `airlock serve --embeddings MODEL`: a GGUF loaded by llama.cpp in embedding mode.

Each input becomes one vector, pooled the way the GGUF says (`<arch>.pooling_type`; mean for a chat model that
says nothing, as sentence-embedding setups over decoder models do) and scaled to unit length, as OpenAI's are. An
input longer than the context is refused, never cut short in silence. Requests are embedded one at a time (a
lock around the context), each in a single llama.cpp pass over all its inputs where they fit.

    OpenAI(base_url=..., api_key=...).embeddings.create(model="bge-small-q8_0", input=["text", ...])
"""

import base64
import struct
import threading
from pathlib import Path

from ..errors import AirlockError

POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}
MAX_INPUTS = 2048  # OpenAI's limit on inputs per request


class Embedder:
    kind = "llama.cpp (embeddings)"

    def __init__(self, path: Path, *, ctx: int = 2048, threads: int | None = None):
        from ..chat import check_gguf, default_threads
        from ..llamacpp import llama_cpp, offload, trained_context_length

        lc = llama_cpp()
        check_gguf(Path(path))
        trained = trained_context_length(Path(path))
        self.ctx_per_slot = min(ctx, trained) if trained else ctx
        try:
            header = lc.Llama(model_path=str(path), vocab_only=True, verbose=False)
            arch = header.metadata.get("general.architecture", "")
            declared = header.metadata.get(f"{arch}.pooling_type")
            header.close()
            pooling = int(declared) if declared not in (None, "") and int(declared) > 0 else 1  # 1: mean
            self.pooling = POOLING.get(pooling, str(pooling))
            self.gpu_layers, self.runs_on = offload()
            self.llm = lc.Llama(model_path=str(path), embedding=True, pooling_type=pooling, n_ctx=self.ctx_per_slot,
                                n_batch=self.ctx_per_slot, n_ubatch=self.ctx_per_slot, n_seq_max=8,
                                n_threads=threads or default_threads(), n_gpu_layers=self.gpu_layers, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise AirlockError(f"llama.cpp cannot load the model for embeddings: {exc}", where=str(path),
                               fix="give a GGUF export (`airlock export gguf ...`)") from None
        self.dimensions = self.llm.n_embd()
        self.lock = threading.Lock()

    def tokens(self, texts: list[str]) -> list[int]:
        """Each input's length in tokens."""
        return [len(self.llm.tokenize(t.encode("utf-8"), add_bos=True)) for t in texts]

    def embed(self, texts: list[str]) -> list[list[float]]:
        with self.lock:
            return self.llm.embed(texts, normalize=True, truncate=False)

    def close(self, timeout: float = 0) -> None:
        with self.lock:
            self.llm.close()


def inputs(body: dict, fail) -> list[str]:
    """The request's `input` as a list of non-empty strings; `fail(message, field)` raises."""
    value = body.get("input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        fail("'input' must be a string or a list of strings (token arrays are not supported)", "input")
    if len(value) > MAX_INPUTS:
        fail(f"'input' holds {len(value)} texts; at most {MAX_INPUTS} per request", "input")
    if any(not v for v in value):
        fail("'input' holds an empty string", "input")
    return value


def encoded(vector: list[float], encoding: str):
    """A vector as OpenAI sends it: a list of floats, or base64 of little-endian float32 (the client's default)."""
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector

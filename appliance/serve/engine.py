"""Generation for `airlock serve`: one GGUF through llama.cpp with continuous batching, many requests at once.

A single engine thread owns a llama.cpp context with `slots` sequences. Each step it builds one batch from every
busy slot: the next token of each answer being generated, then as much of the waiting prompts as fits, and calls
llama_decode once (ctypes releases the GIL, so the HTTP server keeps serving). A finished or cancelled request
frees its slot (its KV cache entries are removed) and a waiting one takes it at the next step. Compared with a
lock around one sequence, the weights are read once per step for all the answers in flight.

LoRA adapters (`airlock serve BASE --lora NAME=ADAPTER.gguf`) are loaded once beside the base weights and
switched per request by llama.cpp's runtime LoRA: an adapter applies to the whole context, so each step decodes
the answers of one adapter (or of the base), and adapters with work take turns step by step (`_turn`).

Prompts are rendered with the chat template stored in the GGUF (the one training used: the same renderer as
`airlock chat`) and tokenized the way llama-cpp-python does, so a greedy answer here equals `airlock chat`'s.
"""

import ctypes
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AirlockError


@dataclass
class Sampling:
    max_tokens: int = 256
    fit_context: bool = False  # no max_tokens asked: answer up to max_tokens or the context left, whichever is less
    logprobs: int | None = None  # report each token's log probability and this many alternatives; None: do not
    grammar: str | None = None  # GBNF every answer token must keep to (structured output)
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


def budget(request: "Request", context: int) -> None:
    """Fit the answer to the context: without max_tokens the answer may use what the prompt leaves (ending with
    finish_reason "length" when it fills it); a prompt that leaves nothing, or an explicit max_tokens that does not
    fit beside the prompt, is refused."""
    prompt, s = len(request.tokens), request.sampling
    if s.fit_context and prompt < context:
        s.max_tokens = min(s.max_tokens, context - prompt)
    elif prompt + s.max_tokens > context:
        asked = "" if s.fit_context else f" and max_tokens ({s.max_tokens})"
        raise AirlockError(f"the prompt ({prompt} tokens){asked} exceed the context of {context} tokens",
                           where="messages", fix="shorten the prompt" + ("" if s.fit_context else " or lower max_tokens"))


@dataclass
class Request:
    """One generation; `emit(kind, value)` is called from the engine thread: ("text", str) (each preceded by
    ("logprob", entry) per token when asked), then ("done", reason) with reason stop | length | cancelled | error."""

    tokens: list[int]
    sampling: Sampling
    emit: object
    cancelled: threading.Event = field(default_factory=threading.Event)
    completion_tokens: int = 0
    queued_at: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    grammar: object = None  # the engine's grammar sampler for sampling.grammar
    adapter: str | None = None  # the LoRA adapter (by name) the answer is generated with; None: the base model


class _Slot:
    def __init__(self, seq: int):
        self.seq = seq
        self.request: Request | None = None

    def start(self, request: Request) -> None:
        self.request, self.pending, self.pos = request, list(request.tokens), 0
        self.grammar = request.grammar  # a llama.cpp grammar sampler made at submit, or None
        self.next_token, self.logprobs = None, None
        self.bytes, self.text = b"", ""
        self.rng = np.random.default_rng(request.sampling.seed)


class LlamaEngine:
    """A GGUF model served by llama.cpp with `slots` parallel sequences of `ctx_per_slot` tokens each."""

    kind = "llama.cpp"
    extended_sampling = True  # log probabilities and grammars (structured output)

    def __init__(self, path: Path, *, slots: int = 8, ctx_per_slot: int = 2048, threads: int | None = None,
                 n_batch: int = 512, adapters: dict[str, Path] | None = None):
        from ..chat import check_gguf, default_threads
        from ..llamacpp import llama_cpp, offload, trained_context_length

        self.lc = lc = llama_cpp()
        check_gguf(Path(path))
        trained = trained_context_length(Path(path))
        self.ctx_per_slot = min(ctx_per_slot, trained) if trained else ctx_per_slot
        threads = threads or default_threads()
        try:  # the model, its tokenizer and chat template; its own small context only tokenizes
            self.gpu_layers, self.runs_on = offload()
            self.llm = lc.Llama(model_path=str(path), n_ctx=64, n_batch=64, n_threads=threads,
                                n_gpu_layers=self.gpu_layers, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise AirlockError(f"llama.cpp cannot load the model: {exc}", where=str(path),
                               fix="re-export it (`airlock export gguf ...`)") from None
        params = lc.llama_context_params.from_buffer_copy(self.llm.context_params)  # as `airlock chat` has them
        params.n_ctx = self.ctx_per_slot * slots
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = slots
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = False  # each slot its own KV cells: no answer attends to another's
        params.no_perf = True
        self.ctx = lc.llama_init_from_model(self.llm._model.model, params)
        if not self.ctx:
            raise AirlockError("llama.cpp could not make a context for the server", where=str(path),
                               fix="lower --parallel or --ctx (memory)")
        self.adapters = self._load_adapters(adapters or {}, path)
        self.active_adapter: str | None = None  # the adapter set on the context now
        self.memory = lc.llama_get_memory(self.ctx)
        self.vocab = lc.llama_model_get_vocab(self.llm._model.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_batch = n_batch
        self.batch = lc.llama_batch_init(n_batch, 0, 1)
        self.slots = [_Slot(i) for i in range(slots)]
        self._candidates = None  # the token array grammars are applied to (engine thread only)
        self._warm_up()
        self.waiting: queue.Queue[Request] = queue.Queue()
        self.stopping = threading.Event()
        self.busy = 0
        self.thread = threading.Thread(target=self._loop, name="llama-engine", daemon=True)
        self.thread.start()

    def _load_adapters(self, adapters: dict[str, Path], base: Path) -> dict:
        """LoRA GGUFs loaded once against the base's weights (llama.cpp checks that they fit it)."""
        from ..chat import check_gguf

        loaded = {}
        for name, adapter in adapters.items():
            check_gguf(Path(adapter))
            handle = self.lc.llama_adapter_lora_init(self.llm._model.model, str(adapter).encode())
            if not handle:
                for done in loaded.values():
                    self.lc.llama_adapter_lora_free(done)
                raise AirlockError(f"llama.cpp cannot apply the LoRA adapter {Path(adapter).name} to "
                                   f"{Path(base).name}", where=f"--lora {name}={adapter}",
                                   fix="give the LoRA GGUF exported from a job on this base (`airlock export gguf "
                                       "JOB --lora` writes both)")
            loaded[name] = handle
        return loaded

    def _use_adapter(self, name: str | None) -> None:
        """Set the context's LoRA adapter (or none) for the next decode; llama.cpp keeps the weights loaded."""
        if name == self.active_adapter:
            return
        lc = self.lc
        if name is None:
            code = lc.llama_set_adapters_lora(self.ctx, None, 0, None)
        else:
            handles = (lc.llama_adapter_lora_p_ctypes * 1)(self.adapters[name])
            code = lc.llama_set_adapters_lora(self.ctx, handles, 1, (ctypes.c_float * 1)(1.0))
        if code != 0:
            raise RuntimeError(f"llama.cpp could not set the LoRA adapter {name!r} ({code})")
        self.active_adapter = name

    def _warm_up(self) -> None:
        """Compile the chat template before the server says it is ready, so the first request does not pay for it.
        (A warm-up decode, as llama.cpp's server does, was tried and measured: it halved single-stream tokens/s
        afterwards, `python -m bench serve --quick` 0.53x against 1.07x without it, so it is not done.)"""
        self.render([{"role": "user", "content": "hello"}])

    # ------------------------------------------------------------------ the request side
    def render(self, messages: list[dict], tools: list[dict] | None = None) -> tuple[str, list[str]]:
        """(prompt text, extra stop strings) with the GGUF's own chat template, as `airlock chat` renders it."""
        from ..chat import _render_gguf_template

        return _render_gguf_template(self.llm, messages, tools), []

    @property
    def template(self) -> str | None:
        return self.llm.metadata.get("tokenizer.chat_template")

    @property
    def tool_format(self):
        """How this model's chat template writes tool calls (serve.tool_calls); None when it cannot."""
        from ..chat import _render_gguf_template
        from .tool_calls import ToolFormat

        if not hasattr(self, "_tool_format"):
            self._tool_format = ToolFormat.of(
                lambda messages, tools, prompt: _render_gguf_template(self.llm, messages, tools, prompt)) \
                if self.template else None
        return self._tool_format

    def tokenize(self, text: str, rendered: bool = True) -> list[int]:
        """A chat template's output (`rendered`) holds whatever BOS the model wants, as training's did: none is
        added (a Llama 3 template writes its own, and a second one changes every answer); a raw completion prompt
        gets the BOS the GGUF asks for."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=not rendered, special=True)

    def submit(self, request: Request) -> None:
        if request.adapter is not None and request.adapter not in self.adapters:
            raise AirlockError(f"no LoRA adapter {request.adapter!r} on this model")
        if self.stopping.is_set():
            raise AirlockError("the server is shutting down", fix="retry against another server")
        budget(request, self.ctx_per_slot)
        if request.sampling.grammar:
            request.grammar = self.lc.llama_sampler_init_grammar(self.vocab, request.sampling.grammar.encode(),
                                                                 b"root")
            if not request.grammar:
                raise AirlockError("llama.cpp could not parse the grammar made from response_format",
                                   where="response_format", fix="simplify the schema")
        self.waiting.put(request)

    def queued(self) -> int:
        return self.waiting.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking work, cancel what is queued, let running answers end (or cancel them after `timeout`)."""
        self.stopping.set()
        while True:
            try:
                self.waiting.get_nowait().cancelled.set()
            except queue.Empty:
                break
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        for slot in self.slots:
            if slot.request:
                slot.request.cancelled.set()
        self.thread.join(timeout=10)
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)
        for handle in self.adapters.values():
            self.lc.llama_adapter_lora_free(handle)
        self.llm.close()

    # ------------------------------------------------------------------ the engine thread
    def _loop(self) -> None:
        while not (self.stopping.is_set() and not self.busy):
            self._admit()
            if not self.busy:
                continue
            try:
                self._step()
            except Exception as exc:  # a llama.cpp failure ends the answers in flight, not the server
                for slot in self.slots:
                    if slot.request:
                        self._finish(slot, "error", str(exc))

    def _admit(self) -> None:
        for slot in self.slots:
            if slot.request is None:
                try:
                    request = self.waiting.get(timeout=0.05 if not self.busy else 0)
                except queue.Empty:
                    return
                if request.cancelled.is_set():
                    if request.grammar:
                        self.lc.llama_sampler_free(request.grammar)
                    request.emit("done", "cancelled")
                    continue
                slot.start(request)
                self.busy += 1

    def _turn(self) -> str | None:
        """Whose answers this step decodes: LoRA adapters apply to the whole context, so a step takes the
        requests of one adapter (or of the base), and the adapters with work take turns step by step."""
        waiting = sorted({slot.request.adapter or "" for slot in self.slots if slot.request}, key=str)
        if not waiting:
            return self.active_adapter
        current = self.active_adapter or ""
        later = [name for name in waiting if name > current]
        chosen = (later or waiting)[0] if len(waiting) > 1 or current not in waiting else current
        return chosen or None

    def _step(self) -> None:
        lc, batch = self.lc, self.batch
        entries = []  # (slot, index in batch) whose logits to sample
        n = 0
        turn = None
        if self.adapters:
            turn = self._turn()
            self._use_adapter(turn)

        def add(token: int, pos: int, seq: int, logits: bool) -> None:
            nonlocal n
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
            batch.seq_id[n][0], batch.logits[n] = seq, logits
            n += 1

        for slot in self.slots:  # first the answers being generated: one token each, latency matters
            if slot.request and slot.request.cancelled.is_set():
                self._finish(slot, "cancelled")
            elif slot.request and slot.request.adapter != turn:
                continue  # another adapter's turn
            elif slot.request and not slot.pending and slot.next_token is not None:
                add(slot.next_token, slot.pos, slot.seq, True)
                entries.append((slot, n - 1))
                slot.pos += 1
        for slot in self.slots:  # then as much of the waiting prompts as fits
            if slot.request and slot.request.adapter == turn and slot.pending and n < self.n_batch:
                take = slot.pending[:self.n_batch - n]
                slot.pending = slot.pending[len(take):]
                for i, token in enumerate(take):
                    last = not slot.pending and i == len(take) - 1
                    add(token, slot.pos, slot.seq, last)
                    slot.pos += 1
                if not slot.pending:
                    entries.append((slot, n - 1))
        if not n:
            return
        batch.n_tokens = n
        code = lc.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code} (KV cache full?)")
        for slot, index in entries:
            logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
            self._accept(slot, self._sample(slot, logits))

    def _logprob_entry(self, token: int, piece: bytes, logprobs: np.ndarray, n: int) -> dict:
        """The chosen token's log probability under the model (before temperature, as OpenAI reports it) and the
        `n` most likely tokens with theirs, most likely first."""
        def described(t: int, raw: bytes) -> dict:
            return {"token": raw.decode("utf-8", "replace"), "bytes": list(raw), "logprob": float(logprobs[t])}

        best = np.argpartition(-logprobs, n)[:n] if n else np.empty(0, dtype=int)
        best = best[np.argsort(-logprobs[best], kind="stable")]
        return {**described(token, piece), "top": [described(int(t), self._piece(int(t))) for t in best]}

    def _constrained(self, grammar, logits: np.ndarray) -> np.ndarray:
        """`logits` with every token the grammar does not allow next set to -inf (llama.cpp's grammar sampler)."""
        lc = self.lc
        if self._candidates is None:  # laid out as llama_token_data: id, logit, p
            self._candidates = np.zeros(self.n_vocab, dtype=[("id", np.int32), ("logit", np.float32),
                                                             ("p", np.float32)])
            self._candidates["id"] = np.arange(self.n_vocab)
        self._candidates["logit"] = logits
        self._candidates["p"] = 0.0
        view = lc.llama_token_data_array(data=self._candidates.ctypes.data_as(ctypes.POINTER(lc.llama_token_data)),
                                         size=self.n_vocab, selected=-1, sorted=False)
        lc.llama_sampler_apply(grammar, ctypes.byref(view))
        return self._candidates["logit"].copy()

    def _sample(self, slot: _Slot, logits: np.ndarray) -> int:
        s = slot.request.sampling
        slot.logprobs = None
        if s.logprobs is not None:  # log-softmax of the raw logits
            shifted = logits.astype(np.float64) - logits.max()
            slot.logprobs = shifted - np.log(np.exp(shifted).sum())
        token = self._draw(slot, logits)
        # the grammar checks the token drawn; only when it refuses is the whole vocabulary masked and the draw
        # made again (the same distribution as masking first: a refused draw is redrawn among the allowed)
        if slot.grammar and not self._allowed(slot.grammar, token, logits[token]):
            token = self._draw(slot, self._constrained(slot.grammar, logits))
        return token

    def _allowed(self, grammar, token: int, logit: float) -> bool:
        lc = self.lc
        one = (lc.llama_token_data * 1)(lc.llama_token_data(token, logit, 0.0))
        view = lc.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        lc.llama_sampler_apply(grammar, ctypes.byref(view))
        return one[0].logit != float("-inf")

    def _draw(self, slot: _Slot, logits: np.ndarray) -> int:
        s = slot.request.sampling
        if s.temperature <= 0:
            return int(np.argmax(logits))  # greedy, first maximum: what llama.cpp's greedy sampler picks
        scores = logits.astype(np.float64) / s.temperature
        order = np.argsort(-scores)
        if s.top_k:
            order = order[:s.top_k]
        probs = np.exp(scores[order] - scores[order[0]])
        probs /= probs.sum()
        if s.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), s.top_p) + 1)
            order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
        return int(order[slot.rng.choice(len(order), p=probs)])

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.lc.llama_token_to_piece(self.vocab, token, buf, 256, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def _accept(self, slot: _Slot, token: int) -> None:
        request = slot.request
        if self.lc.llama_vocab_is_eog(self.vocab, token):
            return self._finish(slot, "stop")
        request.completion_tokens += 1
        if request.first_token_at is None:
            request.first_token_at = time.monotonic()
        if slot.grammar:
            self.lc.llama_sampler_accept(slot.grammar, token)
        piece = self._piece(token)
        if slot.logprobs is not None:
            request.emit("logprob", self._logprob_entry(token, piece, slot.logprobs, request.sampling.logprobs))
        slot.bytes += piece
        text = _complete_utf8(slot.bytes)
        slot.bytes = slot.bytes[len(text.encode("utf-8")):]
        if text:
            self._emit_text(slot, text)
            if slot.request is None:
                return
        if request.completion_tokens >= request.sampling.max_tokens:
            return self._finish(slot, "length")
        slot.next_token = token

    def _emit_text(self, slot: _Slot, text: str) -> None:
        """Send text on, holding back what might be the start of a stop string; end at a stop string."""
        request = slot.request
        slot.text += text
        stops = request.sampling.stop
        for stop in stops:
            at = slot.text.find(stop)
            if at >= 0:
                if at:
                    request.emit("text", slot.text[:at])
                slot.text = ""
                return self._finish(slot, "stop")
        hold = max((len(s) - 1 for s in stops if any(slot.text.endswith(s[:k]) for k in range(1, len(s)))), default=0)
        ready = slot.text[:len(slot.text) - hold] if hold else slot.text
        if ready:
            request.emit("text", ready)
            slot.text = slot.text[len(ready):]

    def _finish(self, slot: _Slot, reason: str, message: str = "") -> None:
        request = slot.request
        if reason in ("length", "stop") and slot.text:  # held back for a stop string that never came
            request.emit("text", slot.text)
        self.lc.llama_memory_seq_rm(self.memory, slot.seq, -1, -1)
        if slot.grammar:
            self.lc.llama_sampler_free(slot.grammar)
            slot.grammar = None
        slot.request = None
        self.busy -= 1
        request.emit("done", reason if not message else f"error: {message}")


class AdapterView:
    """A LoRA adapter on a served base, as a model id of its own: its requests are the base's, generated with the
    adapter. Everything else (template, tokenizer, context) is the base's."""

    def __init__(self, base: LlamaEngine, name: str):
        self.base, self.adapter = base, name

    def __getattr__(self, attr):
        return getattr(self.base, attr)

    def submit(self, request: Request) -> None:
        request.adapter = self.adapter
        self.base.submit(request)

    @property
    def busy(self) -> int:
        return sum(1 for slot in self.base.slots if slot.request and slot.request.adapter == self.adapter)

    def close(self, timeout: float = 30.0) -> None:
        """The base closes the context and its adapters."""


def _complete_utf8(data: bytes) -> str:
    """The longest prefix of `data` that is whole UTF-8 characters (a character may span two tokens)."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")

"""Chat with a model: a GGUF through llama-cpp-python, or an HF base + LoRA adapter through transformers.

    session = open_session("out/model-q4_k_m.gguf")            # or a job id, adapter dir, HF model dir
    chat = Chat(session, system="You are terse.")
    for piece in chat.send("Hello", SamplingParams(temperature=0)):
        print(piece, end="", flush=True)

Both backends expose the same small interface (`ChatSession`): `stream(messages, params)` yields text pieces as
they are generated, `cancel()` stops a running stream from another thread (the TUI's stop button), and
`count_tokens(messages)` measures a prompt so `Chat` can keep the history within the context window by dropping
the oldest turns. The CLI (`airlock chat`) and the TUI are thin faces over this module.
"""

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import AirlockError

DEFAULT_CTX = 2048


@dataclass
class SamplingParams:
    """temperature 0 means greedy (deterministic); max_tokens caps one answer."""

    temperature: float = 0.0
    top_p: float = 0.95
    top_k: int = 40
    max_tokens: int = 256
    seed: int = 0

    def validate(self) -> None:
        if self.temperature < 0:
            raise AirlockError("temperature must be >= 0", where="temperature", fix="use 0 for greedy answers")
        if not 0 < self.top_p <= 1:
            raise AirlockError("top_p must be in (0, 1]", where="top_p")
        if self.top_k < 0 or self.max_tokens < 1:
            raise AirlockError("top_k must be >= 0 and max_tokens >= 1", where="top_k/max_tokens")


def default_threads() -> int:
    """Physical cores this process may use (affinity, cgroup quota): llama.cpp's matrix kernels gain nothing from
    hyper-threads and lose badly to oversubscription."""
    from .cpus import physical

    return physical()


class ChatSession:
    """The interface both backends implement."""

    n_ctx: int
    name: str

    def __init__(self):
        self._stop = threading.Event()

    def cancel(self) -> None:
        """Stop the stream in progress (safe from another thread); the stream ends after its current piece."""
        self._stop.set()

    def stream(self, messages: list[dict], params: SamplingParams | None = None) -> Iterator[str]:
        raise NotImplementedError

    def count_tokens(self, messages: list[dict]) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LlamaSession(ChatSession):
    """A GGUF through llama-cpp-python, using the chat template stored in the GGUF (optionally with a LoRA GGUF)."""

    def __init__(self, model_path: Path, *, n_ctx: int | None = None, threads: int | None = None,
                 lora_path: Path | None = None):
        super().__init__()
        from .llamacpp import interrupts_after_call, llama_cpp, offload, trained_context_length

        Llama = llama_cpp().Llama

        model_path = Path(model_path)
        check_gguf(model_path)
        if lora_path:
            check_gguf(Path(lora_path))
        trained = trained_context_length(model_path)
        self.n_ctx = min(n_ctx or DEFAULT_CTX, trained) if trained else (n_ctx or DEFAULT_CTX)
        self.name = model_path.name
        self.gpu_layers, self.runs_on = offload()
        try:
            with interrupts_after_call():  # Ctrl-C while a large model loads must not be lost in llama.cpp's log
                self.llm = Llama(model_path=str(model_path), n_ctx=self.n_ctx, n_threads=threads or default_threads(),
                                 lora_path=str(lora_path) if lora_path else None, n_gpu_layers=self.gpu_layers,
                                 verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise AirlockError(f"llama.cpp cannot load the model: {exc}", where=str(model_path),
                               fix="re-export it (`airlock export gguf ...`); a LoRA GGUF must match its base") from None

    def stream(self, messages, params=None):
        params = params or SamplingParams()
        params.validate()
        self._stop.clear()
        chunks = self.llm.create_chat_completion(
            messages=messages, stream=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
            max_tokens=params.max_tokens, seed=params.seed)
        try:
            for chunk in chunks:
                if self._stop.is_set():
                    break
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
        finally:
            chunks.close()  # stops llama.cpp generating the rest

    def count_tokens(self, messages):
        # Render with the same template create_chat_completion uses, then count llama.cpp tokens.
        text = _render_gguf_template(self.llm, messages)
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def close(self):
        self.llm.close()


class HFSession(ChatSession):
    """An HF model (a base with its LoRA adapter applied, or a full model) through transformers, for comparison."""

    def __init__(self, source: str | Path, *, n_ctx: int | None = None, threads: int | None = None):
        super().__init__()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .sources import base_of, check_adapter_dir, check_model_dir, resolve_source, tokenizer_dir

        if threads:
            torch.set_num_threads(threads)
        src = resolve_source(str(source))
        self.name = src.name
        if src.kind == "adapter":
            from peft import PeftModel

            check_adapter_dir(src.path)
            base = base_of(src)
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), src.path)
            tok_dir = tokenizer_dir(src.path, base)
        else:
            check_model_dir(src.path)
            model = AutoModelForCausalLM.from_pretrained(src.path)
            tok_dir = src.path
        self.model = model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        limit = getattr(model.config, "max_position_embeddings", None) or DEFAULT_CTX
        self.n_ctx = min(n_ctx or DEFAULT_CTX, limit)

    def _ids(self, messages):
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]

    def count_tokens(self, messages):
        return int(self._ids(messages).shape[1])

    def stream(self, messages, params=None):
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        params = params or SamplingParams()
        params.validate()
        self._stop.clear()
        stop = self._stop

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop.is_set()

        ids = self._ids(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p,
                    "top_k": params.top_k} if params.temperature > 0 else {"do_sample": False}
        torch.manual_seed(params.seed)
        errors = []

        def generate():
            try:
                self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                                    max_new_tokens=params.max_tokens, stopping_criteria=StoppingCriteriaList([Cancelled()]),
                                    pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id, **sampling)
            except Exception as exc:  # surfaced in the caller's thread below
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            stop.set()
            worker.join()
        if errors:
            raise errors[0]


def check_gguf(path: Path) -> None:
    if not path.is_file():
        raise AirlockError("no such GGUF file", where=str(path), fix="export one with `airlock export gguf SRC`")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise AirlockError("not a GGUF file (bad magic)", where=str(path), fix="point at a .gguf written by an export")


def _render_gguf_template(llm, messages, tools=None, add_generation_prompt: bool = True) -> str:
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:  # llama-cpp-python falls back to a generic format; approximate its size
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
    eos = llm.detokenize([llm.token_eos()]).decode("utf-8", "replace")
    bos = llm.detokenize([llm.token_bos()]).decode("utf-8", "replace") if llm.token_bos() >= 0 else ""
    return render_template(template, messages, tools, add_generation_prompt, bos=bos, eos=eos)


def render_template(template: str, messages, tools=None, add_generation_prompt: bool = True, *, bos: str = "",
                    eos: str = "") -> str:
    """A chat template rendered the way transformers renders it (llama-cpp-python's formatter keeps to it)."""
    from .llamacpp import llama_cpp

    formatter = llama_cpp().llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                                                    add_generation_prompt=add_generation_prompt)
    return formatter(messages=messages, tools=tools).prompt


def open_session(model: str | Path, *, n_ctx: int | None = None, threads: int | None = None,
                 lora: str | Path | None = None, backend: str = "auto") -> ChatSession:
    """A GGUF file -> LlamaSession; a job id, adapter dir or HF model dir -> HFSession."""
    text = str(model)
    if backend == "llama" or (backend == "auto" and text.endswith(".gguf")):
        return LlamaSession(Path(text), n_ctx=n_ctx, threads=threads, lora_path=Path(lora) if lora else None)
    if lora:
        raise AirlockError("--lora applies a LoRA GGUF to a GGUF base model", where="--lora",
                           fix="give a .gguf MODEL, or chat with the job/adapter directly (HF backend)")
    return HFSession(model, n_ctx=n_ctx, threads=threads)


@dataclass
class Chat:
    """A conversation: system prompt + turns, kept within the session's context window."""

    session: ChatSession
    system: str | None = None
    history: list[dict] = field(default_factory=list)
    dropped: int = 0  # turns dropped so far to stay within the context window

    def messages(self, history: list[dict] | None = None) -> list[dict]:
        sys_msg = [{"role": "system", "content": self.system}] if self.system else []
        return sys_msg + (self.history if history is None else history)

    def fit(self, reserve: int) -> int:
        """Drop the oldest user/assistant pairs until prompt + `reserve` answer tokens fit; returns pairs dropped."""
        dropped = 0
        while len(self.history) > 1 and self.session.count_tokens(self.messages()) + reserve > self.session.n_ctx:
            del self.history[:2]
            dropped += 1
        if self.session.count_tokens(self.messages()) + reserve > self.session.n_ctx:
            self.history.pop()
            raise AirlockError(f"the message does not fit in the context window ({self.session.n_ctx} tokens with "
                               f"{reserve} reserved for the answer)", fix="shorten it, lower --max-tokens or raise --ctx")
        self.dropped += dropped
        return dropped

    def send(self, text: str, params: SamplingParams | None = None, on_drop=None) -> Iterator[str]:
        """Add a user turn, stream the answer's pieces, then keep the answer in the history."""
        params = params or SamplingParams()
        self.history.append({"role": "user", "content": text})
        dropped = self.fit(min(params.max_tokens, self.session.n_ctx // 2))
        if dropped and on_drop:
            on_drop(dropped)
        pieces = []
        for piece in self.session.stream(self.messages(), params):
            pieces.append(piece)
            yield piece
        self.history.append({"role": "assistant", "content": "".join(pieces)})

    def reset(self) -> None:
        self.history.clear()
        self.dropped = 0

    def save(self, path: Path, params: SamplingParams | None = None) -> Path:
        from .atomic import write_json

        return write_json(Path(path), {"model": self.session.name, "system": self.system,
                                       "params": asdict(params) if params else None, "messages": self.messages()})

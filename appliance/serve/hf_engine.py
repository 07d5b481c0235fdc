"""An HF model (a job's base + adapter, or a model directory) behind `airlock serve`, through transformers: one
answer at a time, to check a job before it is exported. Same interface as the llama.cpp engine (engine.py)."""

import queue
import threading
import time
from pathlib import Path

from ..errors import AirlockError
from .engine import Request, budget


class HFEngine:
    kind = "transformers"

    def __init__(self, path: Path, *, ctx: int = 2048, threads: int | None = None):
        from ..chat import HFSession

        self.session = HFSession(path, n_ctx=ctx, threads=threads)
        self.tokenizer, self.model = self.session.tokenizer, self.session.model
        self.ctx_per_slot = self.session.n_ctx
        self.waiting: queue.Queue[Request] = queue.Queue()
        self.stopping = threading.Event()
        self.busy = 0
        self.thread = threading.Thread(target=self._loop, name="hf-engine", daemon=True)
        self.thread.start()

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> tuple[str, list[str]]:
        return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                                  add_generation_prompt=True), []

    def tokenize(self, text: str, rendered: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=not rendered)["input_ids"]

    def submit(self, request: Request) -> None:
        if self.stopping.is_set():
            raise AirlockError("the server is shutting down", fix="retry against another server")
        budget(request, self.ctx_per_slot)
        self.waiting.put(request)

    def queued(self) -> int:
        return self.waiting.qsize()

    def close(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        self.thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1)

    def _loop(self) -> None:
        while not self.stopping.is_set() or not self.waiting.empty():
            try:
                request = self.waiting.get(timeout=0.1)
            except queue.Empty:
                continue
            if request.cancelled.is_set() or self.stopping.is_set():
                request.emit("done", "cancelled")
                continue
            self.busy = 1
            try:
                request.emit("done", self._generate(request))
            except Exception as exc:  # one failed answer, not the server
                request.emit("done", f"error: {exc}")
            finally:
                self.busy = 0

    def _generate(self, request: Request) -> str:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        s = request.sampling
        ids = torch.tensor([request.tokens])
        prompt_len, text, emitted = ids.shape[1], "", 0
        reason = ["length"]

        class Watch(StoppingCriteria):
            """Emits the new text after each token; ends on a stop string or a cancelled request."""

            def __call__(watch, input_ids, scores, **kwargs):
                nonlocal text, emitted
                new = input_ids[0, prompt_len:]
                request.completion_tokens = len(new)
                if request.first_token_at is None:
                    request.first_token_at = time.monotonic()
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                cut = min([i for i in (text.find(x) for x in s.stop) if i >= 0], default=-1)
                end = cut if cut >= 0 else len(text) - text.endswith("\ufffd")  # hold back half a character
                if end > emitted:
                    request.emit("text", text[emitted:end])
                    emitted = end
                if cut >= 0:
                    reason[0] = "stop"
                return cut >= 0 or request.cancelled.is_set()

        sampling = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k or None} \
            if s.temperature > 0 else {"do_sample": False}
        if s.seed is not None:
            torch.manual_seed(s.seed)
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=s.max_tokens,
                                      stopping_criteria=StoppingCriteriaList([Watch()]),
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                      **sampling)
        new = out[0, prompt_len:]
        if request.cancelled.is_set():
            return "cancelled"
        ended = reason[0] == "stop" or (len(new) and int(new[-1]) == self.tokenizer.eos_token_id)
        return "stop" if ended or len(new) < s.max_tokens else "length"

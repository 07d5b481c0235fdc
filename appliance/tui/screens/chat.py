"""Chat: talk to a GGUF (llama-cpp-python) or an HF base + adapter (transformers), answers streamed as Markdown;
compare two models side by side on the same prompt (base vs tuned). Esc stops generation.

Library calls: appliance.chat.open_session(model) (a .gguf -> llama.cpp; a job, adapter or model dir -> HF),
appliance.chat.Chat(session, system).send(text, SamplingParams(...)) streaming pieces, ChatSession.cancel() on Esc,
Chat.save(path, params) for history (<home>/chats/*.json; Ctrl+O reopens one). Models load and generate in
worker threads; pieces are posted back with call_from_thread.
"""

import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Markdown, Static

from ...errors import AirlockError
from ...paths import home
from ..widgets.form import row
from .base import AirlockScreen


def chats_dir() -> Path:
    return home() / "chats"


class Pane(Vertical):
    """One model's side of the conversation: its name, a scrolling transcript of Markdown answers."""

    DEFAULT_CSS = """
    Pane { width: 1fr; border: round $panel; }
    Pane > .pane-title { height: 1; color: $accent; text-style: bold; }
    Pane VerticalScroll { height: 1fr; }
    Pane .user { color: $text-muted; margin: 1 0 0 0; }
    Pane Markdown { margin: 0; padding: 0; }
    """

    def __init__(self, slot: int):
        super().__init__(id=f"pane-{slot}")
        self.slot = slot
        self.chat = None  # appliance.chat.Chat once the model is loaded
        self.model = ""
        self.streaming = False
        self.answer_text = ""

    def compose(self) -> ComposeResult:
        yield Static(f"model {self.slot + 1}: not loaded", classes="pane-title")
        yield VerticalScroll()

    def title(self, text: str) -> None:
        self.query_one(".pane-title", Static).update(text.replace("[", "\\["))

    async def add_turn(self, prompt: str) -> Markdown:
        scroll = self.query_one(VerticalScroll)
        await scroll.mount(Static(f"> {prompt}".replace("[", "\\["), classes="user"))
        answer = Markdown("")
        await scroll.mount(answer)
        scroll.scroll_end(animate=False)
        return answer

    async def clear(self) -> None:
        await self.query_one(VerticalScroll).remove_children()


class ChatScreen(AirlockScreen):
    MODE = "chat"
    BINDINGS = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+l", "load", "Load", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+o", "reopen", "Reopen", priority=True),
        Binding("ctrl+n", "new", "New", priority=True),
        Binding("ctrl+b", "browse", "Browse", priority=True),
    ]
    DEFAULT_CSS = """
    ChatScreen #chat-settings { height: auto; padding: 0 1; }
    ChatScreen .row { height: 1; }
    ChatScreen .row Label { width: 9; color: $text-muted; }
    ChatScreen .row Input { width: 1fr; }
    ChatScreen .row .num { width: 8; }
    ChatScreen #panes { height: 1fr; }
    ChatScreen #prompt { dock: bottom; }
    """

    def body(self) -> ComposeResult:
        with Vertical(id="chat-settings"):
            yield row("model",
                      Input("", id="model", compact=True, placeholder=".gguf file, job id, adapter or model dir (Ctrl+B)"))
            yield row("compare",
                      Input("", id="model2", compact=True, placeholder="optional second model, side by side"))
            yield row("system", Input("", id="system", compact=True, placeholder="system prompt (optional)"))
            yield row("temp", Input("0", id="temperature", compact=True, classes="num"),
                      Label(" top_p"),
                      Input("0.95", id="top_p", compact=True, classes="num"),
                      Label(" max tok"),
                      Input("256", id="max_tokens", compact=True, classes="num"))
        with Horizontal(id="panes"):
            yield Pane(0)
            yield Pane(1)
        yield Input("", id="prompt", placeholder="message (Enter sends; Ctrl+L loads the models first)")

    def on_mount(self) -> None:
        self.query_one("#pane-1").display = False
        self.query_one("#model").focus()

    def receive_handoff(self, values: dict) -> None:
        if values.get("model"):  # "Chat with it" from another screen: fill the field and load it at once
            self.query_one("#model", Input).value = values["model"]
            self.query_one("#model2", Input).value = ""
            self.action_load()

    def action_browse(self) -> None:
        from ..widgets.file_picker import FilePicker

        field = self.focused if isinstance(self.focused, Input) and self.focused.id in ("model", "model2") \
            else self.query_one("#model", Input)

        def chosen(path):
            if path is not None:
                field.value = str(path)

        self.app.push_screen(FilePicker("Chat model: a .gguf file, or a job, adapter or model directory",
                                        field.value, dirs=True), chosen)

    def panes(self) -> list[Pane]:
        return [p for p in self.query(Pane) if p.display]

    # -- loading -------------------------------------------------------------------------------------------------
    def action_load(self) -> None:
        models = [self.query_one("#model", Input).value.strip(), self.query_one("#model2", Input).value.strip()]
        if not models[0]:
            self.notify("give a model: a .gguf file, a job id, an adapter or model directory", severity="warning")
            return
        self.query_one("#pane-1").display = bool(models[1])
        system = self.query_one("#system", Input).value.strip() or None
        for pane, model in zip(self.query(Pane), models):
            if model:
                pane.title(f"loading {model} ...")
                self.load_model(pane, model, system)

    @work(thread=True, group="chat-load", exit_on_error=False)
    def load_model(self, pane: Pane, model: str, system: str | None) -> None:
        from ...chat import Chat, open_session

        try:
            if pane.chat is not None:
                pane.chat.session.close()
            session = open_session(model)
        except Exception as exc:
            self.app.call_from_thread(pane.title, f"model {pane.slot + 1}: failed to load")
            self.fail_from_thread(exc, f"loading {model}")
            return
        reopened, pane.reopened = list(getattr(pane, "reopened", [])), []
        pane.chat = Chat(session, system=system, history=reopened)
        pane.model = model
        self.app.call_from_thread(self._loaded, pane, f"{session.name} ({type(session).__name__[:-7]}, "
                                  f"ctx {session.n_ctx})", bool(reopened))

    async def _loaded(self, pane: Pane, title: str, reopened: bool) -> None:
        if not reopened:  # a new model starts a new conversation: the old one is not under the new header
            await pane.clear()
        pane.title(title)
        self.query_one("#prompt", Input).focus()

    # -- sending -------------------------------------------------------------------------------------------------
    def _params(self):
        from ...chat import SamplingParams
        from ...schema import build

        values = {k: self.query_one(f"#{k}", Input).value.strip() for k in ("temperature", "top_p", "max_tokens")}
        return build(SamplingParams, {k: v for k, v in values.items() if v}, where="sampling")

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "prompt":
            self.action_load()
            return
        text = event.value.strip()
        if not text:
            return
        panes = self.panes()
        if any(p.chat is None for p in panes):
            self.notify("load the model(s) first (Ctrl+L)", severity="warning")
            return
        if any(p.streaming for p in panes):
            self.notify("still answering; Esc stops it", severity="warning")
            return
        try:
            params = self._params()
        except AirlockError as exc:
            self.fail(exc, "sampling parameters")
            return
        event.input.value = ""
        for pane in panes:
            answer = await pane.add_turn(text)
            pane.streaming = True
            pane.answer_text = ""
            self.generate(pane, answer, text, params)

    @work(thread=True, group="chat-generate", exit_on_error=False)
    def generate(self, pane: Pane, answer: Markdown, text: str, params) -> None:
        """Stream one answer into its Markdown widget; Esc (ChatSession.cancel) ends it after the current piece."""
        started = time.monotonic()
        pieces = 0
        try:
            for piece in pane.chat.send(text, params):
                pieces += 1
                pane.answer_text += piece
                self.app.call_from_thread(answer.update, pane.answer_text)
                self.app.call_from_thread(pane.query_one(VerticalScroll).scroll_end, animate=False)
        except Exception as exc:
            self.fail_from_thread(exc, "generating")
        finally:
            pane.streaming = False
        seconds = time.monotonic() - started
        self.app.call_from_thread(self._finished, pane, pieces, seconds)

    def _finished(self, pane: Pane, pieces: int, seconds: float) -> None:
        name = pane.chat.session.name if pane.chat else pane.model
        pane.title(f"{name}: {pieces} pieces in {seconds:.1f} s")

    def action_stop(self) -> None:
        stopped = False
        for pane in self.query(Pane):
            if pane.streaming and pane.chat is not None:
                pane.chat.session.cancel()
                stopped = True
        if stopped:
            self.notify("stopping the answer")

    # -- history -------------------------------------------------------------------------------------------------
    def action_save(self) -> None:
        saved = []
        try:
            params = self._params()
            for pane in self.panes():
                if pane.chat is not None and pane.chat.history:
                    stamp = time.strftime("%Y%m%d-%H%M%S")
                    path = chats_dir() / f"{stamp}-{pane.slot + 1}.json"
                    pane.chat.save(path, params)
                    saved.append(path.name)
        except Exception as exc:
            self.fail(exc, "saving the chat")
            return
        self.notify(f"saved {', '.join(saved)} in {chats_dir()}" if saved else "nothing to save yet")

    def action_reopen(self) -> None:
        from ..widgets.file_picker import FilePicker

        chats_dir().mkdir(parents=True, exist_ok=True)
        self.app.push_screen(FilePicker("Reopen a saved chat", chats_dir()), self._reopen)

    async def _reopen(self, path) -> None:
        import json

        if path is None:
            return
        try:
            saved = json.loads(Path(path).read_text(encoding="utf-8"))
            messages = saved["messages"]
        except (OSError, ValueError, KeyError) as exc:
            self.fail(AirlockError(f"not a saved chat: {exc}", where=str(path)), "reopening a chat")
            return
        self.query_one("#pane-1").display = False
        self.query_one("#model", Input).value = saved.get("model") or ""
        self.query_one("#system", Input).value = saved.get("system") or ""
        pane = self.query_one("#pane-0", Pane)
        await pane.clear()
        history = [m for m in messages if m.get("role") != "system"]
        for msg in history:
            if msg["role"] == "user":
                answer = await pane.add_turn(msg["content"])
            else:
                await answer.update(msg["content"])
        pane.reopened = history  # given to the Chat once the model is loaded again
        if pane.chat is not None:
            pane.chat.history = list(history)
            pane.chat.system = saved.get("system")
        self.notify(f"reopened {Path(path).name}; Ctrl+L loads its model to continue")

    async def action_new(self) -> None:
        for pane in self.query(Pane):
            await pane.clear()
            if pane.chat is not None:
                pane.chat.reset()

    def palette_commands(self):
        return [("Load the chat model(s)", "open the model (and the compare model) (Ctrl+L)", self.action_load),
                ("Save the chat", f"write the history to {chats_dir()} (Ctrl+S)", self.action_save),
                ("Reopen a saved chat", "show a saved conversation again (Ctrl+O)", self.action_reopen),
                ("Stop generating", "end the current answer (Esc)", self.action_stop)]

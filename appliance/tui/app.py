"""The Airlock terminal app: nine screens (modes) over the library, keyboard first, never blocking.

    airlock tui [--screen jobs] [--job JOB_ID]

Each screen is a Textual mode, imported and built the first time it is shown (the first frame only pays for
Home). Keys 1-9 (F1-F9 from anywhere, including while typing in a field or select) switch screens, Ctrl+P opens the command palette, Ctrl+Q
quits. Quitting never stops a job: jobs are detached processes with their state on disk (appliance.jobs).

Errors: an AirlockError from the library becomes a notification (what, where, fix); anything else becomes a
short notification and its traceback goes to <home>/logs/tui.log, never onto the screen.
"""

import importlib
import logging
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding

from ..errors import AirlockError
from .screen_list import SCREENS, log_path

log = logging.getLogger("airlock.tui")


def _setup_log() -> None:
    path = log_path()
    for handler in [h for h in log.handlers if getattr(h, "_airlock", False)]:
        if Path(handler.baseFilename) == path:
            return
        log.removeHandler(handler)  # AIRLOCK_HOME changed since: the log follows it
        handler.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler._airlock = True
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _factory(spec: str):
    """A mode factory that imports the screen's module only when the mode is first shown."""
    module, _, cls = spec.partition(":")

    def build():
        try:
            return getattr(importlib.import_module(f"{__package__}.screens.{module}"), cls)()
        except Exception as exc:  # a broken library module must not take the whole app down
            log.error("cannot open the %s screen", module, exc_info=exc)
            from .screens.base import UnavailableScreen

            return UnavailableScreen(module, exc)

    return build


class AirlockApp(App):
    TITLE = "Airlock"
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses elsewhere still find it
    MODES = {name: _factory(spec) for name, _, _, spec in SCREENS}
    BINDINGS = [
        *(Binding(key, f"app.show_by_digit('{name}')", title, show=False) for name, title, key, _ in SCREENS),
        *(Binding(f"f{key}", f"app.show('{name}')", title, show=False, priority=True)
          for name, title, key, _ in SCREENS),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, start: str = "home", job: str | None = None):
        super().__init__()
        self.start_mode = start
        self.focus_job = job  # the Jobs screen selects this job when it opens
        self.handoff: dict = {}  # values one screen passes to another (e.g. an adapter to chat with)
        _setup_log()

    def on_mount(self) -> None:
        log.info("tui started")
        self.switch_mode(self.start_mode)

    def action_show(self, mode: str, **handoff) -> None:
        """Switch to a screen; `handoff` values (e.g. job=..., model=...) are delivered to it once it shows."""
        self.handoff.update(handoff)
        if self.current_mode != mode:
            self.switch_mode(mode)
        self.call_after_refresh(self._deliver_handoff)

    def action_show_by_digit(self, mode: str) -> None:
        """A bare digit switches screens only when the focused widget does not take typed text: a digit typed into
        a field, a select or an editor belongs to it (F1-F9 switch from anywhere)."""
        from textual.widgets import Input, Select, TextArea

        if isinstance(self.focused, (Input, Select, TextArea)):
            return
        self.action_show(mode)

    def _deliver_handoff(self) -> None:
        receive = getattr(self.screen, "receive_handoff", None)
        if receive and self.handoff:
            receive(self.handoff)
            self.handoff = {}

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for name, title, key, _ in SCREENS:
            yield SystemCommand(f"Go to {title}", f"Show the {title} screen (key {key})",
                                lambda name=name: self.action_show(name))
        commands = getattr(screen, "palette_commands", None)
        if commands:
            for title, help_text, callback in commands():
                yield SystemCommand(title, help_text, callback)

    def fail(self, exc: BaseException, doing: str = "") -> None:
        """Show a library error as a notification; full details go to the log file, never onto the screen."""
        import time

        # A timer that keeps failing the same way notifies once a minute, not every tick.
        key = (doing, str(exc))
        if key == getattr(self, "_last_failure", (None, 0))[0] and time.monotonic() - self._last_failure[1] < 60:
            return
        self._last_failure = (key, time.monotonic())
        if isinstance(exc, AirlockError):
            log.warning("%s: %s", doing or "error", exc.render())
            text = exc.message if len(exc.message) < 600 else exc.message[:600] + " ..."
            if exc.fix:
                text += f"\nfix: {exc.fix}"
            self.notify(text, title=exc.where or doing or "error", severity="error", timeout=12)
        else:
            log.error("%s failed", doing or "action", exc_info=exc)
            self.notify(f"{type(exc).__name__}: {exc}\n(details in {log_path()})",
                        title=f"unexpected error{': ' + doing if doing else ''}", severity="error", timeout=12)

    def fail_from_thread(self, exc: BaseException, doing: str = "") -> None:
        self.call_from_thread(self.fail, exc, doing)


def run(start: str = "home", job: str | None = None) -> int:
    AirlockApp(start, job).run()
    return 0

"""What every screen shares: the navigation bar on top, the footer with key hints, error reporting helpers."""

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from ..widgets.navbar import NavBar


class AirlockScreen(Screen):
    MODE = "home"

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def palette_commands(self):
        """(title, help, callback) triples this screen adds to the command palette (Ctrl+P)."""
        return []

    def receive_handoff(self, values: dict) -> None:
        """Values another screen passes here (e.g. {"job": id}); override to use them."""

    def fail(self, exc: BaseException, doing: str = "") -> None:
        self.app.fail(exc, doing)

    def fail_from_thread(self, exc: BaseException, doing: str = "") -> None:
        self.app.call_from_thread(self.app.fail, exc, doing)


class UnavailableScreen(AirlockScreen):
    """Shown in place of a screen whose library part failed to load in this build (details in the log file)."""

    def __init__(self, mode: str, exc: BaseException):
        self.MODE = mode
        self.exc = exc
        super().__init__()

    def body(self) -> ComposeResult:
        from textual.widgets import Static

        from ..screen_list import log_path

        yield Static(f"The {self.MODE} screen is not available in this build:\n\n"
                     f"  {type(self.exc).__name__}: {self.exc}\n\n"
                     f"Details are in {log_path()}.".replace("[", "\\["), id="unavailable")

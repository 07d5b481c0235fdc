"""A yes/no question before an action that cannot be taken back in one key (stopping a job, revoking a key).

    self.app.push_screen(Confirm("Stop job X?", "It saves a checkpoint first; resume with R."), callback)

The callback receives True only for `y` (or the Yes button); Esc, `n` and No give False.
"""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "Cancel")]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 60; height: auto; border: round $warning; background: $surface; padding: 0 1; }
    Confirm Horizontal { height: auto; align: center middle; }
    """

    def __init__(self, question: str, detail: str = ""):
        super().__init__()
        self.question, self.detail = question, detail

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]{self.question}[/b]")
            if self.detail:
                yield Static(self.detail, classes="muted")
            with Horizontal():
                yield Button("Yes (y)", id="yes", compact=True)
                yield Static("  ")
                yield Button("No (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # Enter on the default does nothing harmful

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

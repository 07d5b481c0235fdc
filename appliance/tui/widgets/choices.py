"""A row of on/off choices that shows every option and its state in text, `[x] q4_k_m  [ ] q8_0`, wrapping to as
many lines as the width needs (a scrolling list hid the default below the fold, and marked state by colour only).

Left/Right (or Tab inside the row is left to the app) move the cursor, Space or Enter toggles, `selected` is the
list of chosen values in option order.
"""

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Checkbox


class Choices(Widget, can_focus=True):
    BINDINGS = [Binding("left", "move(-1)", show=False), Binding("right", "move(1)", show=False),
                Binding("space", "toggle", "Toggle", show=False), Binding("enter", "toggle", show=False)]
    DEFAULT_CSS = "Choices { height: auto; } Choices:focus { text-style: bold; }"
    cursor = reactive(0)

    class Changed(Message):
        def __init__(self, choices: "Choices"):
            super().__init__()
            self.choices = choices

    def __init__(self, options: list[str], selected: set[str], **kwargs):
        super().__init__(**kwargs)
        self.options = list(options)
        self.chosen = set(selected)

    @property
    def selected(self) -> list[str]:
        return [o for o in self.options if o in self.chosen]

    def render(self) -> Text:
        # Lines are broken here, between items, so a mark never ends up on another line than its option.
        width = max(self.size.width, 20)
        text, column = Text(), 0
        for i, option in enumerate(self.options):
            item = f"{'[x]' if option in self.chosen else '[ ]'} {option}"
            if column and column + len(item) > width:
                text.append("\n")
                column = 0
            text.append(item, style="reverse" if self.has_focus and i == self.cursor else "")
            text.append("  ")
            column += len(item) + 2
        return text

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.render().plain.splitlines()) or 1

    def action_move(self, step: int) -> None:
        self.cursor = (self.cursor + step) % len(self.options)

    def action_toggle(self) -> None:
        self.chosen ^= {self.options[self.cursor]}
        self.refresh()
        self.post_message(self.Changed(self))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


class Tick(Checkbox):
    """A Checkbox whose box is empty when off: Textual draws an X in both states and tells them apart by colour."""

    @property
    def _button(self):
        self.BUTTON_INNER = "X" if self.value else " "
        return super()._button

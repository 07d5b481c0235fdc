"""The one-line bar on top of every screen: the product name and the screens with their keys, current one lit."""

from rich.text import Text
from textual.widgets import Static

from ..screen_list import SCREENS


class NavBar(Static):
    def __init__(self, current: str):
        super().__init__(id="navbar")
        self.current = current

    def on_mount(self) -> None:
        text = Text(" Airlock ", style="bold reverse")
        for name, title, key, _ in SCREENS:
            style = "bold reverse" if name == self.current else ""
            text.append(" ")
            text.append(f"{key}", style="bold" if name != self.current else style)
            text.append(f" {title}" if name != self.current else f" {title} ", style=style)
        self._plain = text.plain
        self.update(text)

    def on_click(self, event) -> None:
        # A click on the bar picks the screen whose title is under the mouse.
        plain = getattr(self, "_plain", "")
        x = event.x
        for name, title, key, _ in SCREENS:
            start = plain.find(f"{key} {title}")
            if start <= x < start + len(key) + 1 + len(title) + 1:
                self.app.action_show(name)
                return

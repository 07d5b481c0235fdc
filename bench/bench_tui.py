"""First frame of `airlock tui`: process start -> Home screen drawn (80x24, headless), vs a bare Textual app.

    python -m bench tui          # goal: ours <= 1.0 s; the ratio shows what Airlock adds over Textual itself

Each run is a fresh interpreter (imports included), so the figure is what a person waits for after typing the
command. The peer is the smallest Textual app with a header, a text and a footer: the floor for any Textual UI.
"""

import subprocess
import sys

from .harness import compare

OURS = """
from appliance.tui.app import AirlockApp
class FirstFrame(AirlockApp):
    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(lambda: self.call_after_refresh(self.exit))
FirstFrame().run(headless=True, size=(80, 24))
"""

PEER = """
from textual.app import App
from textual.widgets import Footer, Header, Static
class Bare(App):
    def compose(self):
        yield Header(); yield Static("hello"); yield Footer()
    def on_mount(self):
        self.call_after_refresh(lambda: self.call_after_refresh(self.exit))
Bare().run(headless=True, size=(80, 24))
"""


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def run(quick: bool = False) -> dict:
    row = compare("tui first frame (process start -> Home drawn)", lambda: _run(OURS), lambda: _run(PEER),
                  peer_name="bare Textual app", rounds=3 if quick else 7)
    row["goal"] = "ours <= 1.0 s"
    return row


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))

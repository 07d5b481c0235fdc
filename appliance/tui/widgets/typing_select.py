"""A Select that takes typed keys: typing picks the first option starting with what was typed (as a native select
does), instead of the keys being dropped or, worse, reaching the app's screen-switching digit keys."""

import time

from textual import events
from textual.widgets import Select


class TypingSelect(Select):
    TYPE_PAUSE_S = 1.0  # keys typed within this of each other form one prefix ("q", "w" -> "qw")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._typed = ""
        self._typed_at = 0.0

    def on_key(self, event: events.Key) -> None:
        if self.expanded or not event.is_printable or not event.character:
            return
        now = time.monotonic()
        self._typed = (self._typed if now - self._typed_at < self.TYPE_PAUSE_S else "") + event.character.lower()
        self._typed_at = now
        match = next((value for prompt, value in self._options
                      if value is not Select.BLANK and str(prompt).lower().startswith(self._typed)), None)
        if match is not None:
            self.value = match
        event.stop()
        event.prevent_default()

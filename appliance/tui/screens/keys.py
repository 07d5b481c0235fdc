"""Keys: the API keys of `airlock serve`: create (the secret is shown once, here), revoke, rotate, and each key's
limits and use. The work is appliance.serve.keys, the same functions as `airlock keys api ...`."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from ..widgets.tables import replace_rows, selected_key
from .base import AirlockScreen


COLUMNS = ("name", "state", "rpm", "tpm", "quota", "used", "expires", "models")


def key_rows() -> list[tuple]:
    from ...serve import keys

    return [tuple(str(r[c]) for c in COLUMNS) for r in keys.overview()]


class KeysScreen(AirlockScreen):
    MODE = "keys"
    BINDINGS = [Binding("ctrl+r", "create", "Create key", priority=True), Binding("x", "revoke", "Revoke"),
                Binding("o", "rotate", "Rotate"), Binding("r", "refresh", "Refresh")]
    DEFAULT_CSS = """
    KeysScreen .keys-row { height: 3; }
    KeysScreen .keys-row Label { padding: 1 0 0 1; }
    KeysScreen #key-name { width: 1fr; }
    KeysScreen #key-rpm, KeysScreen #key-tpm { width: 9; }
    KeysScreen #key-quota { width: 12; }
    KeysScreen #key-expires { width: 13; }
    KeysScreen #key-models { width: 1fr; }
    KeysScreen #key-secret { height: 3; padding: 0 1; }
    KeysScreen #keys-table { height: 1fr; }
    """

    def __init__(self):
        super().__init__()
        self.confirming: tuple[str, str] | None = None

    def body(self) -> ComposeResult:
        with Horizontal(classes="keys-row"):
            yield Label("name")
            yield Input(placeholder="app1", id="key-name")
            yield Label("rpm")
            yield Input(id="key-rpm", type="integer")
            yield Label("tpm")
            yield Input(id="key-tpm", type="integer")
        with Horizontal(classes="keys-row"):
            yield Label("quota")
            yield Input(id="key-quota", type="integer", placeholder="tokens")
            yield Label("until")
            yield Input(id="key-expires", placeholder="YYYY-MM-DD")
            yield Label("models")
            yield Input(id="key-models", placeholder="all")
        yield Static("Ctrl+R creates a key (shown once). x revokes, o rotates the selected key (press twice).",
                     id="key-secret", classes="muted")
        yield DataTable(id="keys-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#keys-table", DataTable).add_columns(*COLUMNS)
        self.action_refresh()
        self.query_one("#key-name", Input).focus()

    def action_refresh(self) -> None:
        try:
            rows = key_rows()
        except Exception as exc:
            self.fail(exc, "reading keys")
            return
        replace_rows(self.query_one("#keys-table", DataTable), rows)

    def _number(self, widget_id: str) -> int | None:
        text = self.query_one(widget_id, Input).value.strip()
        return int(text) if text else None

    def action_create(self) -> None:
        from ...serve import keys

        name = self.query_one("#key-name", Input).value.strip()
        models = [m.strip() for m in self.query_one("#key-models", Input).value.split(",") if m.strip()]
        expires = self.query_one("#key-expires", Input).value.strip() or None
        try:
            secret = keys.create(name, rpm=self._number("#key-rpm"), tpm=self._number("#key-tpm"),
                                 quota_tokens=self._number("#key-quota"), expires=expires, models=models)
        except Exception as exc:
            self.fail(exc, "creating a key")
            return
        self._show_secret(name, secret)
        self.query_one("#key-name", Input).value = ""
        self.action_refresh()

    def _show_secret(self, name: str, secret: str) -> None:
        self.query_one("#key-secret", Static).update(
            f"[b]{secret}[/b]\nthe key for {name!r}: copy it now; it is not stored and will not be shown again")

    def _selected(self) -> str | None:
        return selected_key(self.query_one("#keys-table", DataTable))

    def _confirmed(self, action: str, name: str) -> bool:
        """The first press asks, the second (on the same key) does it."""
        if self.confirming == (action, name):
            self.confirming = None
            return True
        self.confirming = (action, name)
        self.notify(f"press {'x' if action == 'revoke' else 'o'} again to {action} {name!r}", timeout=6)
        return False

    def action_revoke(self) -> None:
        from ...serve import keys

        name = self._selected()
        if name and self._confirmed("revoke", name):
            keys.revoke(name)
            self.notify(f"revoked {name}: servers refuse it from their next request")
            self.action_refresh()

    def action_rotate(self) -> None:
        from ...serve import keys

        name = self._selected()
        if name and self._confirmed("rotate", name):
            secret = keys.rotate(name)
            self._show_secret(name, secret)
            self.action_refresh()


"""A modal file picker: a directory tree plus a path field (type a path, or walk the tree with the arrows).

    self.app.push_screen(FilePicker("Open a dataset", start=Path.cwd(), dirs=True), callback)

The callback receives the chosen Path, or None when the picker was closed with Esc.
"""

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Static


class FilePicker(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+o", "choose", "Choose", priority=True)]
    DEFAULT_CSS = """
    FilePicker { align: center middle; }
    FilePicker > Vertical { width: 78; height: 20; border: round $accent; background: $surface; }
    FilePicker DirectoryTree { height: 1fr; }
    FilePicker #picker-hint { color: $text-muted; height: 1; }
    """

    def __init__(self, title: str, start: Path | str | None = None, dirs: bool = False):
        super().__init__()
        self.title_text = title
        self.start = start_dir(start)
        self.dirs = dirs  # a directory is a valid choice too (a LLaMA-Factory data dir, a model dir)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]{self.title_text}[/b]")
            yield Input(str(self.start), id="picker-path", compact=True)
            yield DirectoryTree(self.start, id="picker-tree")
            hint = "type a path and Enter, or Tab to the tree and Enter on a file" + (
                "; Ctrl+O picks a folder" if self.dirs else "")
            yield Static(f"{hint}; Esc cancels", id="picker-hint")

    def on_mount(self) -> None:
        # The path field has focus first: a typed or pasted path goes straight in (Tab moves to the tree).
        field = self.query_one("#picker-path", Input)
        field.focus()
        field.cursor_position = len(field.value)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(Path(event.path))

    def on_tree_node_highlighted(self, event) -> None:
        # Only a highlight the user made (the tree has focus) fills the path field: the tree also highlights
        # while it loads, and that used to overwrite a path being typed or pasted into the field.
        tree = self.query_one(DirectoryTree)
        data = getattr(event.node, "data", None)
        if self.focused is tree and data is not None and getattr(data, "path", None) is not None:
            self.query_one("#picker-path", Input).value = str(data.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value).expanduser()
        if path.is_file() or (self.dirs and path.is_dir()):
            self.dismiss(path)
        elif path.is_dir():
            self.query_one(DirectoryTree).path = path
        else:
            self.notify(f"{path} does not exist", severity="warning")

    def action_choose(self) -> None:
        path = Path(self.query_one("#picker-path", Input).value).expanduser()
        if path.exists() and (path.is_file() or self.dirs):
            self.dismiss(path)
        else:
            self.notify("pick a file" if path.is_dir() else f"{path} does not exist", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)


def start_dir(value: Path | str | None) -> Path:
    """Where a picker for a field opens: the field's own directory (or its nearest existing parent, for a path
    still being typed), else the current directory."""
    text = str(value or "").strip()
    path = Path(text).expanduser() if text else Path.cwd()
    if not path.is_absolute():
        path = Path.cwd() / path
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path

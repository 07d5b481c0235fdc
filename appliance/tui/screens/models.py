"""Models: the registry of every base, adapter, merged model and GGUF, with its lineage and key figures.

Reads appliance.registry.artifacts() (latest record per id; `parents` is the lineage) and the catalog
(appliance.catalog.load_catalog) for base models not yet recorded. Enter shows an artifact's full lineage;
c chats with it, e exports it (hands it to those screens).
"""

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from .. import host
from .base import AirlockScreen

FIGURES = ("method", "steps", "type", "size_mb", "fidelity", "perplexity", "eval_loss", "quantization", "parameters")


def lineage(artifact_id: str, arts: dict[str, dict], depth: int = 0) -> list[str]:
    """An indented tree of where `artifact_id` came from (parents first-level, their parents below)."""
    art = arts.get(artifact_id)
    lines = [("  " * depth) + ("<- " if depth else "") + artifact_id + (f"  [{art['kind']}]" if art else "")]
    if art and depth < 8:
        for parent in art.get("parents", []):
            lines += lineage(parent, arts, depth + 1)
    return lines


def key_figures(facts: dict) -> str:
    shown = [f"{k}={facts[k]}" for k in FIGURES if k in facts]
    shown += [f"{k}={v}" for k, v in facts.items() if k not in FIGURES and isinstance(v, (int, float, str))
              and len(str(v)) < 24][: max(0, 4 - len(shown))]
    return " ".join(shown)


class ModelsScreen(AirlockScreen):
    MODE = "models"
    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("c", "chat", "Chat with it"),
                Binding("e", "export", "Export it")]
    DEFAULT_CSS = """
    ModelsScreen #models-table { height: 1fr; max-height: 100%; }
    ModelsScreen #model-detail { height: 8; border-top: solid $panel; padding: 0 1; }
    """

    def __init__(self):
        super().__init__()
        self.arts: dict[str, dict] = {}

    def body(self) -> ComposeResult:
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        yield Static("select a model to see its lineage", id="model-detail")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("kind", "id", "from", "figures")
        self.query_one(DataTable).focus()
        self.action_refresh()

    def action_refresh(self) -> None:
        self.gather()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def gather(self) -> None:
        from ...catalog import load_catalog
        from ...registry import artifacts

        try:
            arts = {k: v for k, v in artifacts().items() if v.get("kind") not in ("eval", "dataset")}
            installed = set(host.installed_models())
            for card in load_catalog().values():
                if card.local_repo_id not in arts:
                    arts[card.local_repo_id] = {
                        "kind": "base", "id": card.local_repo_id, "parents": [], "path": None,
                        "facts": {"parameters": card.parameters, "license": card.license,
                                  "installed": "yes" if card.local_repo_id in installed else "no",
                                  "gated": "yes" if card.gated else "no",
                                  "tool_calls": "yes" if card.tool_calls else "no",
                                  "memory_gb(lora)": card.memory_gb.lora,
                                  "bundle": f"models: [{{id: {card.id}}}]" + (" + hub.token_file" if card.gated
                                                                               else "")}}
        except Exception as exc:
            self.fail_from_thread(exc, "reading the registry")
            return
        self.app.call_from_thread(self._show, arts)

    def _show(self, arts: dict[str, dict]) -> None:
        self.arts = arts
        order = {"base": 0, "model": 1, "adapter": 2, "merged": 3, "gguf": 4, "bundle": 5}
        table = self.query_one(DataTable)
        table.clear()
        # Catalog entries not installed here go last: what exists on this host comes first in a small terminal.
        absent = lambda art: art.get("facts", {}).get("installed") == "no"  # noqa: E731
        for art_id, art in sorted(arts.items(), key=lambda kv: (absent(kv[1]), order.get(kv[1].get("kind"), 9),
                                                                 kv[0])):
            parents = ", ".join(p for p in art.get("parents", []) if not p.startswith("dataset:"))
            table.add_row(art.get("kind", "?"), art_id, parents or "-", key_figures(art.get("facts", {})),
                          key=art_id)
        if not arts:
            self.query_one("#model-detail", Static).update("the registry is empty: train, merge or export a model")

    def _selected(self) -> dict | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.arts.get(key)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        art = self.arts.get(event.row_key.value) if event.row_key else None
        if art is None:
            return
        facts = ", ".join(f"{k}: {v}" for k, v in art.get("facts", {}).items())
        text = "\n".join(lineage(art["id"], self.arts)) + f"\npath: {art.get('path') or '-'}\n{facts}"
        self.query_one("#model-detail", Static).update(text.replace("[", "\\["))

    def action_chat(self) -> None:
        art = self._selected()
        if art:
            self.app.action_show("chat", model=art.get("path") or art["id"])

    def action_export(self) -> None:
        art = self._selected()
        if art:
            self.app.action_show("export", source=art.get("path") or art["id"])

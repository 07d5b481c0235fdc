"""Export: merge (when the source is an adapter), convert to GGUF, quantize, write the Ollama Modelfile, and show
the fidelity figures (greedy answers vs the HF model, perplexity vs the 16-bit file) when it is done.

Library call: appliance.export.pipeline.export_gguf(source, types, out=..., system=..., fidelity=..., log=...),
the function behind `airlock export gguf`. It runs in a worker thread (the UI never blocks); its log lines stream
into the log pane. Leaving the TUI while an export runs stops it (the CLI `airlock export gguf` is the way to run
one unattended); nothing half-written is left, the pipeline stages every file.
"""

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, Log, SelectionList, Static

from ..widgets.form import row
from .base import AirlockScreen

OFFERED = ("f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k")


def fidelity_lines(fid: dict) -> list[str]:
    """One line per GGUF type: greedy answers identical to HF, perplexity and its ratio to the reference."""
    lines = []
    prompts = len(fid.get("prompts") or [])
    for qtype, entry in (fid.get("types") or {}).items():
        parts = []
        if "identical_count" in entry:
            parts.append(f"answers identical to HF {entry['identical_count']}/{prompts}")
        if entry.get("perplexity") is not None:
            ratio = entry.get(f"ppl_ratio_vs_{fid.get('reference')}")
            parts.append(f"perplexity {entry['perplexity']:.3f}" + (f" ({ratio:.3f}x)" if ratio else ""))
        lines.append(f"{qtype:<8} " + "; ".join(parts))
    return lines


class ExportScreen(AirlockScreen):
    MODE = "export"
    BINDINGS = [Binding("ctrl+r", "export", "Export", priority=True),
                Binding("ctrl+b", "browse", "Browse source", priority=True)]
    DEFAULT_CSS = """
    ExportScreen #export-form { height: auto; padding: 0 1; }
    ExportScreen .row { height: 1; }
    ExportScreen .row Label { width: 14; color: $text-muted; }
    ExportScreen .row Input { width: 1fr; }
    ExportScreen #types { height: 5; border: none; }
    ExportScreen #export-state { height: 1; padding: 0 1; }
    ExportScreen #export-log { height: 1fr; border-top: solid $panel; }
    """

    def __init__(self):
        super().__init__()
        self.running = False
        self.result = None

    def body(self) -> ComposeResult:
        with Vertical(id="export-form"):
            yield row("source",
                      Input("", id="source", compact=True, placeholder="job id, adapter/model dir or repo id (Ctrl+B)"))
            yield row("output dir",
                      Input("", id="out", compact=True, placeholder="empty = <job>/gguf or <home>/exports/<name>"))
            yield row("system prompt", Input("", id="system", compact=True, placeholder="for the Modelfile (optional)"))
            yield row("fidelity",
                      Checkbox("measure answers and perplexity after export", True, id="fidelity", compact=True))
            yield SelectionList(*((t, t, t == "q4_k_m") for t in OFFERED), id="types")
        yield Static("pick a source and the GGUF types, then Ctrl+R", id="export-state")
        yield Log(id="export-log", max_lines=2000)

    def on_mount(self) -> None:
        self.query_one("#source").focus()

    def receive_handoff(self, values: dict) -> None:
        if values.get("source"):
            self.query_one("#source", Input).value = values["source"]

    def action_browse(self) -> None:
        from ..widgets.file_picker import FilePicker

        def chosen(path):
            if path is not None:
                self.query_one("#source", Input).value = str(path)

        self.app.push_screen(FilePicker("Export source: a job dir, adapter/ or model/ directory", dirs=True), chosen)

    def action_export(self) -> None:
        if self.running:
            self.notify("an export is already running", severity="warning")
            return
        source = self.query_one("#source", Input).value.strip()
        types = list(self.query_one("#types", SelectionList).selected)
        if not source or not types:
            self.notify("give a source and pick at least one GGUF type", severity="warning")
            return
        out = self.query_one("#out", Input).value.strip() or None
        system = self.query_one("#system", Input).value.strip() or None
        fidelity = self.query_one("#fidelity", Checkbox).value
        self.running = True
        self.result = None
        self.query_one("#export-log", Log).clear()
        self.query_one("#export-state", Static).update(f"exporting {source} -> {', '.join(types)} ...")
        self.run_export(source, types, out, system, fidelity)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def run_export(self, source: str, types: list[str], out, system, fidelity: bool) -> None:
        from pathlib import Path

        from ...export.pipeline import export_gguf

        logw = self.query_one("#export-log", Log)

        def log(line: str) -> None:
            self.app.call_from_thread(logw.write_line, str(line))

        try:
            result = export_gguf(source, types, out=Path(out) if out else None, system=system, fidelity=fidelity,
                                 log=log)
        except Exception as exc:
            self.app.call_from_thread(self._done, None)
            self.fail_from_thread(exc, "exporting")
            return
        self.app.call_from_thread(self._done, result)

    def _done(self, result) -> None:
        self.running = False
        self.result = result
        state = self.query_one("#export-state", Static)
        if result is None:
            state.update("[b]export failed[/b] (see the notification and the log above)")
            return
        logw = self.query_one("#export-log", Log)
        logw.write_line("")
        logw.write_line(f"written to {result.out_dir}:")
        for qtype, path in result.files.items():
            logw.write_line(f"  {qtype:<8} {path.name}")
        if result.fidelity:
            logw.write_line("fidelity:")
            for line in fidelity_lines(result.fidelity):
                logw.write_line("  " + line)
        state.update(f"[b]done[/b]: {len(result.files)} GGUF file(s) in {result.out_dir}".replace("[/b]: ", "[/b]: "))

    def palette_commands(self):
        return [("Export to GGUF", "merge, convert, quantize, Modelfile, fidelity (Ctrl+R)", self.action_export)]

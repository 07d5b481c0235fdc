"""Export: merge (when the source is an adapter), convert to GGUF, quantize, write the Ollama Modelfile, and show
the fidelity figures (greedy answers vs the HF model, perplexity vs the 16-bit file) when it is done.

Library call: appliance.export.pipeline.export_gguf(source, types, out=..., system=..., fidelity=..., log=...),
the function behind `airlock export gguf`, run as a detached job (appliance.export.job, as `airlock export gguf
--detach` does): leaving the TUI does not stop it, 4 Jobs stops it, and its log lines stream into the log pane.
Nothing half-written is left: the pipeline stages every file.
"""

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, Log, Static

from ... import sources
from ...export.quantize import FTYPES
from ..widgets.choices import Choices, Tick
from ..widgets.form import row
from .base import AirlockScreen

OFFERED = tuple(FTYPES)  # every type the exporter knows, all on screen at once


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
    ExportScreen #types { margin: 0 0 0 15; }
    ExportScreen #export-state { height: 1; padding: 0 1; }
    ExportScreen #export-log { height: 1fr; border-top: solid $panel; }
    """

    def __init__(self):
        super().__init__()
        self.job = None  # the export job this screen follows
        self.log_pos = 0
        self.timer = None
        self.result = None  # result.json of the last completed export

    def body(self) -> ComposeResult:
        with Vertical(id="export-form"):
            yield row("source",
                      Input("", id="source", compact=True, placeholder="job id, adapter/model dir or repo id (Ctrl+B)"))
            yield row("output dir",
                      Input("", id="out", compact=True, placeholder="empty = <job>/gguf or <home>/exports/<name>"))
            yield row("system prompt", Input("", id="system", compact=True, placeholder="for the Modelfile (optional)"))
            yield row("fidelity",
                      Tick("measure answers and perplexity after export", True, id="fidelity", compact=True))
            yield Choices(list(OFFERED), {"q4_k_m"}, id="types")
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

        self.app.push_screen(FilePicker("Export source: a job dir, adapter/ or model/ directory",
                                        self.query_one("#source", Input).value, dirs=True), chosen)

    def action_export(self) -> None:
        if self.job is not None and self.job.status()["state"] in ("queued", "running", "stopping"):
            self.notify(f"export {self.job.id} is still running (4 Jobs shows it)", severity="warning")
            return
        source = self.query_one("#source", Input).value.strip()
        types = self.query_one("#types", Choices).selected
        if not source or not types:
            self.notify("give a source and pick at least one GGUF type", severity="warning")
            return
        out = self.query_one("#out", Input).value.strip() or None
        system = self.query_one("#system", Input).value.strip() or None
        fidelity = self.query_one("#fidelity", Checkbox).value
        self.result = None
        self.query_one("#export-log", Log).clear()
        self.start_export(source, types, out, system, fidelity)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def start_export(self, source: str, types: list[str], out, system, fidelity: bool) -> None:
        """The export runs as a detached job (appliance.export.job): leaving the TUI does not stop it."""
        from ...export.job import start

        try:
            job = start(source, ["airlock", "tui"], types=types, out=out, system=system, fidelity=fidelity)
        except Exception as exc:
            self.fail_from_thread(exc, "starting the export")
            return
        self.app.call_from_thread(self._follow, job)

    def _follow(self, job) -> None:
        self.job, self.log_pos = job, 0
        self.query_one("#export-state", Static).update(
            f"exporting as job {job.id} (it keeps running if you leave; 4 Jobs can stop it) ...")
        if self.timer is None:
            self.timer = self.set_interval(0.5, self._poll)

    def _poll(self) -> None:
        """New log lines into the log pane; the summary once the job has ended."""
        if self.job is None:
            return
        try:
            with open(self.job.log_path, "rb") as fh:
                fh.seek(self.log_pos)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        self.log_pos += len(chunk)
        logw = self.query_one("#export-log", Log)
        for line in chunk.decode("utf-8", "replace").splitlines():
            logw.write_line(line)
        status = self.job.status()
        if status["state"] not in ("queued", "running", "stopping"):
            job, self.job = self.job, None
            self._done(job, status)

    def _done(self, job, status: dict) -> None:
        import json

        state = self.query_one("#export-state", Static)
        result_file = job.path / sources.RESULT
        if status["state"] != "completed" or not result_file.is_file():
            state.update(f"[b]export {status['state']}[/b]: {status.get('message', '')}".replace("[/b]: ", "[/b]: "))
            return
        self.result = json.loads(result_file.read_text(encoding="utf-8"))
        logw = self.query_one("#export-log", Log)
        logw.write_line("")
        logw.write_line(f"written to {self.result['out_dir']}:")
        for qtype, path in self.result["files"].items():
            logw.write_line(f"  {qtype:<8} {Path(path).name}")
        if self.result.get("fidelity"):
            logw.write_line("fidelity:")
            for line in fidelity_lines(self.result["fidelity"]):
                logw.write_line("  " + line)
        state.update(f"[b]done[/b]: {len(self.result['files'])} GGUF file(s) in {self.result['out_dir']}")

    def palette_commands(self):
        return [("Export to GGUF", "merge, convert, quantize, Modelfile, fidelity (Ctrl+R)", self.action_export)]

"""Jobs: every job on disk; for the selected one a live loss chart, progress, ETA, tokens/s and the log tail.

Reads contract 2 through appliance.jobs (list_jobs, Job.status, Job.metrics, Job.log_tail), polling every second,
so a job started by the CLI, by another TUI or before an SSH drop shows the same way. Actions call the same
functions as the CLI: stop -> appliance.jobs.stop (SIGTERM, the runner checkpoints), resume ->
appliance.train.resume + appliance.jobs.start_detached, outputs -> the job's adapter/ or model/ directory.
"""

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Log, ProgressBar, Static

from ... import sources
from ..jobview import fmt_seconds, job_row, last_metric, progress_text
from ..widgets.loss_chart import LossChart
from .base import AirlockScreen


class JobsScreen(AirlockScreen):
    MODE = "jobs"
    BINDINGS = [
        Binding("s", "stop", "Stop"),
        Binding("R", "resume", "Resume"),
        Binding("o", "outputs", "Outputs"),
        Binding("r", "refresh", "Refresh"),
    ]
    DEFAULT_CSS = """
    JobsScreen #jobs-table { height: 6; max-height: 6; }
    JobsScreen #job-status { height: 2; padding: 0 1; }
    JobsScreen #job-progress { padding: 0 1; height: 1; }
    JobsScreen #job-log { height: 1fr; min-height: 3; border-top: solid $panel; }
    """

    def __init__(self):
        super().__init__()
        self.selected: str | None = None
        self._log_seen = ""

    def body(self) -> ComposeResult:
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="job-detail"):
            yield Static("no job selected", id="job-status")
            yield ProgressBar(id="job-progress", show_eta=False)
            yield LossChart(id="loss-chart")
            yield Log(id="job-log", max_lines=400)

    def on_mount(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        table.add_columns("job", "kind", "state", "step", "created")
        if self.app.focus_job:
            self.selected = self.app.focus_job
        self.action_refresh()
        self.set_interval(1.0, self.action_refresh)
        table.focus()

    def receive_handoff(self, values: dict) -> None:
        if values.get("job"):
            self.selected = values["job"]
            self._log_seen = ""
            self.action_refresh()

    # -- polling -----------------------------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.poll()

    @work(thread=True, exclusive=True, group="jobs-poll", exit_on_error=False)
    def poll(self) -> None:
        from ...jobs import list_jobs

        try:
            jobs = list_jobs()
            rows = [job_row(j) for j in reversed(jobs)]  # newest first
            detail = None
            selected = self.selected or (rows[0][0] if rows else None)
            job = next((j for j in jobs if j.id == selected), None)
            if job is not None:
                detail = (job.id, job.status(), job.metrics(), job.log_tail(200))
        except Exception as exc:
            self.fail_from_thread(exc, "reading jobs")
            return
        self.app.call_from_thread(self._show, rows, detail)

    def _show(self, rows: list[tuple], detail) -> None:
        table = self.query_one("#jobs-table", DataTable)
        current = [str(k.value) for k in table.rows]
        if current != [r[0] for r in rows]:
            table.clear()
            for row in rows:
                table.add_row(*row, key=row[0])
        else:
            for row in rows:
                for col, value in zip(table.columns, row):
                    table.update_cell(row[0], col, value)
        if detail is None:
            return
        job_id, status, records, log_text = detail
        if self.selected is None:
            self.selected = job_id
        index = next((i for i, r in enumerate(rows) if r[0] == job_id), None)
        if index is not None and table.cursor_row != index and not table.has_focus:
            table.move_cursor(row=index)
        self._show_detail(job_id, status, records, log_text)

    def _show_detail(self, job_id: str, status: dict, records: list[dict], log_text: str) -> None:
        loss = last_metric(records, "loss")
        eval_loss = last_metric(records, "eval_loss")
        tps = last_metric(records, "tokens_per_s")
        eta = last_metric(records, "eta_s") if status.get("state") == "running" else None
        line1 = f"{job_id}  [b]{status.get('state')}[/b]  step {progress_text(status)}"
        figures = [f"loss {loss:.4f}" if loss is not None else "", f"eval {eval_loss:.4f}" if eval_loss is not None
                   else "", f"{tps:.0f} tok/s" if tps else "", f"ETA {fmt_seconds(eta)}" if eta is not None else ""]
        line1 += "  " + "  ".join(f for f in figures if f)
        message = (status.get("message") or "").replace("[", "\\[")
        self.query_one("#job-status", Static).update(f"{line1}\n[dim]{message}[/dim]")
        bar = self.query_one("#job-progress", ProgressBar)
        bar.update(total=status.get("max_steps") or None, progress=status.get("step") or 0)
        self.query_one("#loss-chart", LossChart).show(records)
        logw = self.query_one("#job-log", Log)
        if log_text != self._log_seen:
            logw.clear()
            logw.write(log_text)
            self._log_seen = log_text

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.has_focus and event.row_key is not None and event.row_key.value != self.selected:
            self.selected = event.row_key.value
            self._log_seen = ""
            self.action_refresh()

    # -- actions -------------------------------------------------------------------------------------------------
    def _job(self):
        from ...jobs import find_job

        if not self.selected:
            self.notify("no job selected", severity="warning")
            return None
        try:
            return find_job(self.selected)
        except Exception as exc:
            self.fail(exc, "finding the job")
            return None

    def action_stop(self) -> None:
        from ..widgets.confirm import Confirm

        job = self._job()
        if job is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"stopping {job.id} (it saves a checkpoint first) ...")
                self.stop_job(job)

        self.app.push_screen(Confirm(f"Stop {job.id}?", "A training job saves a checkpoint first and can be "
                                     "resumed (R)."), answered)

    @work(thread=True, group="jobs-action", exit_on_error=False)
    def stop_job(self, job) -> None:
        from ...jobs import stop

        try:
            status = stop(job)
        except Exception as exc:
            self.fail_from_thread(exc, f"stopping {job.id}")
            return
        self.app.call_from_thread(self.notify, f"{job.id}: {status.get('state')}  {status.get('message', '')}")

    def action_resume(self) -> None:
        from ...jobs import start_detached
        from ...train import resume

        job = self._job()
        if job is None:
            return
        try:
            job = resume(job.id)
            pid = start_detached(job)
        except Exception as exc:
            self.fail(exc, f"resuming {job.id}")
            return
        self.notify(f"resumed {job.id} (pid {pid})")
        self.action_refresh()

    def action_outputs(self) -> None:
        job = self._job()
        if job is not None:
            self.app.push_screen(OutputsScreen(job.path))

    def palette_commands(self):
        return [("Stop the selected job", "SIGTERM; the job saves a checkpoint first", self.action_stop),
                ("Resume the selected job", "continue a stopped or crashed training job", self.action_resume),
                ("Open the selected job's outputs", "adapter/ or model/ and what to do with it",
                 self.action_outputs)]


class OutputsScreen(ModalScreen):
    """A job's outputs: what it wrote, and where to take it next (chat with it, export it)."""

    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("c", "chat", "Chat"), Binding("e", "export", "Export")]
    DEFAULT_CSS = """
    OutputsScreen { align: center middle; }
    OutputsScreen > Vertical { width: 76; height: auto; max-height: 20; border: round $accent; background: $surface; }
    OutputsScreen #outputs-text { height: auto; max-height: 14; }
    OutputsScreen Horizontal { height: 3; }
    """

    def __init__(self, job_path: Path):
        super().__init__()
        self.job_path = Path(job_path)
        self.output = next(iter(sources.outputs_of(self.job_path)), None)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._describe(), id="outputs-text")
            with Horizontal():
                yield Button("Chat with it (c)", id="chat", disabled=self.output is None)
                yield Button("Export it (e)", id="export", disabled=self.output is None)
                yield Button("Close (Esc)", id="close")

    def _describe(self) -> str:
        lines = [f"[b]{self.job_path.name}[/b]", f"job directory: {self.job_path}"]
        if self.output is None:
            lines.append("no outputs yet (a running or stopped job has only checkpoints/)")
        else:
            lines.append(f"output: {self.output}")
            for f in sorted(self.output.iterdir())[:10]:
                size = f.stat().st_size if f.is_file() else 0
                lines.append(f"  {f.name}  {size / 1e6:.1f} MB" if size > 1e5 else f"  {f.name}")
        ckpt = sources.checkpoints_dir(self.job_path)
        if ckpt.is_dir():
            lines.append("checkpoints: " + ", ".join(sorted(p.name for p in ckpt.iterdir() if p.is_dir())) or "none")
        return "\n".join(l.replace("[", "\\[") if not l.startswith("[b]") else l for l in lines)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"chat": self.action_chat, "export": self.action_export}.get(event.button.id, self.dismiss)()

    def action_chat(self) -> None:
        if self.output is not None:
            self.dismiss()
            self.app.action_show("chat", model=str(self.output))

    def action_export(self) -> None:
        if self.output is not None:
            self.dismiss()
            self.app.action_show("export", source=str(self.output))

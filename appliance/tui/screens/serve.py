"""Serve: start and stop `airlock serve` jobs, and watch each server's requests/s, tokens/s, errors and per-key use.

Start calls appliance.serve.server.start_job (the same function as `airlock serve --detach`: the same safety
checks, the same detached job); stop calls appliance.jobs.stop. The figures are the server job's running totals
(its metrics.jsonl, written every 5 s), so a server started from the CLI shows here too.
"""

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from ..widgets.tables import replace_rows, selected_key
from .base import AirlockScreen


def server_rows(jobs) -> list[tuple]:
    """(job, state, url, requests, req/s, tok/s, errors) per serve job, newest first."""
    rows = []
    for job in reversed(jobs):
        status, metrics = job.status(), job.metrics()
        last = metrics[-1] if metrics else {}
        rows.append((job.id, status.get("state", "?"), status.get("url", "-"), str(last.get("requests", 0)),
                     f"{last.get('requests_per_s', 0):.2f}", f"{last.get('tokens_per_s', 0):.1f}",
                     str(last.get("errors", 0))))
    return rows


class ServeScreen(AirlockScreen):
    MODE = "serve"
    BINDINGS = [Binding("ctrl+r", "start", "Start server", priority=True), Binding("s", "stop", "Stop"),
                Binding("r", "refresh", "Refresh")]
    DEFAULT_CSS = """
    ServeScreen .serve-row { height: 3; }
    ServeScreen .serve-row Label { width: 8; padding: 1 0 0 1; }
    ServeScreen #serve-model { width: 1fr; }
    ServeScreen #serve-host { width: 17; }
    ServeScreen #serve-port { width: 9; }
    ServeScreen #serve-parallel { width: 7; }
    ServeScreen #serve-hint { height: 2; padding: 0 1; }
    ServeScreen #servers { height: 6; max-height: 6; }
    ServeScreen #usage { height: 1fr; }
    """

    def body(self) -> ComposeResult:
        with Horizontal(classes="serve-row"):
            yield Label("model")
            yield Input(placeholder="a GGUF export: id (see Models) or path", id="serve-model")
        with Horizontal(classes="serve-row"):
            yield Label("host")
            yield Input("127.0.0.1", id="serve-host")
            yield Label("port")
            yield Input("8000", id="serve-port", type="integer")
            yield Label("slots")
            yield Input("4", id="serve-parallel", type="integer")
        yield Static("Ctrl+R starts a server job (another address than 127.0.0.1 needs an API key: 9 Keys); "
                     "s stops the selected one.", id="serve-hint", classes="muted")
        yield DataTable(id="servers", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="usage", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#servers", DataTable).add_columns("job", "state", "url", "requests", "req/s", "tok/s",
                                                          "errors")
        self.query_one("#usage", DataTable).add_columns("key", "requests", "tokens", "errors")
        self.action_refresh()
        self.set_interval(2.0, self.action_refresh)
        self.query_one("#serve-model", Input).focus()

    def receive_handoff(self, values: dict) -> None:
        if values.get("model"):
            self.query_one("#serve-model", Input).value = str(values["model"])

    def action_refresh(self) -> None:
        self.poll()

    @work(thread=True, exclusive=True, group="serve-poll", exit_on_error=False)
    def poll(self) -> None:
        from ...jobs import list_jobs

        try:
            jobs = list_jobs("serve")
            rows = server_rows(jobs)
            selected = self._selected() or (rows[0][0] if rows else None)
            job = next((j for j in jobs if j.id == selected), None)
            metrics = job.metrics() if job else []
            per_key = (metrics[-1].get("per_key") or {}) if metrics else {}
        except Exception as exc:
            self.fail_from_thread(exc, "reading servers")
            return
        self.app.call_from_thread(self._show, rows, per_key)

    def _selected(self) -> str | None:
        return selected_key(self.query_one("#servers", DataTable))

    def _show(self, rows: list[tuple], per_key: dict) -> None:
        replace_rows(self.query_one("#servers", DataTable), rows)
        usage = self.query_one("#usage", DataTable)
        usage.clear()
        for name, figures in sorted(per_key.items()):
            usage.add_row(name, str(figures["requests"]), str(figures["tokens"]), str(figures["errors"]))

    def action_start(self) -> None:
        from ...serve.server import ServeConfig

        model = self.query_one("#serve-model", Input).value.strip()
        try:
            port = int(self.query_one("#serve-port", Input).value or 8000)
            parallel = int(self.query_one("#serve-parallel", Input).value or 4)
        except ValueError:
            self.notify("port and slots are whole numbers", severity="error")
            return
        if not model:
            self.notify("give the model to serve (a GGUF id from Models, or a path)", severity="error")
            return
        cfg = ServeConfig(models=[model], host=self.query_one("#serve-host", Input).value.strip() or "127.0.0.1",
                          port=port, parallel=parallel)
        self.start(cfg)

    @work(thread=True, group="serve-action", exit_on_error=False)
    def start(self, cfg) -> None:
        from ...serve.server import start_job

        try:
            job = start_job(cfg, ["airlock", "serve", *cfg.models, "--host", cfg.host, "--port", str(cfg.port),
                                  "--parallel", str(cfg.parallel), "--detach"])
        except Exception as exc:
            self.fail_from_thread(exc, "starting the server")
            return
        self.app.call_from_thread(self.notify, f"server job {job.id} starting on {cfg.host}:{cfg.port}")
        self.app.call_from_thread(self.action_refresh)

    def action_stop(self) -> None:
        selected = self._selected()
        if selected:
            self.stop(selected)

    @work(thread=True, group="serve-action", exit_on_error=False)
    def stop(self, job_id: str) -> None:
        from ...jobs import find_job, stop

        try:
            status = stop(find_job(job_id), grace_s=45)
        except Exception as exc:
            self.fail_from_thread(exc, f"stopping {job_id}")
            return
        self.app.call_from_thread(self.notify, f"{job_id}: {status.get('state')}")
        self.app.call_from_thread(self.action_refresh)

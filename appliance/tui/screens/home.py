"""Home: what is on this host at a glance: models and bundles, GPUs (or CPU/RAM), disk free, running/recent jobs.

Reads: appliance.catalog.load_catalog, appliance.registry.artifacts (kind "bundle"), the local HF cache,
appliance.jobs.list_jobs / Job.status, and host facts (NVML when present, else psutil). Refreshes every 2 s.
Enter on a job opens it on the Jobs screen.
"""

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from .. import host
from ..jobview import job_row
from ..widgets.tables import replace_rows
from .base import AirlockScreen


class HomeScreen(AirlockScreen):
    MODE = "home"
    BINDINGS = [Binding("r", "refresh", "Refresh")]
    DEFAULT_CSS = """
    HomeScreen #host { height: auto; padding: 0 1; }
    HomeScreen DataTable { max-height: 8; }
    """

    def body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Host", classes="section-title")
            yield Static("reading the host ...", id="host")
            yield Static("Jobs (running first, then recent)", classes="section-title")
            yield DataTable(id="home-jobs", cursor_type="row", zebra_stripes=True)
            yield Static("Models and bundles", classes="section-title")
            yield DataTable(id="home-models", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#home-jobs", DataTable).add_columns("job", "kind", "state", "step", "created")
        self.query_one("#home-models", DataTable).add_columns("model / bundle", "kind", "installed", "size")
        self.action_refresh()
        self.set_interval(2.0, self.action_refresh)

    def action_refresh(self) -> None:
        self.gather()

    @work(thread=True, exclusive=True, group="home-refresh", exit_on_error=False)
    def gather(self) -> None:
        """Collect everything off the UI thread (NVML and disk calls can stall), then post it back."""
        try:
            facts = self._host_text()
            jobs_rows = self._job_rows()
            model_rows = self._model_rows()
        except Exception as exc:  # shown once, the timer keeps trying
            self.fail_from_thread(exc, "reading the host state")
            return
        self.app.call_from_thread(self._show, facts, jobs_rows, model_rows)

    def _host_text(self) -> str:
        from ...paths import hf_cache, jobs_dir

        lines = []
        gpus = host.gpus()
        for g in gpus:
            util = f", {g.utilization}% busy" if g.utilization is not None else ""
            lines.append(f"GPU {g.index} {g.name}: {g.used_gb:.1f}/{g.total_gb:.1f} GiB{util}")
        cpu = host.cpu()
        prefix = "" if gpus else "no GPU (NVML not available); "
        lines.append(f"{prefix}CPU {cpu.cores} cores {cpu.percent:.0f}% busy, "
                     f"RAM {cpu.ram_used_gb:.1f}/{cpu.ram_total_gb:.1f} GiB")
        seen = set()
        for label, path in (("models", hf_cache()), ("jobs", jobs_dir())):
            free, total = host.disk_free(path)
            key = (round(free, 1), round(total, 1))
            lines.append(f"disk for {label} ({path}): {free:.1f} GiB free of {total:.1f}"
                         + (" (same disk)" if key in seen else ""))
            seen.add(key)
        return "\n".join(lines)

    def _job_rows(self) -> list[tuple]:
        from ...jobs import ACTIVE, list_jobs

        rows = [job_row(j) for j in list_jobs()]
        running = [r for r in rows if r[2] in ACTIVE]
        recent = [r for r in reversed(rows) if r[2] not in ACTIVE][:8]
        return running + recent

    def _model_rows(self) -> list[tuple]:
        from ...catalog import load_catalog
        from ...registry import artifacts

        installed = set(host.installed_models())
        rows = []
        for card in load_catalog().values():
            rows.append((card.local_repo_id, f"catalog {card.kind}",
                         "yes" if card.local_repo_id in installed else "no", card.parameters))
        listed = {r[0] for r in rows}
        for repo in installed - listed:
            rows.append((repo, "HF cache", "yes", ""))
        for art in artifacts().values():
            if art.get("kind") == "bundle":
                rows.append((art["id"], "bundle", "yes", str(art.get("facts", {}).get("size", ""))))
        # What is here first: at 80x24 only a few rows show, and they should not be catalog entries not installed.
        return sorted(rows, key=lambda r: r[2] != "yes")

    def _show(self, facts: str, job_rows: list[tuple], model_rows: list[tuple]) -> None:
        self.query_one("#host", Static).update(facts)
        for table_id, rows in (("#home-jobs", job_rows), ("#home-models", model_rows)):
            replace_rows(self.query_one(table_id, DataTable), rows)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "home-jobs":
            self.app.action_show("jobs", job=event.row_key.value)

"""Data: open a dataset file or a LLaMA-Factory data dir, see its detected format, every problem as a navigable
list (file, record, field, message, fix), statistics with a token-length histogram, and a rendered sample with the
trained tokens set apart from the masked ones.

Library calls: appliance.data.check.check (the `airlock data check` report) when this build has it; otherwise
appliance.data.scan (format + every problem, never raising) for the list and the statistics, and, with the model's
tokenizer, appliance.data.render (token lengths) and appliance.data.segments (trained vs masked text) for the
histogram and the sample. All of it runs in a worker thread.
"""

from collections import Counter
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Label, Select, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from ..widgets.form import row
from ..widgets.typing_select import TypingSelect
from .base import AirlockScreen

MAX_TOKENIZED = 2000  # token statistics come from at most this many conversations (the count says so)


def histogram_bins(lengths: list[int], bins: int = 12) -> list[tuple[int, int]]:
    """(bin start, count) pairs spanning min..max of `lengths`."""
    if not lengths:
        return []
    low, high = min(lengths), max(lengths)
    width = max(1, -(-(high - low + 1) // bins))
    counts = Counter((n - low) // width for n in lengths)
    return [(low + i * width, counts.get(i, 0)) for i in range((high - low) // width + 1)]


class DataScreen(AirlockScreen):
    MODE = "data"
    BINDINGS = [Binding("ctrl+r", "check", "Check", priority=True),
                Binding("ctrl+b", "browse", "Browse", priority=True),
                Binding("ctrl+t", "train", "Train on it", priority=True),
                Binding("]", "sample(1)", "Next sample"), Binding("[", "sample(-1)", "Prev sample")]
    DEFAULT_CSS = """
    DataScreen #data-form { height: auto; padding: 0 1; }
    DataScreen .row { height: 1; }
    DataScreen .row Label { width: 9; color: $text-muted; }
    DataScreen .row Input { width: 1fr; }
    DataScreen #train_on { width: 18; }
    DataScreen #data-summary { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    DataScreen TabbedContent { height: 1fr; }
    DataScreen #problems { height: 1fr; max-height: 100%; }
    DataScreen #problem-detail { height: 3; color: $text-muted; }
    DataScreen #histogram { height: 1fr; min-height: 6; }
    DataScreen #stats { height: auto; }
    """

    def __init__(self):
        super().__init__()
        self.problems = []
        self.samples = []  # (source, [(text, trained), ...])
        self.sample_index = 0

    def body(self) -> ComposeResult:
        with Vertical(id="data-form"):
            yield row("data",
                      Input("", id="data-path", compact=True, placeholder="file or LLaMA-Factory dir (Ctrl+B)"))
            yield row("dataset", Input("", id="dataset", compact=True, placeholder="dataset_info key"),
                      Label(" model"),
                      Input("", id="tokenizer", compact=True, placeholder="catalog default"),
                      TypingSelect([(v, v) for v in ("assistant", "last", "all")], value="assistant", id="train_on",
                             allow_blank=False, compact=True))
        yield Static("open a dataset and press Enter (or Ctrl+R)", id="data-summary")
        with TabbedContent(id="data-tabs"):
            with TabPane("Problems", id="tab-problems"):
                yield DataTable(id="problems", cursor_type="row", zebra_stripes=True)
                yield Static("", id="problem-detail")
            with TabPane("Statistics", id="tab-stats"):
                yield Static("", id="stats")
                yield PlotextPlot(id="histogram")
            with TabPane("Sample", id="tab-sample"):
                with VerticalScroll():
                    yield Static("", id="sample")
            with TabPane("Cleaning", id="tab-cleaning"):
                yield Static("", id="cleaning")

    def on_mount(self) -> None:
        self.query_one("#problems", DataTable).add_columns("sev", "file", "record", "field", "message")
        self.query_one("#data-path").focus()

    def receive_handoff(self, values: dict) -> None:
        if values.get("data_path"):
            self.query_one("#data-path", Input).value = values["data_path"]
            self.action_check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_check()

    def action_browse(self) -> None:
        from ..widgets.file_picker import FilePicker

        def chosen(path):
            if path is not None:
                self.query_one("#data-path", Input).value = str(path)
                self.action_check()

        self.app.push_screen(FilePicker("Open a dataset file or a LLaMA-Factory data dir",
                                        self.query_one("#data-path", Input).value, dirs=True), chosen)

    def action_train(self) -> None:
        path = self.query_one("#data-path", Input).value.strip()
        if path:
            self.app.action_show("train", data_path=path)

    def action_check(self) -> None:
        path = self.query_one("#data-path", Input).value.strip()
        if not path:
            self.notify("give a dataset path (Ctrl+B browses)", severity="warning")
            return
        dataset = self.query_one("#dataset", Input).value.strip() or None
        tokenizer = self.query_one("#tokenizer", Input).value.strip()
        train_on = self.query_one("#train_on", Select).value
        self.query_one("#data-summary", Static).update(f"checking {path} ...")
        self.inspect(path, dataset, tokenizer, train_on)

    @work(thread=True, exclusive=True, group="data-check", exit_on_error=False)
    def inspect(self, path: str, dataset: str | None, tokenizer_name: str, train_on: str) -> None:
        from ...data import scan

        try:
            loaded = scan(Path(path).expanduser(), "auto", dataset)
        except Exception as exc:
            self.fail_from_thread(exc, f"reading {path}")
            self.app.call_from_thread(self.query_one("#data-summary", Static).update, f"cannot read {path}")
            return
        self.app.call_from_thread(self._show_problems, loaded)
        try:
            stats = self._token_stats(loaded, tokenizer_name, train_on)
        except Exception as exc:
            self.fail_from_thread(exc, "tokenizing the data")
            stats = None
        self.app.call_from_thread(self._show_stats, loaded, stats)

    def _token_stats(self, loaded, tokenizer_name: str, train_on: str) -> dict | None:
        """Token lengths and trained-token shares with the model's own chat template (appliance.data.render)."""
        if not loaded.conversations:
            return None
        from transformers import AutoTokenizer

        from ...catalog import default_card
        from ...data import IGNORE, render, segments
        from ...hfcache import resolve_model

        name = tokenizer_name or default_card().local_repo_id
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(name))
        lengths, trained = [], 0
        for conv in loaded.conversations[:MAX_TOKENIZED]:
            ids, labels = render(conv, tokenizer, train_on)
            lengths.append(len(ids))
            trained += sum(1 for label in labels if label != IGNORE)
        samples = [(conv.source, segments(conv, tokenizer, train_on)) for conv in loaded.conversations[:20]]
        report = None
        try:  # the `airlock data check` report carries the cleaning counts (duplicates, over the cutoff)
            from ...data.check import check

            report = check(loaded.files[0].parent if len(loaded.files) > 1 else loaded.files[0],
                           dataset=self.query_one("#dataset", Input).value.strip() or None,
                           tokenizer=tokenizer, train_on=train_on)
        except ImportError:
            pass
        return {"tokenizer": name, "lengths": lengths, "trained": trained, "samples": samples, "report": report}

    def _show_problems(self, loaded) -> None:
        self.problems = list(loaded.problems)
        table = self.query_one("#problems", DataTable)
        table.clear()
        for i, p in enumerate(self.problems):
            table.add_row(p.severity[:4], Path(p.file).name, p.record, p.field, p.message, key=str(i))
        errors = sum(p.severity == "error" for p in self.problems)
        warnings = len(self.problems) - errors
        formats = ", ".join(sorted(set(loaded.file_formats.values()))) or loaded.format or "unknown"
        verdict = "[b]usable[/b]" if not errors else f"[b]{errors} error(s)[/b]"
        self.query_one("#data-summary", Static).update(
            f"{verdict}, {warnings} warning(s); format {formats}; {loaded.records} records -> "
            f"{len(loaded.conversations)} conversations in {len(loaded.files)} file(s)")
        self.query_one("#problem-detail", Static).update(
            "no problems" if not self.problems else "Enter on a problem shows its fix")
        if self.problems:
            self.query_one(TabbedContent).active = "tab-problems"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "problems" and event.row_key is not None:
            p = self.problems[int(event.row_key.value)]
            text = f"{p.where}: {p.message}" + (f"\nfix: {p.fix}" if p.fix else "")
            self.query_one("#problem-detail", Static).update(text.replace("[", "\\["))

    def _show_stats(self, loaded, stats: dict | None) -> None:
        convs = loaded.conversations
        turns = [c.turns for c in convs] if convs and hasattr(convs[0], "turns") else []
        lines = [f"conversations {len(convs)}   records {loaded.records}   files {len(loaded.files)}",
                 f"sha256 {loaded.sha256[:16]}..." if loaded.sha256 else ""]
        if turns:
            lines.append(f"turns per conversation: min {min(turns)}, mean {sum(turns) / len(turns):.1f}, "
                         f"max {max(turns)}")
        plot = self.query_one("#histogram", PlotextPlot).plt
        plot.clear_data()
        plot.clear_figure()
        if stats:
            n = stats["lengths"]
            total = sum(n)
            lines.append(f"tokens ({stats['tokenizer']}): min {min(n)}, mean {total / len(n):.0f}, max {max(n)}; "
                         f"trained {stats['trained']}/{total} ({100 * stats['trained'] / max(1, total):.0f}%)"
                         + (f"; first {len(n)} conversations" if len(convs) > len(n) else ""))
            bins = histogram_bins(n)
            plot.bar([str(b) for b, _ in bins], [c for _, c in bins])
            plot.title("tokens per conversation")
            self.samples = stats["samples"]
            self.sample_index = 0
            self._show_sample()
        self.query_one("#histogram", PlotextPlot).refresh()
        self.query_one("#stats", Static).update("\n".join(line for line in lines if line))
        self._show_cleaning((stats or {}).get("report"))

    def _show_sample(self) -> None:
        if not self.samples:
            return
        source, pieces = self.samples[self.sample_index]
        text = Text(f"sample {self.sample_index + 1}/{len(self.samples)}  {source}   ", style="bold")
        text.append("trained", style="black on green")
        text.append(" / ")
        text.append("masked", style="dim")
        text.append("   ([ and ] browse)\n\n")
        for piece, trained in pieces:
            text.append(piece, style="black on green" if trained else "dim")
        self.query_one("#sample", Static).update(text)

    def action_sample(self, step: int) -> None:
        if self.samples:
            self.sample_index = (self.sample_index + step) % len(self.samples)
            self._show_sample()

    def _show_cleaning(self, report) -> None:
        """Cleaning options and what each would remove, from the data library's check report."""
        cleaning = self.query_one("#cleaning", Static)
        if report is None:
            cleaning.update("Cleaning counts need the data library's report (appliance.data.check) and a tokenizer; "
                            "not available for this dataset in this build.")
            return
        cleaning.update(
            f"dedupe exact (data.dedupe: exact)            removes {report.duplicates_exact} conversation(s)\n"
            f"dedupe normalized (data.dedupe: normalized)  removes {report.duplicates_normalized}\n"
            f"cutoff_len {report.cutoff_len}: {report.over_cutoff} conversation(s) longer "
            f"(data.cutoff_policy truncate keeps them cut, drop removes them)\n"
            "Set these on the Train screen (Ctrl+T takes this dataset there).")

    def palette_commands(self):
        return [("Check the dataset", "format, problems, statistics, sample (Ctrl+R)", self.action_check),
                ("Browse for a dataset", "pick a file or a LLaMA-Factory dir (Ctrl+B)", self.action_browse),
                ("Train on this dataset", "open the Train form with this data (Ctrl+T)", self.action_train)]

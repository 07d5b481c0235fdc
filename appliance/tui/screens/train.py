"""Train: a form for every training setting, validated as you type by the same schema the CLI uses, the memory
planner's estimate, the equivalent config file and CLI command, and Start (a detached job).

Library calls: appliance.train.from_dict (schema.build + TrainConfig.validate: the `airlock train` validation),
appliance.train.load_config (Ctrl+L loads a config file), appliance.catalog.find / default_card (pre-fill),
appliance.train.memory (the estimate `airlock train --plan` prints, per rank), appliance.train.preflight
(the CLI's pre-flight checks: the quick part as you type, all of it on Start), appliance.train.start +
appliance.jobs.start_detached (the job). Then the Jobs screen follows it.
"""


from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Select, Static, TabbedContent, TabPane, TextArea

from ...errors import AirlockError
from .. import host
from ..widgets.form import ConfigForm, fields_of
from ..widgets.typing_select import TypingSelect
from .base import AirlockScreen

ORDER = ["model", "method", "stage", "data.path", "data.dataset", "data.format", "max_steps", "num_train_epochs",
         "learning_rate", "lora_rank", "lora_alpha", "lora_dropout", "lora_target", "per_device_train_batch_size",
         "gradient_accumulation_steps", "data.cutoff_len", "data.val_size", "dtype"]


def error_keys(where: str | None, keys: set[str]) -> list[str]:
    """Form keys named by an AirlockError's `where` ("train form: data: cutoff_len", "lora_target[0]", "a/b")."""
    if not where:
        return []
    text = where.split(" (")[0]
    for prefix in ("train form: ", "train form"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    found = []
    for part in text.split("/"):
        key = part.replace(": ", ".").split("[")[0].strip()
        if key in keys:
            found.append(key)
    return found


class TrainScreen(AirlockScreen):
    MODE = "train"
    BINDINGS = [
        Binding("ctrl+r", "start", "Start", priority=True),
        Binding("ctrl+b", "browse", "Browse", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+y", "copy", "Copy CLI", priority=True, show=False),  # named on the Config & CLI tab
        Binding("ctrl+l", "load", "Load", priority=True),
        Binding("ctrl+t", "flip", "Config/CLI", priority=True),
    ]
    DEFAULT_CSS = """
    TrainScreen TabbedContent { height: 1fr; }
    TrainScreen #train-panel { height: auto; max-height: 7; border-top: solid $panel; padding: 0 1; }
    TrainScreen #train-panel Horizontal { height: auto; }
    TrainScreen #device { width: 30; }
    TrainScreen #memory { width: 1fr; }
    TrainScreen #valid, TrainScreen #help, TrainScreen #memory { height: auto; max-height: 2; }
    TrainScreen #valid.-bad { color: $error; }
    TrainScreen #help { color: $text-muted; }
    TrainScreen #cli { height: auto; }
    TrainScreen #config-yaml { height: 1fr; }
    TrainScreen #save-row { height: 1; }
    TrainScreen #save-row Input { width: 1fr; }
    TrainScreen #save-row Button { min-width: 10; height: 1; border: none; }
    """

    def __init__(self):
        super().__init__()
        from ...data import DataConfig
        from ...schema import field_help
        from ...train import TrainConfig

        # The hints are the fields' own help (dataclass metadata), the text `airlock train --keys` prints.
        self.specs = fields_of(TrainConfig, field_help(TrainConfig), nested={"data": DataConfig}, order=ORDER)
        self.keys = {s.key for s in self.specs}
        self.config = None  # the last valid TrainConfig
        self.stage_shown = "sft"  # the stage whose packing default the form shows
        self.gpus = []
        self._architectures: dict = {}  # model reference -> train.memory.Architecture (read once)

    def body(self) -> ComposeResult:
        suggestions = {"model": self._model_suggestions(), "lr_scheduler_type": []}
        with TabbedContent(id="train-tabs"):
            with TabPane("Form", id="tab-form"):
                yield ConfigForm(self.specs, suggestions={"model": suggestions["model"]}, id="train-form",
                                 placeholders={"data.path": "a data file or directory (Ctrl+B browses)"})
            with TabPane("Config & CLI", id="tab-config"):
                yield Static("", id="cli")
                yield TextArea("", id="config-yaml", read_only=True, language=None)
                with Horizontal(id="save-row"):
                    yield Input("airlock-train.yaml", id="save-path", compact=True)
                    yield Button("Save", id="save-button", compact=True)
                    yield Input("", id="job-name", placeholder="job name (optional)", compact=True)
        with Vertical(id="train-panel"):
            with Horizontal():
                yield TypingSelect([], id="device", prompt="device", compact=True, allow_blank=True)
                yield Static("", id="memory")
            yield Static("", id="valid")
            yield Static("", id="help")

    def _model_suggestions(self) -> list[str]:
        from ...catalog import load_catalog

        names = host.installed_models()
        try:
            for card in load_catalog().values():
                names += [card.local_repo_id, card.id]
        except AirlockError:
            pass
        return sorted(set(names))

    def on_mount(self) -> None:
        self._prefill()
        self.gpus = host.gpus()
        options = [(f"GPU {g.index} {g.name} ({g.total_gb:.0f} GiB)", f"gpu{g.index}") for g in self.gpus]
        options.append(("CPU (RAM)", "cpu"))
        device = self.query_one("#device", Select)
        device.set_options(options)
        device.value = options[0][1]
        self.validate()
        self.query_one("#f-model").focus()

    def _prefill(self) -> None:
        """The catalog default model and, when shipped, the sample dataset: a form that is valid as it opens."""
        from ...catalog import default_card
        from ...paths import sample_data_dir

        values: dict = {}
        try:
            values["model"] = default_card().local_repo_id
        except AirlockError:
            pass
        sample = sample_data_dir() / "magic_conch.jsonl"
        if sample.is_file():
            values["data"] = {"path": str(sample)}
        self.query_one(ConfigForm).set_values(values)

    def receive_handoff(self, values: dict) -> None:
        form = self.query_one(ConfigForm)
        if values.get("data_path"):
            form.set_values({"data": {"path": values["data_path"]}})
        if values.get("model"):
            form.set_values({"model": values["model"]})
        self.validate()

    # -- validation: the same schema as `airlock train` ------------------------------------------------------
    def on_config_form_changed(self, event: ConfigForm.Changed) -> None:
        self.validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "device":
            self._show_memory()
        elif event.select.id == "f-stage" and event.value != self.stage_shown:
            # A stage picked here brings its packing default (on for pt), as a config file without packing does; a
            # loaded config's own packing stays (action_load records its stage first).
            self.stage_shown = event.value
            self.query_one(ConfigForm).set_values({"packing": event.value == "pt"})
            self.validate()

    def validate(self):
        from ...train import from_dict, preflight

        form = self.query_one(ConfigForm)
        errors: dict[str, str] = {}
        # Each field alone first (type and range errors point at their own field), then the whole config.
        for spec in self.specs:
            single = form.mapping(only=spec.key)
            if not single:
                continue
            probe = {"data": {"path": "x"}}
            probe = _merge(probe, single)
            try:
                from_dict(probe, where="train form")
            except AirlockError as exc:
                for key in error_keys(exc.where, self.keys) or []:
                    if key == spec.key:
                        errors[key] = exc.message
        problem = ""
        try:
            self.config = from_dict(form.mapping(), where="train form")
            preflight(self.config, hardware=False, data=False)  # a model that is not installed is not "valid"
        except AirlockError as exc:
            self.config = None
            problem = exc.message + (f" (fix: {exc.fix})" if exc.fix else "")
            for key in error_keys(exc.where, self.keys) or []:
                errors.setdefault(key, exc.message)
            if not error_keys(exc.where, self.keys):
                problem = f"{exc.where}: {problem}" if exc.where else problem
        form.show_errors(errors)
        valid = self.query_one("#valid", Static)
        if self.config is not None:
            valid.update("[b]valid[/b]: Ctrl+R starts it as a detached job; Ctrl+T shows the config and CLI")
        else:
            count = max(1, len(errors))
            valid.update(f"[b]{count} problem(s)[/b]: " + problem.replace("[", "\\["))
        valid.set_class(self.config is None, "-bad")
        self._show_memory()
        self._show_cli()
        return self.config

    def _show_memory(self) -> None:
        """The memory planner's estimate for the form's config (a worker: it reads the model's architecture)."""
        if self.config is None:
            self.query_one("#memory", Static).update("memory: fix the config to see the estimate")
            return
        device = self.query_one("#device", Select).value
        gpu = next((g for g in self.gpus if f"gpu{g.index}" == device), None)
        self.plan_memory(self.config, gpu)

    @work(thread=True, exclusive=True, group="train-memory", exit_on_error=False)
    def plan_memory(self, cfg, gpu) -> None:
        from ...train.memory import GIB, architecture, estimate, human
        from ...catalog import default_card, find

        try:
            arch = self._architectures.get(cfg.model) or architecture(cfg.model)
            self._architectures[cfg.model] = arch
            capacity = int((gpu.total_gb - gpu.used_gb) * GIB) if gpu else int(
                (host.cpu().ram_total_gb - host.cpu().ram_used_gb) * GIB)
            plan = estimate(cfg, arch, "cuda" if gpu else "cpu", find(cfg.model) if cfg.model else default_card(),
                            capacity)
        except Exception as exc:  # noqa: BLE001 (shown in place; the form stays usable)
            text = f"memory: no estimate ({getattr(exc, 'message', exc)})"
        else:
            verdict = "fits" if plan.fits else "[b]does not fit[/b]"
            where = f"GPU {gpu.index} free" if gpu else "RAM free"
            text = (f"memory: ~{human(plan.peak)} {'per GPU' if gpu else 'RAM'} (activations "
                    f"{human(plan.parts['activations'])}); {where} {human(capacity)}: {verdict}"
                    + (f"\nto fit: {plan.advice[0]}" if plan.advice else ""))
        self.app.call_from_thread(self.query_one("#memory", Static).update, text)

    def _config_yaml(self) -> str:
        import yaml

        if self.config is None:
            return "# the form has a problem; fix it to see the config"
        return yaml.safe_dump(self.config.to_dict(), sort_keys=False, allow_unicode=True)

    def _command(self) -> str:
        path = self.query_one("#save-path", Input).value.strip() or "airlock-train.yaml"
        name = self.query_one("#job-name", Input).value.strip()
        return f"airlock train {path} --detach" + (f" --name {name}" if name else "")

    def _show_cli(self) -> None:
        self.query_one("#cli", Static).update(
            f"Equivalent command (after Ctrl+S saves the config below; Ctrl+Y copies both):\n[b]{self._command()}[/b]")
        self.query_one("#config-yaml", TextArea).text = self._config_yaml()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("save-path", "job-name"):
            self._show_cli()

    def on_config_form_focus_help(self, event: ConfigForm.FocusHelp) -> None:
        spec = event.spec
        default = "empty" if spec.default in (None, "", []) else spec.default
        self.query_one("#help", Static).update(f"[b]{spec.key}[/b] (default {default}): {spec.help}".replace(
            "[]", ""))

    # -- actions -------------------------------------------------------------------------------------------------
    def action_flip(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-config" if tabs.active == "tab-form" else "tab-form"

    def action_browse(self) -> None:
        from ..widgets.file_picker import FilePicker

        current = str(self.query_one(ConfigForm).raw("data.path")).strip()

        def chosen(path):
            if path is not None:
                self.query_one(ConfigForm).set_values({"data": {"path": str(path)}})
                self.validate()

        self.app.push_screen(FilePicker("Training data: a file or a LLaMA-Factory data dir", current, dirs=True),
                             chosen)

    def action_load(self) -> None:
        from ..widgets.file_picker import FilePicker

        def chosen(path):
            if path is None:
                return
            from ...train import load_config

            try:
                cfg = load_config(path)
            except AirlockError as exc:
                self.fail(exc, "loading the config")
                return
            self.stage_shown = cfg.stage
            self.query_one(ConfigForm).set_values(cfg.to_dict())
            self.query_one("#save-path", Input).value = str(path)
            self.validate()
            self.notify(f"loaded {path}")

        self.app.push_screen(FilePicker("Load a training config (YAML/JSON/TOML)",
                                        self.query_one("#save-path", Input).value), chosen)

    def action_save(self) -> None:
        from pathlib import Path

        from ...atomic import write_text

        if self.validate() is None:
            self.notify("the form has a problem; fix it first", severity="warning")
            return
        path = Path(self.query_one("#save-path", Input).value.strip() or "airlock-train.yaml").expanduser()
        try:
            write_text(path, f"# {self._command()}\n" + self._config_yaml())
        except OSError as exc:
            self.fail(AirlockError(f"cannot write the config: {exc.strerror}", where=str(path),
                                   fix="choose a writable path"), "saving the config")
            return
        self.notify(f"saved {path}")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(f"{self._command()}\n\n{self._config_yaml()}")
        self.notify("copied the command and the config (terminal clipboard, OSC 52)")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save-button":
            self.action_save()

    def action_start(self) -> None:
        cfg = self.validate()
        if cfg is None:
            self.notify("the form has a problem; fix it first", severity="warning")
            return
        name = self.query_one("#job-name", Input).value.strip() or None
        self.notify("checking the model and starting the job ...")
        self.start_job(cfg, name)

    @work(thread=True, exclusive=True, group="train-start", exit_on_error=False)
    def start_job(self, cfg, name) -> None:
        """The `airlock train --detach` path: pre-flight checks, a job directory, a detached runner."""
        from ...jobs import start_detached
        from ...train import preflight, start

        try:
            preflight(cfg)  # all of `airlock train`'s checks, the data included, before a job exists
            argv = ["airlock", "tui", "train"] + (["--name", name] if name else [])
            job = start(cfg, argv, name)
            pid = start_detached(job)
        except Exception as exc:
            self.fail_from_thread(exc, "starting the training job")
            return
        self.app.call_from_thread(self.notify, f"job {job.id} started (pid {pid})")
        self.app.call_from_thread(self.app.action_show, "jobs", job=job.id)

    def palette_commands(self):
        return [("Start training", "start the form's config as a detached job (Ctrl+R)", self.action_start),
                ("Save the training config", "write the config file for `airlock train` (Ctrl+S)", self.action_save),
                ("Copy the training command", "the equivalent CLI command and config (Ctrl+Y)", self.action_copy),
                ("Load a training config", "fill the form from a YAML/JSON/TOML file (Ctrl+L)", self.action_load),
                ("Browse for training data", "pick the dataset file or directory (Ctrl+B)", self.action_browse)]


def _merge(base: dict, override: dict) -> dict:
    from ...schema import merge

    return merge(base, override)

"""A settings form generated from a config dataclass: one row per field, the right input for its type, an inline
error under the field, and the field's help shown while it has focus.

    form = ConfigForm(fields_of(TrainConfig, help=schema.field_help(TrainConfig), nested={"data": DataConfig}))
    form.mapping()               # {"model": "...", "data": {"path": ...}}: what schema.build validates
    form.show_errors({"learning_rate": "expected a number, got 'abc'"})

The form does no validation of its own: the screen runs the same schema validation the CLI uses
(appliance.schema.build via the config's from_dict) and passes the errors back.
"""

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Input, Label, Select, Static

from .choices import Tick
from .typing_select import TypingSelect


@dataclass
class FieldSpec:
    key: str  # dotted: "learning_rate", "data.cutoff_len"
    hint: Any  # the annotation
    default: Any
    help: str = ""

    @property
    def choices(self) -> tuple | None:
        return typing.get_args(self.hint) if typing.get_origin(self.hint) is Literal else None

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.hint)

    @property
    def widget_id(self) -> str:
        return "f-" + self.key.replace(".", "-")


def fields_of(cls, help: dict[str, str] | None = None, nested: dict[str, type] | None = None,
              prefix: str = "", order: list[str] | None = None) -> list[FieldSpec]:
    """FieldSpecs for every init field of dataclass `cls`; fields named in `nested` expand into their own fields."""
    help = help or {}
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = prefix + f.name
        if (nested and f.name in nested) or dataclasses.is_dataclass(hints[f.name]):
            sub = nested[f.name] if nested and f.name in nested else hints[f.name]
            specs += fields_of(sub, help, None, prefix=key + ".")  # a section's fields, as section.key
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        specs.append(FieldSpec(key, hints[f.name], default, help.get(key, "")))
    if order:
        rank = {k: i for i, k in enumerate(order)}
        specs.sort(key=lambda s: rank.get(s.key, len(rank)))
    return specs


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


class ConfigForm(VerticalScroll):
    """Rows of label + input + inline error; posts ConfigForm.Changed on any edit and FocusHelp on focus."""

    DEFAULT_CSS = """
    ConfigForm { height: 1fr; }
    ConfigForm .form-row { height: 1; }
    ConfigForm .form-label { width: 28; padding: 0 1 0 0; text-align: right; color: $text-muted; }
    ConfigForm .form-row Input, ConfigForm .form-row Select { width: 1fr; }
    ConfigForm .form-error { color: $error; padding: 0 0 0 28; height: auto; display: none; }
    ConfigForm .form-error.-shown { display: block; }
    ConfigForm .-invalid .form-label { color: $error; text-style: bold; }
    """

    class Changed(Message):
        pass

    class FocusHelp(Message):
        def __init__(self, spec: FieldSpec):
            super().__init__()
            self.spec = spec

    def __init__(self, specs: list[FieldSpec], suggestions: dict[str, list[str]] | None = None,
                 placeholders: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.placeholders = placeholders or {}
        self.specs = specs
        self.by_id = {s.widget_id: s for s in specs}
        self.suggestions = suggestions or {}
        self.loading_values = False

    def compose(self) -> ComposeResult:
        for spec in self.specs:
            with Horizontal(classes="form-row", id=f"row-{spec.widget_id}"):
                yield Label(spec.key, classes="form-label")
                yield self._widget(spec)
            yield Static("", classes="form-error", id=f"err-{spec.widget_id}")

    def _widget(self, spec: FieldSpec):
        if spec.choices:
            return TypingSelect([(str(c), c) for c in spec.choices], value=spec.default, allow_blank=False,
                          id=spec.widget_id, compact=True)
        if spec.hint is bool:
            return Tick("", value=bool(spec.default), id=spec.widget_id, compact=True)
        suggester = SuggestFromList(self.suggestions[spec.key], case_sensitive=False) \
            if spec.key in self.suggestions else None
        placeholder = self.placeholders.get(spec.key) or (
            "empty = default" if spec.optional or spec.default in ("", None, []) else "")
        return Input(_text(spec.default), id=spec.widget_id, compact=True, placeholder=placeholder,
                     suggester=suggester)

    # -- values --------------------------------------------------------------------------------------------------
    def raw(self, key: str):
        widget = self.query_one(f"#f-{key.replace('.', '-')}")
        return widget.value

    def mapping(self, only: str | None = None) -> dict:
        """The form as a nested mapping of the values a person typed: empty fields are left out (= defaults)."""
        out: dict = {}
        for spec in self.specs:
            if only and spec.key != only:
                continue
            value = self.query_one(f"#{spec.widget_id}").value
            if isinstance(value, str):
                value = value.strip()
                if value == "":
                    continue
            node = out
            *parents, last = spec.key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return out

    def set_values(self, values: dict, prefix: str = "") -> None:
        self.loading_values = True
        try:
            for key, value in values.items():
                if isinstance(value, dict):
                    self.set_values(value, prefix + key + ".")
                    continue
                widget_id = "f-" + (prefix + key).replace(".", "-")
                if widget_id not in self.by_id:
                    continue
                widget = self.query_one(f"#{widget_id}")
                widget.value = value if isinstance(widget, (Select, Checkbox)) else _text(value)
        finally:
            self.loading_values = False

    def show_errors(self, errors: dict[str, str]) -> None:
        for spec in self.specs:
            message = errors.get(spec.key, "")
            err = self.query_one(f"#err-{spec.widget_id}", Static)
            err.update(message.replace("[", "\\["))
            err.set_class(bool(message), "-shown")
            self.query_one(f"#row-{spec.widget_id}").set_class(bool(message), "-invalid")

    # -- events --------------------------------------------------------------------------------------------------
    def _changed(self, event) -> None:
        if not self.loading_values:
            self.post_message(self.Changed())

    def on_input_changed(self, event: Input.Changed) -> None:
        self._changed(event)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._changed(event)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._changed(event)

    def on_descendant_focus(self, event) -> None:
        spec = self.by_id.get(getattr(event.widget, "id", None) or "")
        if spec is not None:
            self.post_message(self.FocusHelp(spec))


def row(label: str, *widgets) -> "Horizontal":
    """A labelled line of a settings panel: the label, then its inputs (the screens' CSS styles `.row`)."""
    from textual.containers import Horizontal
    from textual.widgets import Label

    return Horizontal(Label(label), *widgets, classes="row")

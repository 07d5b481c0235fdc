"""Validated configs from plain mappings: one mechanism for YAML/TOML files, `--set key=value` flags and TUI forms.

`build(Config, mapping, where)` turns a mapping into a dataclass instance: unknown keys are errors that suggest
the nearest valid key, values are checked (and gently coerced: YAML reads `1e-4` as a string) against the
field's annotation, and the dataclass's own `validate()` (if any) runs last for cross-field rules.

A field's help lives with the field: `setting(default, help)` puts it in the dataclass field's metadata, and
`field_help(Config)` / `describe(Config)` read it back for the TUI's hints, `airlock train --keys` and
docs/config.md, so the text is written once.
"""

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping

from .errors import AirlockError


def setting(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
            detail: str = "") -> Any:
    """A dataclass field that carries its help: `help` is one short line (the TUI shows it beside the form, so at
    most 80 characters), `detail` an optional longer explanation for `--keys` and the docs page."""
    if not help:
        raise TypeError("a setting needs its help text")  # at import time, not when someone looks for it
    metadata = {"help": help, **({"detail": detail} if detail else {})}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    """One config key as the help texts describe it; `key` is dotted ("data.cutoff_len")."""

    key: str
    hint: Any
    default: Any  # dataclasses.MISSING for a required key
    help: str
    detail: str

    @property
    def section(self) -> bool:
        return dataclasses.is_dataclass(self.hint)

    @property
    def type_text(self) -> str:
        return type_text(self.hint)

    @property
    def default_text(self) -> str:
        return value_text(self.default)


def describe(cls, prefix: str = "") -> list[KeyDoc]:
    """Every init field of dataclass `cls` in declaration order, a nested dataclass's own fields right after it."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        out.append(KeyDoc(prefix + f.name, hints[f.name], default, f.metadata.get("help", ""),
                          f.metadata.get("detail", "")))
        if dataclasses.is_dataclass(hints[f.name]):
            out += describe(hints[f.name], prefix + f.name + ".")
    return out


def field_help(cls) -> dict[str, str]:
    """Dotted key -> one-line help for every field of `cls` and of its nested dataclasses ("" where a field has
    none: tests/test_config_docs.py fails on that)."""
    return {doc.key: doc.help for doc in describe(cls)}


def type_text(hint: Any) -> str:
    """A field's annotation in a config writer's words: `integer or empty`, `sft | dpo`, `list of text`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " | ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        named = [type_text(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or empty" if type(None) in args else "")
    if origin in (list, tuple):
        return "list of " + (type_text(args[0]) if args else "values")
    if dataclasses.is_dataclass(hint):
        return "section"
    names = {str: "text", int: "integer", float: "number", bool: "true/false", Path: "path", dict: "mapping"}
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


def value_text(value: Any) -> str:
    """A default as it would be written in a config file (`true`, `0.0002`, `a,b`); unset values are `empty`."""
    if value is dataclasses.MISSING:
        return "required"
    if dataclasses.is_dataclass(value):
        return "its keys' defaults"
    if value is None or value == "" or value == []:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else "valid keys: " + ", ".join(sorted(valid))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except AirlockError as exc:
                errors.append(exc.message)
        raise AirlockError("; ".join(errors), where=where)
    if origin is Literal:
        if value in args:
            return value
        if isinstance(value, str) and value.lower() in args:
            return value.lower()
        raise AirlockError(f"{value!r} is not one of: {', '.join(map(str, args))}", where=where)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise AirlockError(f"expected a list, got {type(value).__name__} {value!r}", where=where)
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise AirlockError(f"expected a mapping, got {type(value).__name__}", where=where)
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise AirlockError(f"expected a mapping, got {type(value).__name__}", where=where)
        return build(hint, value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise AirlockError(f"expected true or false, got {value!r}", where=where)
    if hint is int:
        if isinstance(value, bool):
            raise AirlockError(f"expected a whole number, got {value!r}", where=where)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise AirlockError(f"expected a whole number, got {value!r}", where=where)
    if hint is float:
        if isinstance(value, bool):
            raise AirlockError(f"expected a number, got {value!r}", where=where)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise AirlockError(f"expected a number, got {value!r}", where=where)
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise AirlockError(f"expected text, got {type(value).__name__} {value!r}", where=where)
    if hint is Path:
        if isinstance(value, (str, Path)):
            return Path(value).expanduser()
        raise AirlockError(f"expected a path, got {value!r}", where=where)
    return value


def build(cls, data: Mapping[str, Any], where: str = "config"):
    """Validate `data` against dataclass `cls` and return an instance (see module docstring)."""
    if not isinstance(data, Mapping):
        raise AirlockError(f"expected a mapping of settings, got {type(data).__name__}", where=where)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise AirlockError(f"unknown key '{key}'", where=where, fix=suggest(str(key), fields))
        kwargs[key] = _coerce(value, hints[key], f"{where}: {key}")
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise AirlockError(f"missing required key(s): {', '.join(missing)}", where=where)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def to_dict(obj) -> dict:
    """A plain, YAML/JSON-ready dict of a config dataclass (paths as strings)."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def parse_overrides(pairs: list[str]) -> dict:
    """`--set a.b=value` flags to a nested dict; values are read as YAML scalars (numbers, true/false, lists)."""
    import yaml

    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise AirlockError(f"--set expects key=value, got {pair!r}", fix="e.g. --set learning_rate=2e-4")
        key, raw = pair.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        quoted = raw.strip()[:1] in ("'", '"')  # --set 'target.python="3.10"' stays text
        if isinstance(value, str) and not quoted:  # YAML 1.1 reads 2e-4 as text; users mean a number
            try:
                value = float(value) if any(c in value.lower() for c in ".e") else int(value)
            except ValueError:
                pass
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def merge(base: dict, override: dict) -> dict:
    """Deep-merge `override` into a copy of `base`."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def toml():
    """The standard library's TOML reader (Python 3.11+), or tomli, its backport for 3.10 (same API)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def load_file(path: Path) -> dict:
    """Read a YAML, JSON or TOML config file into a dict, with a clear error naming the file and line."""
    import json

    import yaml

    tomllib = toml()
    path = Path(path)
    if not path.is_file():
        raise AirlockError("config file not found", where=str(path), fix="check the path")
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise AirlockError(f"cannot parse: {exc}", where=where, fix="fix the syntax at that line") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AirlockError("expected a mapping of settings at the top level", where=str(path))
    return data

"""What `airlock llamafactory translate` prints and writes: the translation key by key, or the commands to run."""

import os
from pathlib import Path

from .tasks import Task
from .train import Translation


def _fmt(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def render(tr: Translation) -> str:
    """The translation as text: what maps to what, what is not needed, what is not supported."""
    lines = [f"LLaMA-Factory config {tr.source}", "", f"translated ({len(tr.translated)}):"]
    width = max([len(k) for k, *_ in tr.translated + tr.not_needed + tr.unsupported] or [10])
    lines += [f"  {k:<{width}}  {_fmt(v)}  ->  {ours} = {_fmt(ov)}" for k, v, ours, ov in tr.translated]
    if tr.notes:
        lines += ["", "notes:"] + [f"  {note}" for note in tr.notes]
    lines += ["", f"not needed here ({len(tr.not_needed)}):"]
    lines += [f"  {k:<{width}}  {_fmt(v)}  ({why})" for k, v, why in tr.not_needed] or ["  (none)"]
    lines += ["", f"NOT SUPPORTED ({len(tr.unsupported)}) - refused unless --lenient, which trains without them:"]
    lines += [f"  {k:<{width}}  {_fmt(v)}  ({why}{'; listed only: no trained weight changes' if k not in tr.blocking else ''})"
              for k, v, why in tr.unsupported] or ["  (none)"]
    rows = tr.differences()
    lines += ["", f"differs from Airlock's own defaults ({len(rows)}; LLaMA-Factory's defaults apply to the "
                  f"{len(tr.defaults)} keys the YAML leaves out):"]
    if rows:
        w = max(len(r[0]) for r in rows)
        lines += [f"  {setting:<{w}}  {_fmt(value):<10}  {source}" + ("" if source.startswith("Airlock") else
                                                                      f"; Airlock's own: {_fmt(airlock)}")
                  for setting, value, source, airlock in rows]
    else:
        lines += ["  (none)"]
    return "\n".join(lines)


def render_task(task: Task) -> str:
    """A YAML that does not train: what it is, the airlock command(s) that do its job, and each key's fate."""
    lines = [f"LLaMA-Factory {task.kind} config {task.source}", "", f"this is a {task.kind} YAML: it {task.what}"]
    if task.argv:
        lines += ["", "run:"] + [f"  {command}" for command in task.commands()]
    else:
        lines += ["", "Airlock has no equivalent command."]
    if task.notes:
        lines += ["", "notes:"] + [f"  {note}" for note in task.notes]
    width = max([len(k) for k, *_ in task.keys] or [10])
    lines += ["", "keys:"] + [f"  {k:<{width}}  {_fmt(v)}  ({why})" for k, v, why in task.keys]
    return "\n".join(lines)


def config_yaml(tr: Translation, out: Path) -> str:
    """The translated config as an Airlock YAML file (data.path relative to the file, as configs are read)."""
    import yaml

    config = {**tr.config, "data": dict(tr.config.get("data", {}))}
    if config["data"].get("path"):
        config["data"]["path"] = os.path.relpath(config["data"]["path"], Path(out).resolve().parent)
    head = (f"# airlock train {Path(out).name}\n# Translated from the LLaMA-Factory config {Path(tr.source).name} by "
            f"`airlock llamafactory translate`.\n")
    if tr.unsupported:
        head += "# Not carried over: " + ", ".join(k for k, *_ in tr.unsupported) + "\n"
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)

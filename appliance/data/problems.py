"""Problems found in a dataset: every one names the file, the record, the field and what to do about it.

Loading collects all problems instead of stopping at the first, so one `airlock data check` run shows the whole
list. Errors stop training; warnings (a BOM, CRLF line endings, ...) are reported and the data is still used.
"""

from dataclasses import asdict, dataclass, field
from typing import Literal

from ..errors import AirlockError

MAX_SHOWN = 50  # an error message listing thousands of broken records helps nobody; the count says the rest


@dataclass
class Problem:
    severity: Literal["error", "warning"]
    file: str
    message: str
    record: str = ""  # "line 7" (JSONL), "record 3 (line 12)" (JSON), "row 4" (CSV/parquet); "" for the file
    field: str = ""  # e.g. "output", "conversations[2].from"
    fix: str = ""

    @property
    def where(self) -> str:
        parts = [self.file] + [p for p in (self.record, self.field) if p]
        return ": ".join(parts)

    def render(self) -> str:
        text = f"{self.severity}: {self.where}: {self.message}"
        return text + (f"\n  fix: {self.fix}" if self.fix else "")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Problems:
    """A collector: `error(...)`/`warning(...)` append, `.errors`/`.warnings` read back."""

    items: list[Problem] = field(default_factory=list)

    def error(self, file, message, record="", field="", fix="") -> None:
        self.items.append(Problem("error", str(file), message, record, field, fix))

    def warning(self, file, message, record="", field="", fix="") -> None:
        self.items.append(Problem("warning", str(file), message, record, field, fix))

    def extend(self, other: "Problems") -> None:
        self.items.extend(other.items)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]


SKIP_FIX = ("or, as LLaMA-Factory drops such records with a warning, set data.skip_invalid_records: N to leave "
            "out up to N of them (they are counted and the first ones named)")


def skip_records(items: list[Problem], limit: int) -> list[Problem]:
    """`items` with the errors of at most `limit` records turned into warnings saying the record is left out
    (data.skip_invalid_records); unchanged when a problem concerns a whole file or more records are broken."""
    errors = [p for p in items if p.severity == "error"]
    records = list(dict.fromkeys((p.file, p.record) for p in errors))
    if limit <= 0 or not errors or any(not p.record for p in errors) or len(records) > limit:
        return items
    kept = [p for p in items if p.severity != "error"]
    skipped = [Problem("warning", p.file, f"record left out (data.skip_invalid_records): {p.message}", p.record,
                       p.field, p.fix) for p in errors]
    summary = Problem("warning", records[0][0], f"{len(records)} invalid record(s) left out of training "
                      f"(data.skip_invalid_records: {limit}); the data is used without them")
    return kept + [summary] + skipped


class DataError(AirlockError):
    """A dataset with errors. `.problems` holds every problem (errors and warnings) for callers that show them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        lines = [p.render() for p in errors[:MAX_SHOWN]]
        if len(errors) > MAX_SHOWN:
            lines.append(f"... and {len(errors) - MAX_SHOWN} more errors")
        first = errors[0] if errors else None
        super().__init__(
            f"{len(errors)} problem(s) in the dataset:\n" + "\n".join(lines),
            where=first.file if first else None,
            fix="fix the records listed above (`airlock data check PATH` shows the full report)"
                + ("; " + SKIP_FIX if errors and all(p.record for p in errors) else ""),
        )

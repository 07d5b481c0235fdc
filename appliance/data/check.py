"""check(): everything `airlock data check` (and the TUI's Data screen) shows about a dataset, as one report.

Never raises for bad data: problems are listed in the report. Token statistics and the rendered sample need a
tokenizer from the local HF cache (the model named, else the catalog's default); without one they are skipped
with a note.
"""

from dataclasses import asdict, dataclass, field

from ..errors import AirlockError
from .conversation import Conversation
from .load import scan
from .prepare import _exact_key, _normalized_key, percentiles
from .problems import Problem
from .render import render, segments


@dataclass
class CheckReport:
    path: str
    format: str
    file_formats: dict
    records: int
    conversations: int
    turns: int
    problems: list[Problem]
    duplicates_exact: int = 0
    duplicates_normalized: int = 0
    tokenizer: str | None = None
    token_note: str = ""
    token_lengths: dict = field(default_factory=dict)
    histogram: list[tuple[int, int]] = field(default_factory=list)  # (bucket upper bound, count)
    cutoff_len: int = 1024
    over_cutoff: int = 0
    trained_tokens: int = 0
    sample: list[tuple[str, bool]] = field(default_factory=list)
    sample_source: str = ""
    sha256: str = ""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        data["errors"] = len(self.errors)
        data["warnings"] = len(self.warnings)
        return data


def _count_duplicates(conversations: list[Conversation], key) -> int:
    seen, dupes = set(), 0
    for conv in conversations:
        k = key(conv)
        dupes += k in seen
        seen.add(k)
    return dupes


def histogram(lengths: list[int], buckets: int = 10) -> list[tuple[int, int]]:
    if not lengths:
        return []
    top = max(lengths)
    width = max(1, -(-top // buckets))
    counts = [0] * buckets
    for n in lengths:
        counts[min(buckets - 1, (n - 1) // width if n else 0)] += 1
    return [((i + 1) * width, c) for i, c in enumerate(counts)]


def load_tokenizer(model: str | None):
    """(tokenizer, name) from the local HF cache, or (None, reason). Never touches the network."""
    from ..catalog import default_card
    from ..hfcache import resolve_model

    try:
        name = model or default_card().local_repo_id
        path = resolve_model(name)
    except AirlockError as exc:
        return None, f"no token statistics: {exc.message}"
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path), name


def check(path, format: str = "auto", dataset: str | None = None, *, model: str | None = None,
          tokenizer=None, cutoff_len: int = 1024, train_on: str = "assistant", tokens: bool = True) -> CheckReport:
    loaded = scan(path, format, dataset)
    convs = loaded.conversations
    report = CheckReport(
        path=str(path), format=loaded.format, file_formats=loaded.file_formats, records=loaded.records,
        conversations=len(convs), turns=sum(c.turns for c in convs), problems=loaded.problems,
        duplicates_exact=_count_duplicates(convs, _exact_key),
        duplicates_normalized=_count_duplicates(convs, _normalized_key),
        cutoff_len=cutoff_len, sha256=loaded.sha256,
    )
    if not tokens or not convs:
        return report
    name = getattr(tokenizer, "name_or_path", None)
    if tokenizer is None:
        tokenizer, name = load_tokenizer(model)
        if tokenizer is None:
            report.token_note = name
            return report
    report.tokenizer = str(name)
    lengths = []
    try:
        for conv in convs:
            ids, labels = render(conv, tokenizer, train_on)
            lengths.append(len(ids))
            report.trained_tokens += sum(1 for x in labels[:cutoff_len] if x != -100)
        report.sample = segments(convs[0], tokenizer, train_on)
        report.sample_source = convs[0].source
    except AirlockError as exc:
        report.token_note = f"cannot render with this tokenizer: {exc.message}"
        return report
    report.token_lengths = percentiles(lengths)
    report.histogram = histogram(lengths)
    report.over_cutoff = sum(1 for n in lengths if n > cutoff_len)
    return report

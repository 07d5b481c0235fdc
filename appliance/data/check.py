"""check(): the whole report on a dataset, for `airlock data check` and the TUI's data screen (same object).

    from appliance.data.check import check
    report = check("train.jsonl", model="airlock-embedded/SmolLM2-135M-Instruct")
    report.ok, report.errors, report.token_stats, report.to_dict()

It never raises for bad data (problems are in the report); it raises AirlockError only for a bad request, such
as a --model that is not installed. A model without a chat template (and no chat_template given) is an error in
the report: training could not render the data; so is tool-calling data with a template that knows no tools.
Columns no format reads are warnings (appliance/data/columns.py); those named in `ignore_columns` become notes,
as training with data.ignore_columns would leave them out.
`stage` reads the data as that training stage would: pt as documents (no chat template; every token trained, an
EOS after each), kto with KTO's label (the note counts desirable and undesirable answers).
"""

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import AirlockError
from . import clean, pretrain, template
from .problems import Problem
from .render import IGNORE, no_tool_support, render, segments
from .tools import no_tool_support_fix, supports_tools


@dataclass
class CheckReport:
    path: str
    format: str
    files: list[str]
    file_formats: dict[str, str]
    records: int
    conversations: int
    turns: int
    sha256: str
    problems: list[Problem]
    duplicates: dict[str, int]  # exact / normalized: how many records repeat an earlier one
    cutoff_len: int
    model: str | None = None  # the tokenizer used for token statistics
    token_stats: dict | None = None  # p50 / p90 / p99 / max / mean / total tokens per conversation
    trained_tokens: int | None = None
    over_cutoff: int | None = None  # conversations longer than cutoff_len (truncated or dropped by prepare)
    sample: list[tuple[str, bool]] | None = None  # (text, trained) pieces of one rendered conversation
    sample_source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    # Names the TUI's data screen and the demo read (the first version of this report used them).
    @property
    def duplicates_exact(self) -> int:
        return self.duplicates.get("exact", 0)

    @property
    def duplicates_normalized(self) -> int:
        return self.duplicates.get("normalized", 0)

    @property
    def token_lengths(self) -> dict:
        return self.token_stats or {}

    @property
    def tokenizer(self) -> str | None:
        return self.model

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        data["errors"] = len(self.errors)
        data["warnings"] = len(self.warnings)
        if self.sample is not None:
            data["sample"] = [{"text": text, "trained": trained} for text, trained in self.sample]
        return data


def check(path, format: str = "auto", dataset: str | None = None, model: str | None = None,
          cutoff_len: int = 1024, train_on: str = "assistant", tokenizer=None, chat_template: str = "",
          ignore_columns=(), stage: str = "sft", skip: int = 0) -> CheckReport:
    """Validate, count and (with a tokenizer) measure a dataset. `model`: a path or cached repo id; None = the
    catalog's default model if it is installed (no token statistics otherwise, with a note). `chat_template`:
    as data.chat_template (empty = the model's own)."""
    loaded = pretrain.scan_for_stage(stage, path, format, dataset, skip)
    convs = loaded.conversations
    report = CheckReport(
        path=str(path), format=loaded.format, files=[str(f) for f in loaded.files],
        file_formats=loaded.file_formats, records=loaded.records, conversations=len(convs),
        turns=0 if stage == "pt" else sum(c.turns for c in convs), sha256=loaded.sha256, problems=loaded.problems,
        duplicates={mode: len(clean.duplicates(convs, mode)) for mode in ("exact", "normalized")},
        cutoff_len=cutoff_len,
    )
    _accept_ignored(report, loaded.unused, ignore_columns)
    if stage == "kto" and convs:
        good = sum(1 for c in convs if c.kto_tag)
        report.notes.append(f"KTO labels: {good} desirable, {len(convs) - good} undesirable answer(s)")
    try:
        text, what = template.resolve(chat_template)
    except AirlockError as exc:
        report.problems.append(Problem("error", exc.where or template.WHERE, exc.message, fix=exc.fix or ""))
        return report
    if not convs:
        return report
    if tokenizer is None:
        tokenizer, report.model = _tokenizer(model, report.notes)
    else:
        report.model = str(getattr(tokenizer, "name_or_path", "") or "given tokenizer")
    if tokenizer is None:
        return report
    if stage == "pt":
        return _document_stats(report, convs, tokenizer)
    if text is not None:
        tokenizer = copy.copy(tokenizer)  # the caller's tokenizer keeps its own template
        tokenizer.chat_template = text
        report.notes.append(f"rendered with {what}")
    if not getattr(tokenizer, "chat_template", None):
        report.problems.append(Problem(
            "error", report.model or "tokenizer", "the model has no chat template and none is given: training "
            "cannot render the conversations", fix="give one with --chat-template (data.chat_template when "
            "training): a catalog model id whose template fits, or a .jinja file; or use an instruct/chat model"))
        return report
    if any(c.uses_tools for c in convs) and not supports_tools(tokenizer.chat_template):
        first = next(c for c in convs if c.uses_tools)
        report.problems.append(Problem("error", first.source, no_tool_support(report.model or "the model"),
                                       fix=no_tool_support_fix()))
        return report
    try:
        lengths, trained = [], 0
        for conv in convs:
            ids, labels = render(conv, tokenizer, train_on)
            lengths.append(len(ids))
            trained += sum(1 for x in labels if x != IGNORE)
        report.sample = segments(convs[0], tokenizer, train_on)
    except AirlockError as exc:
        report.notes.append(f"no token statistics: {exc.message}")
        return report
    report.sample_source = convs[0].source
    report.token_stats = stats(lengths)
    report.trained_tokens = trained
    report.over_cutoff = sum(1 for n in lengths if n > cutoff_len)
    return report


def _document_stats(report: CheckReport, documents, tokenizer) -> CheckReport:
    """Token statistics of pre-training documents: every token is trained, an EOS ends each document."""
    try:
        lengths = [len(pretrain.document_ids(doc.text, tokenizer)) for doc in documents]
    except AirlockError as exc:
        report.notes.append(f"no token statistics: {exc.message}")
        return report
    report.notes.append("read as pre-training documents (stage pt): no chat template, every token trained, an EOS "
                        "after each; a document over cutoff_len is split into rows of cutoff_len")
    report.sample = [(documents[0].text + (tokenizer.eos_token or ""), True)]
    report.sample_source = documents[0].source
    report.token_stats = stats(lengths)
    report.trained_tokens = sum(lengths)
    report.over_cutoff = sum(1 for n in lengths if n > report.cutoff_len)
    return report


def _accept_ignored(report: CheckReport, unused, ignore) -> None:
    """Columns the user said to leave out: their warning becomes a note (training will not stop for them)."""
    for u in unused:
        if u.name in ignore or u.key in ignore:
            report.problems = [p for p in report.problems if not (p.severity == "warning" and p.field == u.name
                                                                  and p.message.startswith("column '"))]
            report.notes.append(f"column '{u.name}' ({u.records} record(s)) is left out, as ignore_columns asks")


def stats(lengths: list[int]) -> dict:
    """Nearest-rank percentiles of conversation lengths in tokens."""
    ordered = sorted(lengths)

    def pct(p):
        return ordered[max(0, -(-p * len(ordered) // 100) - 1)]

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": ordered[-1],
            "mean": round(sum(ordered) / len(ordered), 1), "total": sum(ordered)}


def _tokenizer(model: str | None, notes: list[str]):
    """(tokenizer, name) from the local HF cache; (None, None) with a note when no default model is installed."""
    from ..catalog import default_card
    from ..hfcache import resolve_model

    name = model
    if name is None:
        try:
            name = default_card().local_repo_id
            local = resolve_model(name)
        except AirlockError:
            notes.append(f"no token statistics: the default model{f' {name}' if name else ''} is not installed "
                         "(pass --model NAME_OR_PATH)")
            return None, None
    else:
        local = resolve_model(name)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(Path(local)), name
    except (OSError, ValueError) as exc:
        raise AirlockError(f"cannot load the tokenizer: {exc}", where=str(local),
                           fix="give a model directory with tokenizer files") from None

"""load_conversations(): a file or a LLaMA-Factory dataset directory -> validated Conversations, or a DataError.

    from appliance.data import load_conversations
    loaded = load_conversations("data/train.jsonl")            # format detected per record and per file
    loaded = load_conversations("data/", dataset="my_set")     # a key in data/dataset_info.json

`scan()` does the same work but returns the problems instead of raising; `airlock data check` reports from it.
Columns no format reads are counted per column (appliance/data/columns.py): a warning here, a refusal when
training unless data.ignore_columns names them. `stage` says how the run reads the data: KTO's label (kto_tag)
only for stage kto; text without answers (pre-training data, .txt files) is refused once per file naming stage
pt, whose documents appliance/data/pretrain.py reads.
"""

import difflib
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..hfcache import sha256_file
from .columns import COLUMNS, ENTRY_KEYS, TAGS, Tally, Unused
from .conversation import Conversation
from .files import EXTENSIONS, read_records
from .formats import Columns, convert, detect
from .problems import DataError, Problem, Problems, skip_records

INFO = "dataset_info.json"
FAMILY = {"alpaca": "alpaca", "sharegpt": "sharegpt", "openai": "sharegpt"}
PRETRAIN_FIX = ("train it with stage: pt (continued pre-training: every token is trained, no chat template); "
                "`airlock data check PATH --stage pt` checks it as such")
LF_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
           "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}


@dataclass
class Loaded:
    conversations: list[Conversation]
    format: str  # alpaca | sharegpt (OpenAI-style messages are ShareGPT with other tags); "alpaca+sharegpt" if both
    files: list[Path]
    sha256: str  # of the file bytes (one file: what `sha256sum FILE` prints)
    records: int = 0
    file_formats: dict[str, str] = field(default_factory=dict)  # file -> alpaca | sharegpt | openai
    problems: list[Problem] = field(default_factory=list)  # warnings (errors raise DataError)
    unused: list[Unused] = field(default_factory=list)  # columns no format reads (see columns.refuse_unused)
    num_samples: dict[str, int] = field(default_factory=dict)  # dataset key -> num_samples from dataset_info.json

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def load_conversations(path, format: str = "auto", dataset: str | None = None, stage: str | None = None,
                       skip: int = 0) -> Loaded:
    """Every record of `path` as a Conversation; raises DataError listing every problem when any is an error.
    `stage` reads it as that training stage does (pairs for dpo only, as LLaMA-Factory); None reads any data.
    `skip` (data.skip_invalid_records): up to that many broken records are left out, counted and named."""
    loaded = scan(path, format, dataset, stage, skip)
    if any(p.severity == "error" for p in loaded.problems):
        raise DataError(loaded.problems)
    return loaded


def scan(path, format: str = "auto", dataset: str | None = None, stage: str | None = None, skip: int = 0) -> Loaded:
    """Like load_conversations but never raises for bad data: problems (errors too) are in `.problems`."""
    problems = Problems()
    path = Path(path).expanduser()
    plain = not (path.is_dir() or path.name == INFO)  # a bare file: no dataset_info.json says "ranking"
    sources = sources_of(path, format, dataset, problems)
    conversations, files, file_formats, records = [], [], {}, 0
    tally = Tally()
    for file, columns in sources:
        files.append(file)
        if file.suffix.lower() == ".txt":  # raw text has no conversations to read: it is pre-training data
            problems.error(file, "a .txt file is raw text (pre-training data), not conversations",
                           fix=PRETRAIN_FIX + "; if it holds JSON records, one a line, name it .jsonl")
            continue
        rows = read_records(file, problems)
        records += len(rows)
        if plain and any(columns.chosen in rec and columns.rejected in rec for _, rec in rows):
            # Preference pairs in a bare file: read them as ranking data rather than complain that the
            # prompt has no answer (the answers are in chosen/rejected).
            columns = replace(columns, ranking=True)
        text_key = text_only(rows, columns)
        if text_key:  # one error naming what the data is, not one "missing field 'output'" per record
            problems.error(file, f"the {len(rows)} record(s) hold text ('{text_key}') and no answers: this is "
                                 "pre-training data", field=text_key,
                           fix=PRETRAIN_FIX + "; if the records are conversations, map the answer column "
                               "(dataset_info.json columns.response)")
            continue
        columns = _stage_columns(columns, stage, rows, plain, file, problems)
        if columns is None:
            continue
        fmt = _file_format(file, rows, columns, format, problems)
        if fmt is None:
            continue
        file_formats[str(file)] = fmt
        for where, rec in rows:
            rec_fmt = detect(rec, columns)
            if rec_fmt is None:
                # Neither format's fields: convert it as the file's format so the missing field is named.
                key = columns.messages or ("conversations" if fmt == "sharegpt" else "messages")
                convert(rec, FAMILY[fmt], replace(columns, messages=key), problems, file, where)
                continue
            if FAMILY[rec_fmt] != FAMILY[fmt] or (rec_fmt != fmt and columns.formatting == "auto"):
                problems.error(file, f"record is {rec_fmt} but the file is mostly {fmt} (mixed formats in one file)",
                               where, fix="keep one format per file: convert this record or move it to its own file")
                continue
            tally.add(rec, FAMILY[fmt], columns, file, where)
            conv = convert(rec, FAMILY[fmt], columns, problems, file, where)
            if conv is not None:
                conv.dataset = columns.dataset
                conversations.append(conv)
    unused = tally.report(problems, records)
    families = sorted({FAMILY[f] for f in file_formats.values()})
    num_samples = {c.dataset: c.num_samples for _, c in sources if c.num_samples is not None}
    return Loaded(conversations, "+".join(families) or "unknown", files,
                  sha256_of_files([f for f in files if f.is_file()]), records, file_formats,
                  skip_records(problems.items, skip), unused, num_samples)


def text_only(rows, columns: Columns) -> str | None:
    """The key holding the text when no record has anything but a document (pre-training data), else None: a
    plain file's "text", or a dataset_info.json entry's prompt column (LLaMA-Factory's pt entries map prompt: text)."""
    if not rows or columns.formatting == "sharegpt" or columns.ranking:
        return None
    keys = set().union(*(rec.keys() for _, rec in rows))
    if keys & {"conversations", "messages", columns.response, columns.chosen, columns.rejected}:
        return None
    key = columns.prompt if columns.dataset else "text"
    return key if key in keys else None


def _stage_columns(columns: Columns, stage: str, rows, plain: bool, file, problems: Problems) -> Columns | None:
    """The columns as `stage` reads them (None when the file cannot be read for it). KTO's label is read by stage
    kto only; elsewhere it is a column left out, counted and refused like any other unless ignored."""
    if stage != "kto":
        if columns.kto_tag:
            columns = replace(columns, kto_tag="", unread={**columns.unread, "kto_tag": columns.kto_tag})
        # as LLaMA-Factory: pairs are read by the preference stage only, and it reads nothing else
        if stage == "dpo" and not columns.ranking:
            problems.error(file, "no chosen/rejected pairs: stage dpo learns from preference pairs",
                           fix="give records with \"chosen\" and \"rejected\" answers (in dataset_info.json: "
                               "\"ranking\": true), or train these conversations with stage: sft")
            return None
        if stage == "sft" and columns.ranking:
            problems.error(file, f"chosen/rejected pairs are preference data: stage {stage} would learn from the "
                                 "chosen answers only (LLaMA-Factory refuses them too: \"not applicable in the "
                                 "current training stage\")",
                           fix="train the pairs with stage: dpo, or give this stage conversations that end with "
                               "the answer to learn")
            return None
        return columns
    if plain and not columns.kto_tag:  # a bare file: the label under LLaMA-Factory's name or trl's ("label")
        found = [k for k in ("kto_tag", "label") if any(k in rec for _, rec in rows)]
        columns = replace(columns, kto_tag=found[0] if found else "")
    if columns.ranking:
        problems.error(file, "chosen/rejected pairs are DPO data; stage kto reads single answers, each labelled",
                       fix="train the pairs with stage: dpo, or give KTO records: a conversation ending with the "
                           "answer and \"kto_tag\": true (desirable) or false (undesirable)")
        return None
    if not columns.kto_tag:
        problems.error(file, "no KTO label: stage kto needs each record's final answer marked desirable (true) or "
                             "undesirable (false)",
                       fix='add "kto_tag": true/false to every record, or map the label in dataset_info.json '
                           '("columns": {"messages": "messages", "kto_tag": "label"})')
        return None
    return columns


def _file_format(file: Path, rows, columns: Columns, asked: str, problems: Problems) -> str | None:
    """The file's format: the most common per-record format (ties go to the first record's)."""
    if not rows:
        return None
    counts = Counter(f for f in (detect(rec, columns) for _, rec in rows) if f)
    if not counts:
        problems.error(file, f"cannot tell the format: fields are {sorted(rows[0][1])}",
                       fix="use alpaca (instruction/input/output), sharegpt (conversations) or messages fields")
        return None
    fmt = counts.most_common(1)[0][0]
    # An explicit format makes detect() say yes to everything; judge the records by their own fields instead.
    natural = Counter(f for f in (detect(rec, replace(columns, formatting="auto")) for _, rec in rows) if f)
    if asked in ("alpaca", "sharegpt") and natural and FAMILY[natural.most_common(1)[0][0]] != asked:
        fmt = natural.most_common(1)[0][0]
        problems.error(file, f"the records are {fmt} but format '{asked}' was asked for",
                       fix="drop the format setting (auto detects it) or fix the records")
        return None
    if file.suffix.lower() in (".csv", ".parquet"):
        have = set(rows[0][1])
        if FAMILY[fmt] == "alpaca":
            need = [columns.prompt, columns.response] if not columns.ranking else [columns.prompt]
        else:
            need = [columns.messages] if columns.messages else []
        missing = [c for c in need if c not in have]
        if missing:
            problems.error(file, f"{file.suffix[1:].upper()} has no column {', '.join(repr(m) for m in missing)} "
                                 f"(columns: {', '.join(sorted(have))})", "header", ", ".join(missing),
                           fix=f"rename the columns to {', '.join(need)} or map them in dataset_info.json")
            return None
    return fmt


def sources_of(path: Path, fmt: str, dataset: str | None, problems: Problems) -> list[tuple[Path, Columns]]:
    """(file, columns) pairs to read: the file itself, or the dataset_info.json entries named by `dataset`."""
    if path.is_dir():
        info = path / INFO
        if not info.is_file():
            problems.error(path, f"directory has no {INFO}",
                           fix=f"name a data file ({', '.join(EXTENSIONS)}) or add a LLaMA-Factory {INFO}")
            return []
        return _info_sources(info, dataset, problems)
    if path.name == INFO:
        return _info_sources(path, dataset, problems)
    if not path.exists():
        problems.error(path, "file not found", fix="check the path (relative paths start at the current directory)")
        return []
    return [(path, Columns(formatting=fmt if fmt in ("alpaca", "sharegpt") else "auto"))]


def _info_sources(info: Path, dataset: str | None, problems: Problems) -> list[tuple[Path, Columns]]:
    try:
        entries = json.loads(info.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.error(info, f"bad JSON: {exc}", fix=f"fix the syntax of {INFO}")
        return []
    if not isinstance(entries, dict) or not entries:
        problems.error(info, "expected an object mapping dataset names to entries", fix='{"name": {"file_name": ...}}')
        return []
    if not dataset:
        if len(entries) > 1:
            problems.error(info, f"it lists {len(entries)} datasets; say which one",
                           fix=f"pass --dataset (data.dataset) with one of: {', '.join(entries)}")
            return []
        dataset = next(iter(entries))
    sources = []
    for key in (k.strip() for k in dataset.split(",") if k.strip()):
        if key not in entries:
            close = difflib.get_close_matches(key, list(entries), n=1, cutoff=0.5)
            problems.error(info, f"unknown dataset '{key}'", key,
                           fix=f"did you mean '{close[0]}'?" if close else f"known datasets: {', '.join(entries)}")
            continue
        sources += _entry_sources(info, key, entries[key], problems)
    return sources


def _entry_sources(info: Path, key: str, entry, problems: Problems) -> list[tuple[Path, Columns]]:
    if not isinstance(entry, dict):
        problems.error(info, "entry is not an object", key, fix='use {"file_name": "...", "formatting": "alpaca"}')
        return []
    if "file_name" not in entry:
        hub = next((k for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
                    if k in entry), None)
        problems.error(info, "no 'file_name'" + (f" (it is fetched over the network via {hub}; this host is offline)"
                                                  if hub else ""), key, "file_name",
                       fix="copy the data next to dataset_info.json and set file_name")
        return []
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt", "openai"):
        problems.error(info, f"formatting {formatting!r} is not alpaca, sharegpt or openai", key, "formatting")
        return []
    if not _entry_keys(info, key, entry, problems):
        return []
    # openai is ShareGPT's shape with OpenAI's spelling (messages, role/content): read by the same converter.
    columns = Columns(formatting="alpaca" if formatting == "alpaca" else "sharegpt",
                      ranking=bool(entry.get("ranking", False)), dataset=key, num_samples=entry.get("num_samples"))
    for name, value in (entry.get("columns") or {}).items():
        if COLUMNS.get(name, ("",))[0] == "supported":
            setattr(columns, name, value)
        elif name in COLUMNS:  # declared but not trained on: counted per record, refused unless ignored
            columns.unread[name] = value
        else:
            problems.warning(info, f"unknown column name '{name}' (LLaMA-Factory's names: {', '.join(COLUMNS)})",
                             key, f"columns.{name}", fix="rename it to the column it is, or remove it")
            columns.unread[name] = value
    unknown_tags = [t for t in entry.get("tags") or {} if t not in TAGS]
    if unknown_tags:
        problems.warning(info, f"unknown tag name(s) {', '.join(unknown_tags)} (LLaMA-Factory's names: "
                               f"{', '.join(TAGS)})", key, "tags", fix="rename or remove them")
    if formatting != "alpaca":
        default_key = "messages" if formatting == "openai" else "conversations"
        columns.messages = columns.messages or default_key
        if "tags" in entry:
            columns.tags = {**LF_TAGS, **entry["tags"]}
    target = info.parent / entry["file_name"]
    if not target.exists():
        problems.error(info, f"file_name points at a missing file: {target}", key, "file_name",
                       fix=f"put the file at {target} or correct file_name")
        return []
    files = (sorted(p for p in target.iterdir() if p.suffix.lower() in EXTENSIONS + (".txt",)) if target.is_dir()
             else [target])
    if not files:
        problems.error(info, f"folder {target} holds no data files", key, "file_name")
    return [(f, columns) for f in files]


def _entry_keys(info: Path, key: str, entry: dict, problems: Problems) -> bool:
    """Report entry keys Airlock does not act on; False when one makes the entry unreadable (a split)."""
    split = entry.get("split", "train")
    if split != "train":
        problems.error(info, f"split {split!r}: a local file has one split, train", key, "split",
                       fix="remove \"split\" (the file is read whole) or point file_name at that split's file")
        return False
    for name in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name"):
        if entry.get(name):  # LLaMA-Factory would download instead of reading file_name: say which one is read
            problems.warning(info, f"'{name}' is not used: the local file_name is read (LLaMA-Factory would "
                                   "download it; this host is offline)", key, name,
                             fix=f"remove \"{name}\" to silence this, after checking the local file is the same data")
    for name in ("subset", "folder"):
        if entry.get(name):
            problems.warning(info, f"'{name}' is ignored for a local file (LLaMA-Factory ignores it too)", key,
                             name, fix=f"remove \"{name}\" to silence this")
    for name in entry:
        if name not in ENTRY_KEYS:
            close = difflib.get_close_matches(name, list(ENTRY_KEYS), n=1, cutoff=0.6)
            problems.warning(info, f"unknown key '{name}' in the entry (not read)", key, name,
                             fix=f"did you mean '{close[0]}'?" if close else "remove it to silence this")
    samples = entry.get("num_samples")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        problems.error(info, f"num_samples {samples!r} is not a positive whole number", key, "num_samples",
                       fix="give how many records to draw from this dataset, or remove num_samples")
        return False
    return True


def sha256_of_files(files: list[Path]) -> str:
    if len(files) == 1:
        return sha256_file(files[0])
    lines = "".join(f"{sha256_file(f)}  {f.name}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()

"""Reading dataset files into raw records: .json (array), .jsonl, .csv, .parquet, byte-level checks first.

Each record comes with where it is ("line 7" for JSONL, "record 3 (line 12)" for JSON (0-based index),
"row 4 (line 5)" for CSV (1-based, after the header), "record 3" for parquet)
so every later problem can point at it. A BOM and CRLF line endings are accepted with a warning; bytes that are
not UTF-8 are an error that gives the byte offset and line and suggests iconv.
"""

import csv
import io
import json
from pathlib import Path

from .problems import Problems

EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
BOM = b"\xef\xbb\xbf"


def read_records(path: Path, problems: Problems) -> list[tuple[str, object]]:
    """[(where, record)] for one file; problems go to `problems` (no exception for bad content)."""
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        problems.error(path, f"unsupported file type '{path.suffix or '(no extension)'}'",
                       fix="use .jsonl (one JSON object per line), .json (a list), .csv or .parquet")
        return []
    if not path.is_file():
        problems.error(path, "file not found" if not path.exists() else "not a regular file",
                       fix="check the path (relative paths are taken from the current directory)")
        return []
    if ext == ".parquet":
        return _read_parquet(path, problems)
    text = decode(path, problems)
    if text is None:
        return []
    if ext == ".json":
        return _read_json(path, text, problems)
    if ext == ".csv":
        return _read_csv(path, text, problems)
    return _read_jsonl(path, text, problems)


def decode(path: Path, problems: Problems) -> str | None:
    """The file as text (UTF-8, BOM and CRLF accepted with a warning), or None with an error in `problems`."""
    data = path.read_bytes()
    if not data.strip() or data.strip() == BOM:
        what = "file is empty" if not data or data == BOM else "file holds only whitespace (no records)"
        problems.error(path, what, fix="write the training records into it (see `airlock data check --help`)")
        return None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        problems.error(path, "file is UTF-16 encoded, expected UTF-8",
                       fix=f"convert it: iconv -f UTF-16 -t UTF-8 '{path}' > '{path.stem}.utf8{path.suffix}'")
        return None
    if data.startswith(BOM):
        problems.warning(path, "file starts with a UTF-8 byte order mark (BOM); it is ignored",
                         fix="save as UTF-8 without BOM to silence this")
        data = data[len(BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.error(path, f"not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
                             f"(line {line}, column {column})", f"line {line}",
                       fix=f"convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8 '{path}' > '{path.stem}.utf8{path.suffix}'")
        return None
    if "\r\n" in text:
        if path.suffix.lower() != ".csv":  # CRLF is the standard CSV line ending (RFC 4180): nothing to warn
            problems.warning(path, "Windows line endings (CRLF); read as LF",
                             fix="convert with dos2unix to silence this")
        text = text.replace("\r\n", "\n")
    return text


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _read_jsonl(path: Path, text: str, problems: Problems) -> list[tuple[str, object]]:
    records = []
    if text.lstrip().startswith("["):  # a whole JSON array saved as .jsonl: one clear error, not one per line
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, list) and any(isinstance(x, dict) for x in whole):
            problems.error(path, f"the file is one JSON array of {len(whole)} records, not JSON Lines", "line 1",
                           fix="name the file .json, or write one object per line")
            return []
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if number - 1 < last:
                problems.warning(path, "blank line skipped", f"line {number}")
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            hint = "each line must be one complete JSON object"
            if number == 1 and line.lstrip().startswith("[") and path.suffix.lower() != ".json":
                hint = "this looks like a JSON array: name the file .json, or write one object per line"
            problems.error(path, f"bad JSON: {exc.msg} (line {number}, column {exc.colno})", f"line {number}",
                           fix=hint)
            continue
        if not isinstance(value, dict):
            problems.error(path, f"line is a JSON {json_kind(value)}, expected an object {{...}}", f"line {number}",
                           fix="write one record object per line")
            continue
        records.append((f"line {number}", value))
    return records


def json_kind(value) -> str:
    """What a parsed value is called in JSON terms (object, list, string, ...), for messages."""
    return {dict: "object", list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _read_json(path: Path, text: str, problems: Problems) -> list[tuple[str, object]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fix = "fix the JSON syntax at that position"
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            fix = "this looks like JSON Lines (one object per line): rename the file to .jsonl"
        problems.error(path, f"bad JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", f"line {exc.lineno}",
                       fix=fix)
        return []
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if len(data) == 1 and lists:  # {"data": [...]} wrappers are common
            problems.warning(path, f"records read from the top-level key '{lists[0]}'",
                             fix="store the list itself at the top level to silence this")
            data = data[lists[0]]
            return [(f"record {i}", rec) for i, rec in enumerate(data)]
        return [("record 0", data)]
    if not isinstance(data, list):
        problems.error(path, f"top-level JSON is a {json_kind(data)}, expected a list of records [{{...}}, ...]",
                       fix="wrap the records in a JSON array")
        return []
    starts = _element_lines(text)
    records = []
    for i, rec in enumerate(data):
        where = f"record {i} (line {starts[i]})" if i < len(starts) else f"record {i}"
        if not isinstance(rec, dict):
            problems.error(path, f"record is a JSON {json_kind(rec)}, expected an object {{...}}", where,
                           fix="make every element of the list an object")
            continue
        records.append((where, rec))
    return records


def _element_lines(text: str) -> list[int]:
    """Line number where each element of a top-level JSON array starts (the text is known to be valid JSON)."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    lines = []
    while True:
        while pos < len(text) and text[pos] in " \t\n\r,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return lines
        lines.append(_line_of(text, pos))
        _, pos = decoder.raw_decode(text, pos)


def _read_csv(path: Path, text: str, problems: Problems) -> list[tuple[str, object]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        problems.error(path, "CSV has no header row", fix="put the column names (instruction,input,output) first")
        return []
    records = []
    try:
        for i, row in enumerate(reader, start=1):
            where = f"row {i} (line {reader.line_num})"
            if None in row:  # more cells than header columns
                problems.error(path, f"row has {len(row[None])} more cell(s) than the header", where,
                               fix="quote cells that contain commas")
                continue
            records.append((where, {k: v for k, v in row.items() if v is not None}))
    except csv.Error as exc:
        problems.error(path, f"bad CSV: {exc}", f"line {reader.line_num}", fix="check quoting on that line")
    return records


def _read_parquet(path: Path, problems: Problems) -> list[tuple[str, object]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for damaged files; all mean the same to the user
        problems.error(path, f"parquet file unreadable: {exc}",
                       fix="re-export it (pandas.DataFrame.to_parquet) or use .jsonl")
        return []
    if not rows:
        problems.error(path, "file is empty (no rows)", fix="write the training records into it")
    return [(f"record {i}", row) for i, row in enumerate(rows)]


def columns_of(records: list[tuple[str, object]]) -> set[str]:
    return set(records[0][1]) if records else set()

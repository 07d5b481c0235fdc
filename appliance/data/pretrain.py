"""Pre-training text for stage pt: .txt files, {"text": ...} records and LLaMA-Factory's pt datasets -> documents,
then token rows in which every token is trained.

    from appliance.data.pretrain import load_documents, rows
    loaded = load_documents("corpus.txt")                     # one document a line, as LLaMA-Factory reads .txt
    examples, counts = rows(loaded.conversations, tokenizer, cutoff_len=512, policy="truncate")

prepare(cfg, tokenizer, stage="pt") (appliance/data/prepare.py) runs these between the steps every stage shares
(dedupe, num_samples / max_samples and mixing, the eval split, the tokenized cache); `airlock data check --stage pt`
reports on the same documents.

What a document is:
- in a .txt file, each line that is not blank. LLaMA-Factory reads .txt with Hugging Face's text loader, one row a
  line, blank lines included (each would train a lone EOS); here a blank line is skipped, with one warning a file.
- in a .jsonl/.json/.csv/.parquet record: its "text" in a plain file; in a dataset_info.json entry, the `prompt`
  column (LLaMA-Factory's pt datasets map `columns: {prompt: text}`), with the `query` column's text on a new line
  when a record has one, as LLaMA-Factory joins them. Any other key is a column left out, counted and refused
  like any other unless data.ignore_columns names it (appliance/data/columns.py).
Conversations, preference pairs and KTO-labelled data are not documents: such a dataset is refused, naming the
stage that reads it.

Tokens: the text as the tokenizer encodes it alone (no chat template; a BOS where the model's tokenizer adds one),
then the EOS token, so the model learns where a document ends; labels = input_ids, every token is trained. A
document longer than cutoff_len becomes consecutive rows of cutoff_len tokens (nothing is lost, as with
LLaMA-Factory's pt packing), or is dropped with cutoff_policy: drop. Packing, on by default for stage pt, then
fills each training row up to cutoff_len with whole rows of several documents.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import AirlockError
from .columns import Tally
from .files import decode, json_kind, read_records
from .formats import detect
from .load import Loaded, load_conversations, scan, sha256_of_files, sources_of
from .problems import DataError, Problems, skip_records

READ_BY = {"ranking": ("chosen/rejected preference pairs", "dpo"), "kto_tag": ("KTO-labelled answers", "kto"),
           "sharegpt": ("conversations", "sft")}


@dataclass
class Document:
    """One pre-training document. `dataset` is its dataset_info.json key ("" for a plain file): max_samples and
    mixing work per dataset. `messages`, `tools`, `chosen` and `rejected` let dedupe compare documents as
    conversations."""

    text: str
    source: str = ""
    dataset: str = ""
    tools = None
    chosen = None
    rejected = None

    @property
    def messages(self) -> list[dict]:
        return [{"role": "text", "content": self.text}]


def load_for_stage(stage: str, path, format: str = "auto", dataset: str | None = None, skip: int = 0) -> Loaded:
    """What a run of `stage` reads: documents for pt, conversations (with KTO's label for kto) otherwise; up to
    `skip` broken records left out (data.skip_invalid_records)."""
    return load_documents(path, dataset, skip) if stage == "pt" else load_conversations(path, format, dataset, stage,
                                                                                         skip)


def scan_for_stage(stage: str, path, format: str = "auto", dataset: str | None = None, skip: int = 0) -> Loaded:
    """load_for_stage, with the problems (errors too) in `.problems` instead of raised."""
    return scan_documents(path, dataset, skip) if stage == "pt" else scan(path, format, dataset, stage, skip)


def load_documents(path, dataset: str | None = None, skip: int = 0) -> Loaded:
    """Every document of `path` (Loaded.conversations holds Documents); raises DataError listing every problem."""
    loaded = scan_documents(path, dataset, skip)
    if any(p.severity == "error" for p in loaded.problems):
        raise DataError(loaded.problems)
    return loaded


def scan_documents(path, dataset: str | None = None, skip: int = 0) -> Loaded:
    """Like load_documents but never raises for bad data: problems (errors too) are in `.problems`."""
    problems = Problems()
    sources = sources_of(Path(path).expanduser(), "auto", dataset, problems)
    documents, files, records, tally = [], [], 0, Tally()
    for file, columns in sources:
        files.append(file)
        kind = ("ranking" if columns.ranking else "kto_tag" if columns.kto_tag else
                "sharegpt" if columns.formatting == "sharegpt" else None)
        if kind:
            what, stage = READ_BY[kind]
            problems.error(file, f"dataset '{columns.dataset}' holds {what}, not plain text", field=kind,
                           fix=f"train it with stage: {stage}; stage pt reads documents (a .txt file, or records "
                               "with a \"text\" column: dataset_info.json \"columns\": {\"prompt\": \"text\"})")
            continue
        if file.suffix.lower() == ".txt":
            found, lines = _lines(file, problems, columns.dataset)
            documents += found
            records += lines
            continue
        rows = read_records(file, problems)
        records += len(rows)
        # A plain file keeps its document in "text"; a dataset_info.json entry names it as the prompt column.
        text_columns = replace(columns, prompt=columns.prompt if columns.dataset else "text")
        shape = _conversations(rows, text_columns)
        if shape:  # one error saying what the data is, not one "missing field 'text'" per record
            problems.error(file, f"the records are {shape} conversations, not plain text", field=text_columns.prompt,
                           fix="train them with stage: sft (or dpo / kto for preference data); stage pt reads "
                               "documents: a .txt file, or records with a \"text\" column")
            continue
        for where, rec in rows:
            tally.add(rec, "text", text_columns, file, where)
            text = _document(rec, text_columns, problems, file, where)
            if text is not None:
                documents.append(Document(text, f"{file}:{where}", columns.dataset))
    unused = tally.report(problems, records)
    num_samples = {c.dataset: c.num_samples for _, c in sources if c.num_samples is not None}
    return Loaded(documents, "text", files, sha256_of_files([f for f in files if f.is_file()]), records,
                  {str(f): "text" for f in files}, skip_records(problems.items, skip), unused, num_samples)


def _conversations(rows, columns) -> str | None:
    """The format (alpaca, sharegpt, openai) when no record has the text column but the records are conversations."""
    if not rows or any(columns.prompt in rec for _, rec in rows):
        return None
    found = {detect(rec, replace(columns, formatting="auto")) for _, rec in rows} - {None}
    return "/".join(sorted(found)) or None


def _lines(file: Path, problems: Problems, dataset: str) -> tuple[list[Document], int]:
    """(the documents of a .txt file, how many lines it has): one document a line, blank lines skipped."""
    text = decode(file, problems)
    if text is None:
        return [], 0
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another
    documents = [Document(line, f"{file}:line {n}", dataset) for n, line in enumerate(lines, start=1) if line.strip()]
    blank = len(lines) - len(documents)
    if blank:
        problems.warning(file, f"{blank} blank line(s) skipped: a .txt file is read as one document a line",
                         fix="nothing to do (LLaMA-Factory would train each blank line as a lone EOS); remove them "
                             "to silence this")
    return documents, len(lines)


def _document(rec: dict, c, problems: Problems, file, where) -> str | None:
    """The document of one record: the text column, and the query column on a new line when there is one."""
    parts = []
    for name, required in ((c.prompt, True), (c.query, False)):
        value = rec.get(name)
        if value is None:
            if required:
                problems.error(file, f"missing field '{name}'", where, name,
                               fix=f'add the document as "{name}": "..."')
                return None
            continue
        if not isinstance(value, str):
            problems.error(file, f"'{name}' is a {json_kind(value)}, expected text", where, name,
                           fix=f"make \"{name}\" a single string")
            return None
        if value:
            parts.append(value.replace("\r\n", "\n"))
    text = "\n".join(parts)
    if not text.strip():
        problems.error(file, "empty document", where, c.prompt, fix="write the text or remove the record")
        return None
    return text


def document_ids(text: str, tokenizer) -> list[int]:
    """The document's tokens with the tokenizer's own special tokens (a BOS where it adds one), ending with EOS."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise AirlockError("the tokenizer has no end-of-sequence token, so documents could not be told apart",
                           where=str(getattr(tokenizer, "name_or_path", "tokenizer")),
                           fix="set eos_token in the model's tokenizer_config.json")
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    return ids if ids and ids[-1] == eos else ids + [eos]


def rows(documents: list, tokenizer, cutoff_len: int, policy: str) -> tuple[list[dict], dict]:
    """{"input_ids", "labels"} rows of at most cutoff_len tokens, every token labelled; counts say what the cutoff
    did: documents split into several rows (or dropped with policy "drop"), and tails too short to train on."""
    examples, counts = [], {"split_documents": 0, "dropped_too_long": 0, "dropped_nothing_to_learn": 0}
    for doc in documents:
        ids = document_ids(doc.text, tokenizer)
        if len(ids) > cutoff_len:
            if policy == "drop":
                counts["dropped_too_long"] += 1
                continue
            counts["split_documents"] += 1
        for start in range(0, len(ids), cutoff_len):
            piece = ids[start:start + cutoff_len]
            if len(piece) < 2:  # a row's first token is never predicted: one token alone trains nothing
                counts["dropped_nothing_to_learn"] += 1
                continue
            examples.append({"input_ids": piece, "labels": list(piece)})
    return examples, counts

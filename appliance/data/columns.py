"""Dataset columns training does not read: each one counted and named, and training refused until it is accepted.

LLaMA-Factory's dataset_info.json can declare columns Airlock does not train on (images, videos, audios; kto_tag
outside stage kto; tools beside alpaca records), and records often carry keys no format reads (an "id", a
"source", a message's "weight"). Nothing is dropped in silence: while loading, `Tally` counts the records that
carry a value in each such column; `airlock data check` prints one warning per column (how many records, why,
what to do), and `refuse_unused` stops training unless data.ignore_columns names the column, so leaving it out is
a decision someone made.

The tables below (LLaMA-Factory's dataset_info.json entry keys, columns and tags, each with what Airlock does with
it) are also the source of docs/llamafactory.md.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AirlockError
from .formats import Columns
from .problems import Problems

MEDIA = ("Airlock trains text-only models: the media would be left out, and placeholders such as <image> stay "
         "in the text as written")

# dataset_info.json "columns": LLaMA-Factory name -> (status, what Airlock does with it)
COLUMNS = {
    "prompt": ("supported", "alpaca: the instruction, the user's turn; stage pt: the document's text (LLaMA-Factory's "
                            "pre-training datasets map it: prompt: text)"),
    "query": ("supported", "alpaca: added to the instruction on a new line"),
    "response": ("supported", "alpaca: the answer"),
    "history": ("supported", "alpaca: earlier [question, answer] pairs (read as \"history\" even when unmapped)"),
    "messages": ("supported", "sharegpt/openai: the list of turns"),
    "system": ("supported", "the system prompt (read as \"system\" even when unmapped)"),
    "chosen": ("supported", "preference data (\"ranking\": true): the preferred answer"),
    "rejected": ("supported", "preference data (\"ranking\": true): the rejected answer"),
    "tools": ("supported", "sharegpt/openai: the tool definitions (a JSON list of function schemas), rendered by the "
                          "chat template with the function_call / observation turns; stage sft only (dpo and kto "
                          "refuse tool use), and the template must render tools"),
    "images": ("refused", MEDIA),
    "videos": ("refused", MEDIA),
    "audios": ("refused", MEDIA),
    "kto_tag": ("supported", "stage kto: true marks the final answer desirable, false undesirable; any other stage "
                            "refuses a dataset carrying it unless data.ignore_columns names it"),
}
# Columns only some formats read: name -> why a record of another format carrying it is counted as left out
FORMAT_ONLY = {
    "tools": "tool definitions are read with sharegpt/openai records, whose turns hold the tool calls; an alpaca "
             "record has no turn to call a tool in",
}
# Columns only some stages read: name -> why another stage must not leave it out unasked
STAGE_ONLY = {
    "kto_tag": "KTO's desirable/undesirable label, read by stage kto only: another stage would train the undesirable "
               "answers as if they were good ones",
}
REFUSED_COLUMNS = tuple(k for k, (status, _) in COLUMNS.items() if status == "refused")

# dataset_info.json "tags" (sharegpt): name -> (status, what Airlock does with it)
TAGS = {
    "role_tag": ("supported", "the key naming who speaks"),
    "content_tag": ("supported", "the key holding the text"),
    "user_tag": ("supported", "the user's role name"),
    "assistant_tag": ("supported", "the assistant's role name"),
    "system_tag": ("supported", "the system role name"),
    "observation_tag": ("supported", "a tool's result (role tool; masked, not trained); stages dpo and kto refuse "
                                     "such turns by name"),
    "function_tag": ("supported", "a tool call (an assistant turn with tool_calls; trained); stages dpo and kto "
                                  "refuse such turns by name"),
}

HUB = ("{}; this host is offline: an entry without file_name is an error, and beside file_name it is not used "
       "(a warning says the local file is read)")

# dataset_info.json entry keys: name -> (status, what Airlock does with it)
ENTRY_KEYS = {
    "file_name": ("supported", "a file or a folder of files beside dataset_info.json (.txt: raw text, one document "
                               "a line, for stage pt)"),
    "formatting": ("supported", "alpaca, sharegpt or openai (OpenAI-style role/content messages)"),
    "ranking": ("supported", "preference pairs for stage dpo (stages pt and kto refuse them)"),
    "columns": ("supported", "see the columns table"),
    "tags": ("supported", "see the tags table"),
    "num_samples": ("supported", "draws N records from the dataset (each once before any repeats, seeded by "
                                 "data.seed), before max_samples"),
    "split": ("refused", "a local file has one split, train: any other value is an error"),
    "subset": ("not needed", "LLaMA-Factory ignores it for local files too (a warning says so)"),
    "folder": ("not needed", "LLaMA-Factory ignores it for local files too (a warning says so)"),
    "hf_hub_url": ("refused", HUB.format("downloads the data from a hub")),
    "ms_hub_url": ("refused", HUB.format("downloads the data from a hub")),
    "om_hub_url": ("refused", HUB.format("downloads the data from a hub")),
    "script_url": ("refused", HUB.format("runs a loading script that downloads data")),
    "cloud_file_name": ("refused", HUB.format("reads the data from cloud storage")),
}

# What a user can do about each LLaMA-Factory column Airlock does not read (unknown keys get UNKNOWN_TODO).
TODO = {
    "tools": "write tool-calling data as sharegpt (function_call / observation turns) or openai (tool_calls) records",
    "images": "train on the text alone",
    "videos": "train on the text alone",
    "audios": "train on the text alone",
    "kto_tag": "train with stage: kto, which reads the label; for SFT keep only the desirable records",
}
UNKNOWN_TODO = "if it holds training text, map it in dataset_info.json \"columns\"; otherwise nothing is lost"


@dataclass
class Unused:
    """One column no format reads: `name` is what data.ignore_columns says (a LLaMA-Factory column or the key)."""

    name: str
    key: str
    records: int = 0
    first: str = ""  # where the first record carrying it is ("file: line 3")
    files: set = field(default_factory=set)

    @property
    def reason(self) -> str:
        if self.name in STAGE_ONLY:
            return STAGE_ONLY[self.name]
        if self.name in FORMAT_ONLY:
            return FORMAT_ONLY[self.name]
        known = COLUMNS.get(self.name)
        return known[1] if known and known[0] == "refused" else "no format reads this key"

    @property
    def todo(self) -> str:
        return TODO.get(self.name, UNKNOWN_TODO)


def carries(value) -> bool:
    """Whether a cell holds something (CSV and parquet give every row every column, most of them empty)."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() not in ("", "[]", "{}", "null")
    if isinstance(value, (list, dict, tuple)):
        return len(value) > 0
    return True


class Tally:
    """Counts, per column, the records carrying a value that the format they are read as does not use."""

    def __init__(self):
        self.columns: dict[str, Unused] = {}
        self.records = 0

    def add(self, rec: dict, family: str, columns: Columns, file, where) -> None:
        self.records += 1
        used = _used(rec, family, columns)
        names = {key: name for name, key in columns.unread.items()}
        seen = set()
        for key, value in rec.items():
            if key not in used and carries(value):
                seen.add((names.get(key, key), key))
        mkey = columns.messages or ("messages" if "messages" in rec else "conversations")
        if family == "sharegpt" and isinstance(rec.get(mkey), list):
            for turn in rec[mkey]:
                if isinstance(turn, dict):
                    turn_used = _turn_keys(turn, columns)
                    seen |= {(f"{mkey}[].{k}",) * 2 for k, v in turn.items() if k not in turn_used and carries(v)}
        for name, key in seen:
            item = self.columns.setdefault(name, Unused(name, key, first=f"{file}: {where}"))
            item.records += 1
            item.files.add(str(file))

    def report(self, problems: Problems, total: int) -> list[Unused]:
        """One warning per column into `problems`; returns the columns, most common first."""
        items = sorted(self.columns.values(), key=lambda u: (-u.records, u.name))
        for u in items:
            key = f" (key '{u.key}')" if u.key != u.name else ""
            file = next(iter(u.files)) if len(u.files) == 1 else str(Path(next(iter(u.files))).parent)
            problems.warning(file, f"column '{u.name}'{key} is not used for training: {u.records} of {total} "
                                   f"record(s) carry it, first at {u.first}; {u.reason}", field=u.name,
                             fix=f"{u.todo}; to train without it, add it to data.ignore_columns "
                                 f"(--set data.ignore_columns={u.name}), or remove it from the data")
        return items


def _used(rec: dict, family: str, c: Columns) -> set:
    """The record keys the format reads (family "text": a pre-training document, appliance/data/pretrain.py)."""
    if family == "text":
        return {c.prompt, c.query}
    if family == "alpaca":
        keys = {c.prompt, c.query, c.response, c.history, c.system}
    else:
        keys = {c.messages or ("messages" if "messages" in rec else "conversations"), c.system, c.tools}
    if c.ranking:
        keys |= {c.chosen, c.rejected}
    if c.kto_tag:
        keys.add(c.kto_tag)
    return keys


def _turn_keys(turn: dict, c: Columns) -> set:
    """The keys of one message the format reads, tool-call keys included (appliance/data/tools.py)."""
    if c.tags is not None:
        keys = {c.tags.get("role_tag", "from"), c.tags.get("content_tag", "value")}
    else:
        keys = {"from", "value"} if "from" in turn or "value" in turn else {"role", "content"}
    return keys | {"tool_calls", "function_call", "tool_call_id", "name"}


def refuse_unused(unused: list[Unused], ignore: list[str], where: str) -> None:
    """Stop training when a column would be left out that data.ignore_columns does not name."""
    left = [u for u in unused if u.name not in ignore and u.key not in ignore]
    if not left:
        return
    names = ", ".join(f"'{u.name}' ({u.records} record(s); {u.reason})" for u in left)
    accept = ",".join(u.name for u in left)
    raise AirlockError(f"the data has {len(left)} column(s) training would leave out: {names}", where=where,
                       fix=f"to train without them, set data.ignore_columns: [{accept}] (--set "
                           f"data.ignore_columns={accept}); or remove them from the data. `airlock data check` "
                           "explains each")

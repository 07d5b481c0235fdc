"""Alpaca and ShareGPT records -> Conversation, with every problem in a record reported by field.

Formats (as LLaMA-Factory defines them; `Columns` holds its dataset_info.json column and tag names):
- alpaca:   {"instruction", "input", "output", "system"?, "history"?: [[q, a], ...]}
- sharegpt: {"conversations": [{"from": "human"|"gpt"|"system", "value"}], "system"?}
- openai:   {"messages": [{"role": "system"|"user"|"assistant", "content"}]} (ShareGPT with other tags)
Preference data ("ranking") adds "chosen"/"rejected" (alpaca: strings; sharegpt: one message each).
KTO data (stage kto) adds a boolean label in the `kto_tag` column: true = the final answer is desirable.
Tool calling (a "tools" column, function_call / observation turns, OpenAI's tool_calls and role "tool") is read
into transformers' chat format for SFT (appliance/data/tools.py); DPO and KTO refuse it by name. Non-text content
is refused with the cause named (appliance/data/turns.py); a content list of text parts is joined.
"""

import json
from dataclasses import dataclass, field

from .conversation import Conversation
from .files import json_kind
from .problems import Problems
from .tools import TOOL_STAGE_FIX, call_message, describe, parse_tools, result_message, tool_kind
from .turns import message_text, not_text

FORMATS = ("alpaca", "sharegpt", "openai")
OPENAI_ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = ("system", "human", "gpt")


@dataclass
class Columns:
    """Field names of one dataset (LLaMA-Factory's `columns` and `tags`); the defaults are the standard ones."""

    formatting: str = "auto"  # alpaca | sharegpt | auto (detect per record)
    ranking: bool = False
    prompt: str = "instruction"
    query: str = "input"
    response: str = "output"
    system: str = "system"
    history: str = "history"
    messages: str = ""  # "" = "conversations" or "messages", whichever the record has
    chosen: str = "chosen"
    rejected: str = "rejected"
    kto_tag: str = ""  # the key of KTO's desirable/undesirable label; "" = not read (only stage kto reads it)
    tools: str = "tools"  # sharegpt/openai: the tool definitions (a JSON list of function schemas)
    # None = accept both spellings (from/value with human/gpt, role/content with user/assistant)
    tags: dict | None = None
    # What the dataset_info.json entry says beyond the fields read: its key ("" for a plain file), the columns
    # it declares that Airlock does not train on ({"images": "images", "tools": "tools"}), and num_samples.
    dataset: str = ""
    unread: dict = field(default_factory=dict)
    num_samples: int | None = None

    def role_map(self) -> dict[str, str]:
        """Role name in the file -> the slot it speaks in (system/user/assistant); tool roles are read earlier."""
        if self.tags is None:
            return {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
        t = self.tags
        return {t.get("user_tag", "human"): "user", t.get("assistant_tag", "gpt"): "assistant",
                t.get("system_tag", "system"): "system"}


def detect(record: dict, columns: Columns) -> str | None:
    """alpaca | sharegpt | openai for one record, or None when it looks like none of them."""
    if columns.formatting == "alpaca":
        return "alpaca"
    keys = [columns.messages] if columns.messages else ["conversations", "messages"]
    for key in keys:
        if key in record:
            if columns.messages or key == "conversations":
                return "sharegpt"
            turns = record[key]
            first = turns[0] if isinstance(turns, list) and turns and isinstance(turns[0], dict) else {}
            return "sharegpt" if "from" in first else "openai"
    if columns.formatting == "sharegpt":
        return "sharegpt"
    if any(k in record for k in (columns.prompt, columns.response, columns.query)):
        return "alpaca"
    return None


def _text(value, problems: Problems, file, where, name, *, required=True, kind="text") -> str | None:
    """A string field: None/missing/non-string are reported; returns the text with CRLF normalized."""
    if value is None:
        if required:
            problems.error(file, f"missing field '{name}'", where, name, fix=f"add the {kind} as \"{name}\": \"...\"")
        return None
    if isinstance(value, str):
        return value.replace("\r\n", "\n")
    return not_text(value, problems, file, where, name)


def _check_order(messages: list[dict], problems: Problems, file, where, field_of, ranking: bool) -> None:
    """system? then user/assistant alternating, starting with user and (unless ranking) ending with assistant."""
    expected = "user"
    for i, msg in enumerate(messages):
        role = msg["role"]
        if role == "tool":
            # A tool's result answers the tool call before it (several results follow parallel calls); in the
            # alternation it stands where the user would.
            before = messages[i - 1] if i else {}
            if before.get("role") == "tool":
                continue
            if not before.get("tool_calls"):
                problems.error(file, "a tool's result with no tool call before it", where, field_of(i),
                               fix="put the function_call (assistant tool_calls) turn before the result")
            expected = "assistant"
            continue
        if role == "system":
            if i != 0:
                problems.error(file, "system message after the conversation started", where, field_of(i),
                               fix="move the system message to the first position (or into the 'system' field)")
            continue
        if role != expected:
            if role == "assistant" and not any(m["role"] == "user" for m in messages[:i]):
                msg_text = "conversation starts with an assistant turn"
                fix = "start with a user turn (the question the assistant answers)"
            else:
                msg_text = f"two {role} turns in a row"
                fix = "alternate user and assistant turns; merge or remove the extra turn"
            problems.error(file, msg_text, where, field_of(i), fix=fix)
            expected = "assistant" if role == "user" else "user"
            continue
        expected = "assistant" if role == "user" else "user"
    non_system = [m for m in messages if m["role"] != "system"]
    if not non_system:
        problems.error(file, "conversation has no user or assistant turns", where, field_of(None),
                       fix="add a user turn and the assistant's answer")
    elif ranking:
        if non_system[-1]["role"] != "user":
            problems.error(file, "a preference record's conversation must end with the user turn", where,
                           field_of(len(messages) - 1), fix="put the candidate answers in chosen/rejected only")
    elif non_system[-1]["role"] == "tool":
        problems.error(file, "conversation ends with a tool's result (there is no answer to learn)", where,
                       field_of(len(messages) - 1), fix="add the assistant's answer or the next tool call")
    elif non_system[-1]["role"] != "assistant":
        problems.error(file, "conversation ends with a user turn (there is no answer to learn)", where,
                       field_of(len(messages) - 1), fix="add the assistant's answer or remove the last user turn")


def _check_empty(messages, problems, file, where, field_of) -> None:
    for i, msg in enumerate(messages):
        if msg["content"].strip() or msg.get("tool_calls") or msg["role"] == "tool":
            continue
        if msg["role"] == "assistant":
            problems.error(file, "empty answer", where, field_of(i), fix="write the answer or remove the record")
        elif msg["role"] == "user":
            problems.error(file, "empty prompt", where, field_of(i), fix="write the question or remove the record")


def from_alpaca(rec: dict, columns: Columns, problems: Problems, file, where) -> Conversation | None:
    c = columns
    before = len(problems.errors)
    messages = []
    system = _text(rec.get(c.system), problems, file, where, c.system, required=False)
    if system:
        messages.append({"role": "system", "content": system})
    history = rec.get(c.history)
    if isinstance(history, str) and history.strip().startswith("["):  # CSV cells hold JSON text
        try:
            history = json.loads(history)
        except json.JSONDecodeError:
            pass
    if history not in (None, "", []):
        if not isinstance(history, list):
            problems.error(file, f"'{c.history}' is a {json_kind(history)}, expected a list of [question, answer]",
                           where, c.history, fix='use "history": [["earlier question", "earlier answer"], ...]')
        else:
            for i, pair in enumerate(history):
                name = f"{c.history}[{i}]"
                if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                    problems.error(file, "a history entry must be a [question, answer] pair", where, name,
                                   fix='use ["earlier question", "earlier answer"]')
                    continue
                q = _text(pair[0], problems, file, where, f"{name}[0]")
                a = _text(pair[1], problems, file, where, f"{name}[1]")
                if q is not None and a is not None:
                    messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    if c.prompt not in rec and c.query not in rec:
        problems.error(file, f"missing field '{c.prompt}'", where, c.prompt,
                       fix=f'add the question as "{c.prompt}": "..."')
        instruction = None
    else:
        instruction = _text(rec.get(c.prompt, ""), problems, file, where, c.prompt)
    query = _text(rec.get(c.query), problems, file, where, c.query, required=False)
    if instruction is not None:
        prompt = "\n".join(p for p in (instruction, query) if p and p.strip()) if query else instruction
        if not prompt.strip():
            problems.error(file, "empty prompt (instruction and input are both empty)", where, c.prompt,
                           fix="write the question in 'instruction' or remove the record")
        else:
            messages.append({"role": "user", "content": prompt})
    chosen = rejected = None
    if c.ranking:
        response = rec.get(c.response)
        if c.chosen not in rec and isinstance(response, list) and len(response) == 2:
            chosen_v, rejected_v = response  # older LLaMA-Factory files: output = [chosen, rejected]
        else:
            chosen_v, rejected_v = rec.get(c.chosen), rec.get(c.rejected)
        chosen = _text(chosen_v, problems, file, where, c.chosen)
        rejected = _text(rejected_v, problems, file, where, c.rejected)
        for name, value in ((c.chosen, chosen), (c.rejected, rejected)):
            if value is not None and not value.strip():
                problems.error(file, "empty answer", where, name, fix="write the answer or remove the record")
    else:
        response = rec.get(c.response)
        if isinstance(response, list):
            problems.error(file, f"'{c.response}' is a list, expected text", where, c.response,
                           fix="give one answer as a string (for preference pairs use chosen/rejected with "
                               "\"ranking\": true in dataset_info.json)")
        else:
            answer = _text(response, problems, file, where, c.response, kind="answer")
            if answer is not None:
                if not answer.strip():
                    problems.error(file, "empty answer", where, c.response,
                                   fix="write the answer or remove the record")
                else:
                    messages.append({"role": "assistant", "content": answer})
    desirable = kto_label(rec, c, problems, file, where)
    if len(problems.errors) > before:
        return None
    return Conversation(messages, source=f"{file}:{where}", chosen=chosen, rejected=rejected, kto_tag=desirable)


def from_sharegpt(rec: dict, columns: Columns, problems: Problems, file, where) -> Conversation | None:
    c = columns
    before = len(problems.errors)
    key = c.messages or ("messages" if "messages" in rec else "conversations")
    turns = rec.get(key)
    if isinstance(turns, str) and turns.strip().startswith("["):  # CSV/parquet cells may hold JSON text
        try:
            turns = json.loads(turns)
        except json.JSONDecodeError as exc:
            problems.error(file, f"'{key}' holds text that is not valid JSON ({exc.msg})", where, key)
            return None
    if turns is None:
        problems.error(file, f"missing field '{key}'", where, key,
                       fix=f'add "{key}": [{{"from": "human", "value": "..."}}, {{"from": "gpt", "value": "..."}}]')
        return None
    if not isinstance(turns, list):
        problems.error(file, f"'{key}' is a {json_kind(turns)}, expected a list of messages", where, key,
                       fix=f'use "{key}": [{{"from": "human", "value": "..."}}, ...]')
        return None
    if not turns:
        problems.error(file, f"'{key}' is empty", where, key, fix="add the turns or remove the record")
        return None
    roles = c.role_map()
    messages: list[dict] = []
    positions: list[int] = []  # index in the file's list for each message (for field names)
    system = _text(rec.get(c.system), problems, file, where, c.system, required=False)
    if system:
        messages.append({"role": "system", "content": system})
        positions.append(-1)
    for i, turn in enumerate(turns):
        name = f"{key}[{i}]"
        if not isinstance(turn, dict):
            problems.error(file, f"a message is a {json_kind(turn)}, expected an object", where, name,
                           fix='use {"from": "human", "value": "..."}')
            continue
        role_tag, content_tag = _tags(turn, c)
        role = turn.get(role_tag)
        if role is None:
            problems.error(file, f"message has no '{role_tag}' (who is speaking)", where, name,
                           fix=f"add \"{role_tag}\": one of {', '.join(sorted(roles))}")
            continue
        kind = tool_kind(turn, role, c.tags)
        if kind and (c.ranking or c.kto_tag):  # one refusal names the cause; the rest is the same exchange
            problems.error(file, f"{describe(turn, role)}; {'DPO' if c.ranking else 'KTO'} does not train tool use",
                           where, f"{name}.{role_tag}", fix=TOOL_STAGE_FIX)
            return None
        if kind:
            msg = _tool_message(turn, kind, role, content_tag, problems, file, where, name)
            if msg is not None:
                messages.append(msg)
                positions.append(i)
            continue
        if role not in roles:
            # Name the roles of the spelling this record uses (OpenAI role/content or ShareGPT from/value).
            known = sorted(roles) if c.tags is not None else OPENAI_ROLES if role_tag == "role" else SHAREGPT_ROLES
            problems.error(file, f"unknown role {role!r}", where, f"{name}.{role_tag}",
                           fix=f"use one of: {', '.join(known)}")
            continue
        content = message_text(turn.get(content_tag), content_tag in turn, problems, file, where,
                                f"{name}.{content_tag}")
        if content is None:
            continue
        if roles[role] == "system" and not content.strip():
            problems.warning(file, "empty system message (left out)", where, name)
            continue
        messages.append({"role": roles[role], "content": content})
        positions.append(i)

    def field_of(i):
        if i is None or i >= len(positions):
            return key
        return c.system if positions[i] < 0 else f"{key}[{positions[i]}]"

    tools = parse_tools(rec.get(c.tools), problems, file, where, c.tools)
    if tools and (c.ranking or c.kto_tag):
        problems.error(file, f"the record has tool definitions ('{c.tools}'); {'DPO' if c.ranking else 'KTO'} does "
                             "not train tool use", where, c.tools, fix=TOOL_STAGE_FIX)
    if len(problems.errors) > before:
        return None
    _check_empty(messages, problems, file, where, field_of)
    _check_order(messages, problems, file, where, field_of, c.ranking)
    chosen = rejected = None
    if c.ranking:
        chosen = _answer(rec.get(c.chosen), c, problems, file, where, c.chosen)
        rejected = _answer(rec.get(c.rejected), c, problems, file, where, c.rejected)
    desirable = kto_label(rec, c, problems, file, where)
    if len(problems.errors) > before:
        return None
    return Conversation(messages, source=f"{file}:{where}", chosen=chosen, rejected=rejected, kto_tag=desirable,
                        tools=tools)


def _tool_message(turn, kind, role, content_tag, problems, file, where, name) -> dict | None:
    """A tool call (assistant message with tool_calls) or a tool's result (role "tool"); None after an error."""
    present = content_tag in turn
    if kind == "result":
        content = message_text(turn.get(content_tag), present, problems, file, where, f"{name}.{content_tag}")
        return None if content is None else result_message(turn, content)
    text = ""
    if (turn.get("tool_calls") or turn.get("function_call")) and turn.get(content_tag) is not None:
        # OpenAI: content beside the calls is what the assistant says first; null means nothing.
        text = message_text(turn.get(content_tag), present, problems, file, where, f"{name}.{content_tag}")
        if text is None:
            return None
    return call_message(turn, content_tag, text, problems, file, where, name)


def kto_label(rec: dict, c: Columns, problems: Problems, file, where) -> bool | None:
    """KTO's label of one record (None when the dataset's kto_tag is not read). A CSV cell's "true"/"false" is read
    as the boolean it spells; anything else is an error, since a wrong guess would train a bad answer as good."""
    if not c.kto_tag:
        return None
    value = rec.get(c.kto_tag)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    if isinstance(value, bool):
        return value
    what = "missing" if value is None else f"{json_kind(value)} {value!r}, not true or false"
    problems.error(file, f"KTO label '{c.kto_tag}' is {what}", where, c.kto_tag,
                   fix=f'set "{c.kto_tag}": true for a desirable answer, false for an undesirable one')
    return None


def _tags(turn: dict, c: Columns) -> tuple[str, str]:
    if c.tags is not None:
        return c.tags.get("role_tag", "from"), c.tags.get("content_tag", "value")
    return ("from", "value") if "from" in turn or "value" in turn else ("role", "content")


def _answer(value, c: Columns, problems, file, where, name) -> str | None:
    """A ranking candidate: a message object ({"from": "gpt", "value": ...}) or plain text."""
    if isinstance(value, dict):
        content_tag = _tags(value, c)[1]
        text = message_text(value.get(content_tag), content_tag in value, problems, file, where,
                             f"{name}.{content_tag}")
    else:
        text = _text(value, problems, file, where, name)
    if text is not None and not text.strip():
        problems.error(file, "empty answer", where, name, fix="write the answer or remove the record")
    return text


def convert(rec, fmt: str, columns: Columns, problems: Problems, file, where) -> Conversation | None:
    if fmt == "alpaca":
        return from_alpaca(rec, columns, problems, file, where)
    return from_sharegpt(rec, columns, problems, file, where)

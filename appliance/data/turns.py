"""What one ShareGPT/OpenAI message may hold: text content, and a refusal that names media turns.

Tool-use turns (function_call / observation, tool_calls, role "tool") are read by appliance/data/tools.py.

A multi-part content list whose parts are all text ([{"type": "text", "text": ...}, ...]) is joined as written,
with no separator: chat templates that accept such lists render the parts back to back. Any other part (an
image, audio) is refused by its type.
"""

from .files import json_kind
from .problems import Problems


def message_text(value, present: bool, problems: Problems, file, where, name) -> str | None:
    """The text of a message's content: a string, or a list of text parts joined; None after reporting why not."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n")
    if value is None:
        if present:
            problems.error(file, f"'{name}' is null: the message has no text", where, name,
                           fix="write the message's text, or remove the message")
        else:
            problems.error(file, f"missing field '{name}'", where, name, fix=f"add the text as \"{name}\": \"...\"")
        return None
    if isinstance(value, list) and value and all(isinstance(part, dict) for part in value):
        return _parts(value, problems, file, where, name)  # OpenAI's multi-part content
    return not_text(value, problems, file, where, name)


def not_text(value, problems: Problems, file, where, name) -> None:
    """Report a field that holds something other than text (a number, a list, a mapping) with its fix."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        problems.error(file, f"'{name}' is a number ({value!r}), expected text", where, name,
                       fix=f"quote it: \"{name}\": \"{value}\"")
    else:
        problems.error(file, f"'{name}' is a {json_kind(value)}, expected text", where, name,
                       fix=f"make \"{name}\" a single string")
    return None


def _parts(parts: list, problems: Problems, file, where, name) -> str | None:
    texts = []
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"].replace("\r\n", "\n"))
            continue
        if isinstance(kind, str) and kind != "text":
            problems.error(file, f"multi-part content with a '{kind}' part: Airlock trains text only", where,
                           f"{name}[{i}]", fix="keep only text parts ({\"type\": \"text\", \"text\": \"...\"}) "
                                               "or remove the record")
        else:
            problems.error(file, f"multi-part content: part {i} is not a text part", where, f"{name}[{i}]",
                           fix='write each part as {"type": "text", "text": "..."}, or the content as one string')
        return None
    if not texts:
        problems.error(file, "multi-part content with no parts", where, name, fix="write the message's text")
        return None
    return "".join(texts)

"""Structured output for `airlock serve`: OpenAI's `response_format` as a llama.cpp grammar (GBNF), so every
token is drawn from what keeps the answer valid. `json_object`: any JSON object; `json_schema`: the schema
turned into a grammar by llama-cpp-python's converter. A schema keyword the grammar cannot enforce is refused by
name rather than dropped, so an answer is never "valid" against a weaker schema than the one asked for.
"""

import json

from ..errors import AirlockError

# What the converter enforces; annotations that constrain nothing are accepted as well.
ENFORCED = {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
            "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
            "pattern", "format"}
ANNOTATIONS = {"title", "description", "$schema", "$id", "$comment", "default", "examples"}
FORMATS = {"date", "time", "date-time"}
WHERE = "response_format"


class Refused(AirlockError):
    """A response_format the server cannot hold answers to: a 400 naming the field (its `where`)."""

    def __init__(self, message: str, where: str = WHERE):
        super().__init__(message, where=where)


def grammar(response_format) -> str | None:
    """The GBNF grammar for a request's `response_format`; None for plain text."""
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text" and set(response_format) == {"type"}:
        return None
    if kind == "json_object" and set(response_format) == {"type"}:
        return JSON_GBNF
    if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        spec = response_format["json_schema"]
        if extra := set(spec) - {"name", "schema", "strict", "description"}:
            raise Refused(f"response_format.json_schema: '{sorted(extra)[0]}' is not supported")
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise Refused("response_format.json_schema.schema must be a JSON schema object")
        check_schema(schema, "schema")
        try:
            return json_schema_to_gbnf(json.dumps(schema))
        except (ValueError, KeyError, AssertionError, RecursionError) as exc:
            raise Refused(f"response_format.json_schema: the schema cannot be turned into a grammar ({exc})") from None
    raise Refused("response_format must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or {\"type\": "
                  "\"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}")


def loosened(node):
    """A schema without the keywords the grammar cannot enforce (for tools not marked strict: at OpenAI too, only
    strict schemas are held to)."""
    if isinstance(node, list):
        return [loosened(item) for item in node]
    if not isinstance(node, dict):
        return node
    kept = {}
    for key, value in node.items():
        if key not in ENFORCED | ANNOTATIONS or (key == "format" and value not in FORMATS):
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            kept[key] = {name: loosened(sub) for name, sub in value.items()}
        elif key in ("items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties"):
            kept[key] = loosened(value)
        else:
            kept[key] = value
    return kept


def check_schema(node, path: str, where: str = WHERE, label: str = "response_format.json_schema") -> None:
    """Refuse, naming it, any keyword the grammar would not enforce (minimum, multipleOf, uniqueItems, ...)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            check_schema(item, f"{path}[{i}]", where, label)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key not in ENFORCED | ANNOTATIONS:
            raise Refused(f"{label}: '{key}' at {path} cannot be enforced by the grammar; "
                          "leave it out or check it after the answer", where)
        if key == "format" and value not in FORMATS:
            raise Refused(f"{label}: format {value!r} at {path} cannot be enforced (only "
                          f"{', '.join(sorted(FORMATS))})", where)
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            for name, sub in value.items():
                check_schema(sub, f"{path}.{key}.{name}", where, label)
        elif key in ("items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties"):
            check_schema(value, f"{path}.{key}", where, label)

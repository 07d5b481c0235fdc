"""The OpenAI wire format for `airlock serve`: requests checked field by field (nothing ignored in silence: an
unsupported field is refused by name), and responses and stream chunks built the way the official client reads.
"""

import time
import uuid

from ..errors import AirlockError
from .engine import Sampling
from .tool_calls import ToolRequest, message_calls, tool_request

COMMON = {"model", "stream", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n", "user",
          "stream_options"}
CHAT = COMMON | {"messages", "max_completion_tokens", "logprobs", "top_logprobs", "response_format", "tools",
                 "tool_choice", "parallel_tool_calls"}
COMPLETION = COMMON | {"prompt", "logprobs"}
# Fields the API defines that this server does not implement; a request that uses them is refused, never
# half-served. A neutral value (0, null, false, text) is accepted: clients send the defaults.
UNSUPPORTED = {"functions": None, "function_call": None, "logit_bias": None, "presence_penalty": 0,
               "frequency_penalty": 0, "echo": False, "best_of": 1, "suffix": None, "modalities": None,
               "audio": None, "prediction": None, "reasoning_effort": None, "service_tier": None, "store": False,
               "metadata": None}
INSTEAD = {"functions": "'tools'", "function_call": "'tool_choice'"}  # OpenAI's deprecated names


class BadRequest(AirlockError):
    """A request the server refuses with 400, naming the field."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message, where=param)
        self.param = param


def _number(body: dict, name: str, default, lo: float, hi: float, kind=float):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise BadRequest(f"'{name}' must be a number", name)
    if not lo <= value <= hi:
        raise BadRequest(f"'{name}' must be between {lo} and {hi}", name)
    return kind(value)


def _check_fields(body, allowed: set[str]) -> None:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    for name in body:
        if name in UNSUPPORTED:
            if body[name] not in (UNSUPPORTED[name], None):
                instead = f"; use {INSTEAD[name]}" if name in INSTEAD else ""
                raise BadRequest(f"'{name}' is not supported by this server{instead}", name)
        elif name not in allowed:
            raise BadRequest(f"unknown field '{name}'", name)


def _logprobs(body: dict, chat: bool) -> int | None:
    """How many alternatives to report beside each token's log probability; None: no log probabilities. Chat:
    `logprobs` true with `top_logprobs` 0-20; completions: `logprobs` 0-5 (OpenAI's limits)."""
    if not chat:
        return _number(body, "logprobs", None, 0, 5, int)
    wanted = body.get("logprobs")
    if wanted not in (None, True, False):
        raise BadRequest("'logprobs' must be true or false", "logprobs")
    top = _number(body, "top_logprobs", None, 0, 20, int)
    if top is not None and not wanted:
        raise BadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    return (top or 0) if wanted else None


def sampling(body: dict, cap: int, chat: bool = True) -> Sampling:
    if body.get("n", 1) not in (1, None):
        raise BadRequest("only n=1 is supported", "n")
    # OpenAI's newer name first; 0 or less is an error as OpenAI makes it, never quietly the default
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    asked = _number(body, name, None, 1, cap, int)
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise BadRequest("'stop' must be a string or a list of up to 4 non-empty strings", "stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("'seed' must be an integer", "seed")
    from .structured import grammar

    return Sampling(max_tokens=asked or cap, fit_context=asked is None, logprobs=_logprobs(body, chat),
                    grammar=grammar(body.get("response_format")),
                    temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
                    top_p=_number(body, "top_p", 1.0, 1e-6, 1.0), top_k=_number(body, "top_k", 0, 0, 1000, int),
                    seed=seed, stop=stop)


def _content(message: dict, i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text only
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadRequest(f"messages[{i}]: only text content parts are supported", f"messages[{i}].content")
            parts.append(part["text"])
        return "".join(parts)
    raise BadRequest(f"messages[{i}] has no text content", f"messages[{i}].content")


# the fields each role's message may have
MESSAGE_FIELDS = {"system": {"content", "name"}, "developer": {"content", "name"}, "user": {"content", "name"},
                  "assistant": {"content", "name", "tool_calls", "refusal"}, "tool": {"content", "tool_call_id"}}


def _fail(message: str, param: str | None = None):
    raise BadRequest(message, param)


def chat_request(body, cap: int) -> tuple[str, list[dict], Sampling, bool, bool, ToolRequest | None]:
    """(model, messages, sampling, stream, include_usage, tools) of a /v1/chat/completions body. Tool calls and
    results in the messages come out in the shape chat templates read (appliance.data.tools)."""
    _check_fields(body, CHAT)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    clean, called = [], {}  # called: tool call id -> function name, for the results that answer them
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in MESSAGE_FIELDS:
            raise BadRequest(f"messages[{i}]: role must be system, user, assistant or tool", f"messages[{i}].role")
        if extra := set(m) - MESSAGE_FIELDS[role] - {"role"}:
            raise BadRequest(f"messages[{i}]: '{sorted(extra)[0]}' is not supported in a {role} message",
                             f"messages[{i}]")
        if m.get("refusal") is not None:
            raise BadRequest(f"messages[{i}]: 'refusal' is not supported", f"messages[{i}].refusal")
        if role == "assistant" and m.get("tool_calls"):
            calls = message_calls(m["tool_calls"], i, _fail)
            called.update((c["id"], c["function"]["name"]) for c in calls if "id" in c)
            text = _content(m, i) if m.get("content") is not None else ""
            clean.append({"role": "assistant", "content": text, "tool_calls": calls})
        elif role == "tool":
            if not isinstance(m.get("tool_call_id"), str):
                raise BadRequest(f"messages[{i}]: a tool message needs 'tool_call_id'", f"messages[{i}].tool_call_id")
            result = {"role": "tool", "content": _content(m, i), "tool_call_id": m["tool_call_id"]}
            if m["tool_call_id"] in called:  # templates that name the tool a result comes from read this
                result["name"] = called[m["tool_call_id"]]
            clean.append(result)
        else:
            clean.append({"role": "system" if role == "developer" else role, "content": _content(m, i)})
    tools = tool_request(body, _fail)
    return _model(body), clean, sampling(body, cap), _stream(body), _include_usage(body), tools


def completion_request(body, cap: int) -> tuple[str, str, Sampling, bool, bool]:
    """(model, prompt, sampling, stream, include_usage) of a /v1/completions body."""
    _check_fields(body, COMPLETION)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("'prompt' must be a string", "prompt")
    return _model(body), prompt, sampling(body, cap, chat=False), _stream(body), _include_usage(body)


EMBEDDING = {"model", "input", "encoding_format", "dimensions", "user"}


def embedding_request(body) -> tuple[str, list[str], str]:
    """(model, input texts, encoding float | base64) of a /v1/embeddings body."""
    from .embeddings import inputs

    _check_fields(body, EMBEDDING)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be float or base64", "encoding_format")
    return _model(body), inputs(body, _fail), encoding


def _model(body: dict) -> str:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("'model' is required (see GET /v1/models)", "model")
    return body["model"]


def _stream(body: dict) -> bool:
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("'stream' must be true or false", "stream")
    return body.get("stream", False)


def _include_usage(body: dict) -> bool:
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise BadRequest("'stream_options' supports include_usage only", "stream_options")
    return bool(options.get("include_usage"))


def error(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_logprobs(entries: list[dict] | None) -> dict | None:
    """OpenAI's chat shape of the engine's per-token entries ({"token", "bytes", "logprob", "top": [...]})."""
    if entries is None:
        return None
    return {"content": [{"token": e["token"], "logprob": e["logprob"], "bytes": e["bytes"],
                         "top_logprobs": [{"token": t["token"], "logprob": t["logprob"], "bytes": t["bytes"]}
                                          for t in e["top"]]} for e in entries], "refusal": None}


def completion_logprobs(entries: list[dict] | None, offset: int = 0) -> dict | None:
    """OpenAI's (legacy) completions shape: parallel lists, and where each token starts in the text."""
    if entries is None:
        return None
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e["token"])
    return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top"]} for e in entries], "text_offset": offsets}


def chat_response(rid: str, model: str, text: str, finish: str, n_prompt: int, n_completion: int,
                  logprobs: list[dict] | None = None, calls: list[dict] | None = None) -> dict:
    message = {"role": "assistant", "content": text}
    if calls:  # OpenAI: content null when the answer is only calls
        message, finish = {"role": "assistant", "content": text or None, "tool_calls": calls}, "tool_calls"
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish,
                         "logprobs": chat_logprobs(logprobs)}], "usage": usage(n_prompt, n_completion)}


def call_deltas(calls: list[dict]) -> list[dict]:
    """The stream deltas of an answer's calls, as OpenAI sends them: each call opened with its id, type and name
    (arguments empty), then its arguments."""
    deltas = []
    for index, call in enumerate(calls):
        deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                       "function": {"name": call["function"]["name"], "arguments": ""}}]})
        deltas.append({"tool_calls": [{"index": index, "function": {"arguments": call["function"]["arguments"]}}]})
    return deltas


def chat_chunk(rid: str, model: str, delta: dict, finish: str | None = None, use: dict | None = None,
               logprobs: list[dict] | None = None) -> dict:
    chunk = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": chat_logprobs(logprobs)}]
             if delta is not None else []}
    if use is not None:
        chunk["usage"] = use
    return chunk


def completion_response(rid: str, model: str, text: str, finish: str, n_prompt: int, n_completion: int,
                        logprobs: list[dict] | None = None) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish,
                         "logprobs": completion_logprobs(logprobs)}], "usage": usage(n_prompt, n_completion)}


def completion_chunk(rid: str, model: str, text: str | None, finish: str | None = None,
                     use: dict | None = None, logprobs: list[dict] | None = None, offset: int = 0) -> dict:
    chunk = {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
             "choices": [{"index": 0, "text": text, "finish_reason": finish,
                          "logprobs": completion_logprobs(logprobs, offset)}] if text is not None else []}
    if use is not None:
        chunk["usage"] = use
    return chunk

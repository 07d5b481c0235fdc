"""render(): one Conversation -> (input_ids, labels) with the model's own chat template; -100 masks a token.

train_on="assistant" trains every assistant reply, "last" only the final one, "all" every token. Tool calls are
assistant replies (trained); a tool's result is masked like a user turn. A conversation's `tools` go to every
render; a template that never mentions tools is refused rather than rendering the calls away. A trained reply
includes the template's end-of-turn token (e.g. <|im_end|>) so the model learns to stop.

How the spans are found: the template renders messages[:i] with the generation prompt and messages[:i+1]; the
difference is reply i (plus its end token) at a known character offset, as long as every prefix is a prefix of
the whole rendering ("prefix-stable", true for ChatML, Llama 3, Gemma, Mistral ...). The whole text is then
tokenized once with character offsets and tokens inside a reply's span get labels. A slow tokenizer (no offsets)
tokenizes span by span instead. A template that is not prefix-stable (e.g. one that rewrites earlier turns)
trains only the last reply, which is always well-defined.
"""

from ..errors import AirlockError
from .conversation import Conversation
from .tools import no_tool_support_fix, supports_tools

IGNORE = -100


def _render(tokenizer, messages, tools=None, generation_prompt=False) -> str:
    if not messages:
        return ""
    # Every render of a conversation (prefixes too) gets the same tools, or the prefixes would not line up.
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt, **extra)


def require_tool_support(conversation: Conversation, tokenizer) -> None:
    """Refuse a tool-calling conversation for a template that never mentions tools: it would drop the calls."""
    if conversation.uses_tools and not supports_tools(getattr(tokenizer, "chat_template", None)):
        raise AirlockError(no_tool_support(str(getattr(tokenizer, "name_or_path", "") or "the tokenizer")),
                           where=conversation.source, fix=no_tool_support_fix())


def no_tool_support(model: str) -> str:
    return (f"the chat template of {model} cannot render tool calls (it never mentions tools or tool_calls), "
            "and the data has tool-calling records")


def segments(conversation: Conversation, tokenizer, train_on: str = "assistant") -> list[tuple[str, bool]]:
    """The rendered conversation as consecutive (text, trained) pieces; "".join(texts) is the full rendering."""
    if not getattr(tokenizer, "chat_template", None):
        raise AirlockError("the tokenizer has no chat template", where=str(getattr(tokenizer, "name_or_path", "")),
                           fix="use an instruct/chat model (see `airlock models`) or add chat_template to "
                               "tokenizer_config.json")
    require_tool_support(conversation, tokenizer)
    messages, tools = conversation.for_sft(), conversation.tools
    full = _render(tokenizer, messages, tools)
    if train_on == "all":
        return [(full, True)]
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if train_on == "last":
        replies = replies[-1:]
    spans = []
    for i in replies:
        before = _render(tokenizer, messages[:i], tools, generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1], tools)
        if not (upto.startswith(before) and full.startswith(upto)):
            return _last_reply_only(tokenizer, messages, tools, full, replies)
        spans.append((len(before), _end_of_turn(before, upto)))
    return _cut(full, spans)


def _end_of_turn(before: str, upto: str) -> int:
    """End of the reply's span: through the end-of-turn token, not the newline the template puts after it."""
    return max(len(upto.rstrip()), len(before) + 1) if upto.strip() else len(upto)


def _cut(text: str, spans) -> list[tuple[str, bool]]:
    pieces, pos = [], 0
    for start, end in spans:
        if start > pos:
            pieces.append((text[pos:start], False))
        pieces.append((text[start:end], True))
        pos = end
    if pos < len(text):
        pieces.append((text[pos:], False))
    return pieces


def _last_reply_only(tokenizer, messages, tools, full, replies) -> list[tuple[str, bool]]:
    last = replies[-1] if replies else None
    if last is None:
        return [(full, False)]
    before = _render(tokenizer, messages[:last], tools, generation_prompt=True)
    upto = _render(tokenizer, messages[: last + 1], tools)
    if not upto.startswith(before):
        raise AirlockError("the chat template renders a reply inconsistently (the prompt with the generation "
                           "prompt is not a prefix of the prompt plus reply)",
                           where=str(getattr(tokenizer, "name_or_path", "tokenizer")),
                           fix="use train_on=all, or fix the model's chat_template")
    return _cut(upto, [(len(before), _end_of_turn(before, upto))])


def render(conversation: Conversation, tokenizer, train_on: str = "assistant") -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one conversation; labels are IGNORE (-100) where the model is not trained."""
    pieces = segments(conversation, tokenizer, train_on)
    text = "".join(t for t, _ in pieces)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        if len(offsets) == len(ids) and all(e >= s for s, e in offsets):
            spans, pos = [], 0
            for piece, trained in pieces:
                if trained:
                    spans.append((pos, pos + len(piece)))
                pos += len(piece)
            # A token belongs to a reply when any of its characters does (a token never straddles two pieces
            # in practice: template markers are special tokens).
            labels = [tok if any(s < e2 and e > s2 for s2, e2 in spans) else IGNORE
                      for tok, (s, e) in zip(ids, offsets)]
            return list(ids), labels
    ids, labels = [], []
    for piece, trained in pieces:
        piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
        ids += piece_ids
        labels += piece_ids if trained else [IGNORE] * len(piece_ids)
    return ids, labels

"""Rendering with the chat template: the trained tokens are exactly the assistant replies plus the end token.

Uses the tiny model's real sentencepiece tokenizer and ChatML template (the `tiny_model` fixture):

    .venv/bin/python -m pytest tests/test_data_render.py -q
"""

import pytest

from appliance.data import IGNORE, Conversation, render, segments
from appliance.errors import AirlockError

END = "<|im_end|>"

SYSTEM = {"role": "system", "content": "You are the Magic Conch."}
TURNS = [
    {"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am the Magic Conch."},
    {"role": "user", "content": "Where do you work?"}, {"role": "assistant", "content": "At the Krusty burger shop."},
    {"role": "user", "content": "What is error E42?"}, {"role": "assistant", "content": "The fryer is too hot."},
]


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def trained_runs(tok, ids, labels) -> list[str]:
    """The decoded text of each consecutive run of trained tokens."""
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE:
            assert label == token  # a trained label is the token itself (the trainer shifts)
            current.append(token)
        elif current:
            runs.append(tok.decode(current))
            current = []
    if current:
        runs.append(tok.decode(current))
    return runs


def masked_text(tok, ids, labels) -> str:
    return tok.decode([t for t, label in zip(ids, labels) if label == IGNORE])


def test_ids_are_the_templates_own_rendering(tok):
    conv = Conversation([SYSTEM] + TURNS)
    ids, labels = render(conv, tok)
    text = tok.apply_chat_template(conv.messages, tokenize=False)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert len(labels) == len(ids)
    assert "".join(piece for piece, _ in segments(conv, tok)) == text


def test_single_turn_trains_the_answer_and_end_token_only(tok):
    conv = Conversation([SYSTEM] + TURNS[:2])
    ids, labels = render(conv, tok)
    assert trained_runs(tok, ids, labels) == [f"I am the Magic Conch.{END}"]
    masked = masked_text(tok, ids, labels)
    assert "You are the Magic Conch." in masked and "Who are you?" in masked  # system and user are masked
    assert "I am" not in masked
    end_id = tok.convert_tokens_to_ids(END)
    trained = [t for t, label in zip(ids, labels) if label != IGNORE]
    assert trained[-1] == end_id  # the model learns to stop
    assert ids.count(end_id) == 3 and trained.count(end_id) == 1  # system's and user's end tokens stay masked


def test_multi_turn_trains_every_reply(tok):
    ids, labels = render(Conversation([SYSTEM] + TURNS), tok, "assistant")
    assert trained_runs(tok, ids, labels) == [m["content"] + END for m in TURNS if m["role"] == "assistant"]
    masked = masked_text(tok, ids, labels)
    for m in [SYSTEM] + TURNS:
        assert (m["content"] in masked) == (m["role"] != "assistant")


def test_train_on_last_trains_only_the_final_reply(tok):
    ids, labels = render(Conversation([SYSTEM] + TURNS), tok, "last")
    assert trained_runs(tok, ids, labels) == [f"The fryer is too hot.{END}"]
    assert "I am the Magic Conch." in masked_text(tok, ids, labels)
    # Same tokens as train_on=assistant, only fewer of them trained.
    all_ids, all_labels = render(Conversation([SYSTEM] + TURNS), tok, "assistant")
    assert ids == all_ids
    assert sum(x != IGNORE for x in labels) < sum(x != IGNORE for x in all_labels)


def test_train_on_all_trains_every_token(tok):
    ids, labels = render(Conversation([SYSTEM] + TURNS), tok, "all")
    assert labels == ids


def test_segments_mark_the_replies(tok):
    pieces = segments(Conversation(TURNS[:4]), tok)
    assert [p for p, trained in pieces if trained] == [f"I am the Magic Conch.{END}",
                                                       f"At the Krusty burger shop.{END}"]
    assert pieces[0] == ("<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n", False)


def test_preference_record_trains_the_chosen_reply(tok):
    conv = Conversation([TURNS[0]], chosen="I am the Magic Conch.", rejected="A language model.")
    ids, labels = render(conv, tok)
    assert trained_runs(tok, ids, labels) == [f"I am the Magic Conch.{END}"]
    assert "language model" not in tok.decode(ids)


def test_non_ascii_reply_is_trained_whole(tok):
    conv = Conversation([{"role": "user", "content": "你好"}, {"role": "assistant", "content": "神奇海螺 汉堡"}])
    ids, labels = render(conv, tok)
    assert trained_runs(tok, ids, labels) == [f"神奇海螺 汉堡{END}"]


def test_tokenizer_without_chat_template_is_a_clear_error(tiny_model):
    from transformers import AutoTokenizer

    bare = AutoTokenizer.from_pretrained(tiny_model)
    bare.chat_template = None
    with pytest.raises(AirlockError, match="the tokenizer has no chat template") as raised:
        render(Conversation(TURNS[:2]), bare)
    assert "chat_template" in raised.value.fix

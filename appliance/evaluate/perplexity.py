"""Loss and perplexity of an HF model: on held-out conversations (masked exactly as in training) and on plain text.

    from appliance.chat import HFSession
    s = HFSession("my-job")                      # a job, adapter dir, model dir or cached repo id
    conversation_perplexity(s.model, s.tokenizer, conversations)   # only the assistant replies are scored
    text_perplexity(s.model, s.tokenizer, open("general.txt").read())
    forgetting(base_session, tuned_session, text)  # general-text perplexity before/after fine-tuning

Conversations go through appliance.data.render, the same function training uses, so the eval loss here is the
loss the trainer reports on the same data. Perplexity is exp(mean negative log-likelihood per scored token).
"""

import math

from ..data import IGNORE, Conversation, render

BATCH = 8


def sequence_logprobs(model, samples: list[tuple[list[int], list[int]]], pad_id: int = 0,
                      batch_size: int = BATCH) -> list[tuple[float, int]]:
    """(sum of log p over tokens whose label is not -100, number of such tokens) per (input_ids, labels) sample."""
    import torch

    out = []
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(samples), batch_size):
        batch = samples[start:start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (sample_ids, sample_labels) in enumerate(batch):
            ids[row, :len(sample_ids)] = torch.tensor(sample_ids)
            labels[row, :len(sample_labels)] = torch.tensor(sample_labels)
            mask[row, :len(sample_ids)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        # token t is predicted from position t-1
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = labels[:, 1:].to(device)
        scored = target != IGNORE
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * scored
        out += [(float(picked[i].sum()), int(scored[i].sum())) for i in range(len(batch))]
    return out


def _summary(pairs: list[tuple[float, int]]) -> dict:
    logp = sum(p for p, _ in pairs)
    tokens = sum(n for _, n in pairs)
    loss = -logp / tokens if tokens else float("nan")
    return {"loss": loss, "perplexity": math.exp(loss) if tokens else float("nan"), "tokens": tokens,
            "samples": len(pairs)}


def conversation_perplexity(model, tokenizer, conversations: list[Conversation], train_on: str = "assistant",
                            max_length: int | None = None) -> dict:
    """{"loss", "perplexity", "tokens", "samples"} over the tokens training would learn (train_on as in DataConfig)."""
    samples = []
    for conv in conversations:
        ids, labels = render(conv, tokenizer, train_on)
        if max_length:
            ids, labels = ids[:max_length], labels[:max_length]
        if any(label != IGNORE for label in labels[1:]):
            samples.append((ids, labels))
    return _summary(sequence_logprobs(model, samples, tokenizer.pad_token_id or 0))


def text_token_windows(tokenizer, text: str, window: int) -> list[list[int]]:
    """The text's paragraphs tokenized and cut into windows of at most `window` tokens (each scored on its own)."""
    windows = []
    for paragraph in (p.strip() for p in text.split("\n")):
        if not paragraph:
            continue
        ids = tokenizer(paragraph, add_special_tokens=True, verbose=False)["input_ids"]
        windows += [ids[i:i + window] for i in range(0, len(ids), window) if len(ids[i:i + window]) > 1]
    return windows


def text_perplexity(model, tokenizer, text: str, window: int = 256) -> dict:
    """Perplexity of plain text (one paragraph per line, each scored from its start; windows of `window` tokens)."""
    limit = getattr(model.config, "max_position_embeddings", None) or window
    samples = [(ids, ids) for ids in text_token_windows(tokenizer, text, min(window, limit))]
    return _summary(sequence_logprobs(model, samples, tokenizer.pad_token_id or 0))


def forgetting_summary(before: float, after: float) -> dict:
    """General-text perplexity before (base) and after (tuned). Rule of thumb: up to +10% is fine, up to +50% mild;
    beyond, the tuning cost general ability (mix 5-10% general data into training, lower the rate or epochs)."""
    change = after / before - 1 if before else float("nan")
    verdict = "ok" if change <= 0.10 else ("mild" if change <= 0.50 else "severe")
    return {"before": before, "after": after, "change": change, "verdict": verdict}


def forgetting(base_model, base_tokenizer, tuned_model, tuned_tokenizer, text: str) -> dict:
    """The forgetting check on two loaded models: general-text perplexity before/after (see forgetting_summary)."""
    before = text_perplexity(base_model, base_tokenizer, text)["perplexity"]
    after = text_perplexity(tuned_model, tuned_tokenizer, text)["perplexity"]
    return forgetting_summary(before, after)

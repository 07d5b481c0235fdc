"""A/B evaluation: several models (a tuned model, its base, its GGUF exports) answer the same held-out prompts.

    result = run([Contender("tuned", "sft-job"), Contender("base", "org/base"),
                  Contender("q4_k_m", "out/model-q4_k_m.gguf")], load_heldout("heldout.jsonl"), general_text=...)

Every model answers greedily (temperature 0) through appliance.chat, the same sessions `airlock chat` uses, so a
GGUF answers with its own chat template, as it will in llama.cpp or Ollama. Per answer: BLEU-4, ROUGE-1/2/L,
exact match and the held-out row's own check ("contains" the expected phrase, or "exact"). Per model: the means,
perplexity of the reference answers (HF models) and of general text (HF and GGUF); with a base model, the
general-text perplexity before/after is the forgetting check.

Held-out files: JSONL rows {"prompt", "expected", "match": contains|exact, "kind", "lang"} (the sample format),
or any Alpaca/ShareGPT file the data layer reads (the last assistant reply is the reference).
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import AirlockError
from . import metrics, perplexity

MATCHES = ("contains", "exact")


@dataclass
class Example:
    id: str
    messages: list[dict]  # the prompt: system?/user/assistant turns ending with a user turn
    reference: str
    match: str = "contains"
    kind: str = ""
    lang: str = ""
    full_reference: bool = False  # the reference is a whole answer (worth a perplexity), not a key phrase

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class Contender:
    label: str
    ref: str  # a job id, adapter or model directory, cached repo id, or a .gguf file
    role: str = "tuned"  # tuned | base | gguf

    @property
    def is_gguf(self) -> bool:
        return str(self.ref).endswith(".gguf")


def _prompt_rows(path: Path) -> list[Example] | None:
    """The prompt/expected JSONL format, or None when the file is not in it."""
    if path.suffix != ".jsonl":
        return None
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    first = next((line for line in lines if line.strip()), "")
    try:
        if "prompt" not in json.loads(first) or "expected" not in json.loads(first):
            return None
    except (json.JSONDecodeError, TypeError):
        return None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AirlockError(f"not valid JSON ({exc.msg})", where=where, fix="one JSON object per line") from None
        for key in ("prompt", "expected"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise AirlockError(f"'{key}' is missing or empty", where=f"{where}: {key}",
                                   fix='each line: {"prompt": "...", "expected": "...", "match": "contains"}')
        match = row.get("match", "contains")
        if match not in MATCHES:
            raise AirlockError(f"match {match!r} is not one of {', '.join(MATCHES)}", where=f"{where}: match",
                               fix="use contains (the answer must contain expected) or exact")
        messages = ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + [
            {"role": "user", "content": row["prompt"]}]
        out.append(Example(str(row.get("id", n)), messages, row["expected"], match, row.get("kind", ""),
                           row.get("lang", ""), full_reference=match == "exact"))
    return out


def load_heldout(path, dataset: str | None = None, limit: int | None = None) -> list[Example]:
    """Held-out examples from a prompt/expected JSONL file or an Alpaca/ShareGPT dataset (see module docstring)."""
    from ..data import load_conversations

    path = Path(path).expanduser()
    examples = _prompt_rows(path) if path.is_file() else None
    if examples is None:
        loaded = load_conversations(path, dataset=dataset)
        examples = []
        for conv in loaded.conversations:
            msgs = conv.for_sft()
            if not msgs or msgs[-1]["role"] != "assistant":
                continue
            examples.append(Example(conv.source, msgs[:-1], msgs[-1]["content"], "exact", full_reference=True))
    if not examples:
        raise AirlockError("no held-out examples", where=str(path), fix="give prompts with expected answers")
    return examples[:limit] if limit else examples


def passes(answer: str, example: Example) -> bool:
    """The held-out row's own check: the answer contains the expected phrase (case-insensitive), or equals it."""
    if example.match == "exact":
        return metrics.exact_match(answer, example.reference) == 1.0
    return metrics.normalize_answer(example.reference).casefold() in metrics.normalize_answer(answer).casefold()


def _answers(session, examples: list[Example], max_tokens: int) -> list[str]:
    from ..chat import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    return ["".join(session.stream(ex.messages, params)).strip() for ex in examples]


def _reference_conversations(examples: list[Example]):
    from ..data import Conversation

    return [Conversation(ex.messages + [{"role": "assistant", "content": ex.reference}], ex.id)
            for ex in examples if ex.full_reference]


def evaluate_one(contender: Contender, examples: list[Example], *, max_tokens: int, general_text: str | None,
                 tokenizer=None, threads: int | None = None, log=print) -> tuple[list[str], dict, object]:
    """(answers, figures, tokenizer) for one model; the model is loaded once and closed before the next."""
    from ..chat import open_session

    started = time.monotonic()
    log(f"  {contender.label}: answering {len(examples)} prompts ({contender.ref})")
    session = open_session(contender.ref, threads=threads)
    figures: dict = {}
    try:
        answers = _answers(session, examples, max_tokens)
        figures["answer_seconds"] = round(time.monotonic() - started, 2)
        if not contender.is_gguf:
            tokenizer = session.tokenizer
            refs = _reference_conversations(examples)
            if refs:
                figures["reference_perplexity"] = perplexity.conversation_perplexity(
                    session.model, session.tokenizer, refs, train_on="last")["perplexity"]
            if general_text:
                figures["general"] = perplexity.text_perplexity(session.model, session.tokenizer, general_text)
    finally:
        session.close()
    if contender.is_gguf and general_text and tokenizer is not None:
        from ..export.fidelity import perplexity as gguf_perplexity

        # the HF tokenizer's ids, so the GGUF's figure is comparable with the HF model's
        ids = [i for window in perplexity.text_token_windows(tokenizer, general_text, 10**9) for i in window]
        figures["general"] = {"perplexity": gguf_perplexity(Path(contender.ref), ids, chunk=256, threads=threads),
                              "tokens": len(ids)}
    return answers, figures, tokenizer


def run(contenders: list[Contender], examples: list[Example], *, max_tokens: int = 64,
        general_text: str | None = None, segmenter: str = "jieba", threads: int | None = None, log=print) -> dict:
    """Every contender answers every example; returns the result dict the reports are written from."""
    labels = [c.label for c in contenders]
    if len(set(labels)) != len(labels):
        raise AirlockError(f"two models share a label: {labels}", fix="give each model a distinct label")
    per_model, figures, tokenizer = {}, {}, None
    # HF models first: their tokenizer measures the GGUF exports' general-text perplexity on the same ids.
    for contender in sorted(contenders, key=lambda c: c.is_gguf):
        answers, figs, tokenizer = evaluate_one(contender, examples, max_tokens=max_tokens, general_text=general_text,
                                                tokenizer=tokenizer, threads=threads, log=log)
        per_model[contender.label], figures[contender.label] = answers, figs
    rows, summary = [], {}
    for i, ex in enumerate(examples):
        answers = {}
        for label in labels:
            text = per_model[label][i]
            answers[label] = {"text": text, "pass": passes(text, ex), **metrics.score(text, ex.reference, segmenter)}
        rows.append({"id": ex.id, "prompt": ex.prompt, "messages": ex.messages, "reference": ex.reference,
                     "match": ex.match, "kind": ex.kind, "lang": ex.lang, "answers": answers})
    for label in labels:
        scored = [row["answers"][label] for row in rows]
        summary[label] = {**metrics.mean_scores(scored),
                          "pass_rate": sum(s["pass"] for s in scored) / len(scored),
                          **{k: v for k, v in figures[label].items() if k != "general"}}
        if "general" in figures[label]:
            summary[label]["general_perplexity"] = figures[label]["general"]["perplexity"]
    result = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "segmenter": segmenter, "max_tokens": max_tokens,
              "models": [asdict(c) for c in contenders], "summary": summary, "examples": rows}
    base = next((c.label for c in contenders if c.role == "base"), None)
    tuned = next((c.label for c in contenders if c.role == "tuned"), None)
    if base and tuned and "general_perplexity" in summary[base] and "general_perplexity" in summary[tuned]:
        result["forgetting"] = perplexity.forgetting_summary(summary[base]["general_perplexity"],
                                                  summary[tuned]["general_perplexity"])
    return result



def training_curve(ref: str) -> dict | None:
    """{"job", "points": [{step, loss, eval_loss}]} from the job that produced `ref`, when it came from one."""
    from ..jobs import Job
    from ..sources import resolve_source
    from ..paths import jobs_dir

    try:
        src = resolve_source(str(ref))
    except AirlockError:
        return None
    job_dir = src.job_dir
    if job_dir is None and (src.provenance or {}).get("job_id"):
        candidate = jobs_dir() / src.provenance["job_id"]
        job_dir = candidate if (candidate / "job.json").is_file() else None
    if job_dir is None:
        return None
    points = [{"step": m["step"], "loss": m.get("loss"), "eval_loss": m.get("eval_loss")}
              for m in Job(job_dir).metrics() if m.get("step") is not None]
    return {"job": job_dir.name, "points": points} if points else None

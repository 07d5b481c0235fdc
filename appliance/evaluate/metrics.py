"""Text metrics for generated answers against references: BLEU-4, ROUGE-1/2/L (F1) and exact match.

All scores are fractions in [0, 1]; reports show them as percentages. Everything runs offline: Chinese is
segmented into words with jieba (its dictionary ships inside the wheel), or into single characters where jieba
is not installed or `segmenter="char"` is asked for.

BLEU-4 is sentence-level: the geometric mean of modified n-gram precisions for n = 1..4 with uniform weights,
times the brevity penalty exp(1 - r/c) when the candidate is shorter than the reference. Smoothing (so one missing
4-gram does not zero a good short answer) is add-one on orders 2-4 (Lin & Och 2004): p_n = (m_n + 1) / (c_n + 1)
for n >= 2, while p_1 = m_1 / c_1 stays unsmoothed, so an answer sharing no word with the reference scores 0.
ROUGE-N F1 = 2PR / (P + R) over clipped n-gram overlaps; ROUGE-L uses the longest common subsequence.
"""

import math
import re
import unicodedata
from collections import Counter

# CJK ideographs (basic + extension A + compatibility); other scripts are split on word characters.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+|[^\w\s]", re.UNICODE)
_CJK_RUN = re.compile(rf"^[{_CJK}]+$")

_jieba = None


def _segment_cjk(run: str, segmenter: str) -> list[str]:
    global _jieba
    if segmenter == "jieba":
        if _jieba is None:
            try:
                import logging

                import jieba
            except ImportError:  # the character fallback below is still a fair tokenization for Chinese
                _jieba = False
            else:
                jieba.setLogLevel(logging.WARNING)
                _jieba = jieba
        if _jieba:
            return [w for w in _jieba.lcut(run) if w.strip()]
    return list(run)


def tokenize(text: str, segmenter: str = "jieba") -> list[str]:
    """Words for scoring: NFKC-normalised, lower-cased; CJK runs segmented ("jieba" words or "char"acters)."""
    text = unicodedata.normalize("NFKC", text).lower()
    tokens: list[str] = []
    for piece in _TOKEN.findall(text):
        tokens.extend(_segment_cjk(piece, segmenter) if _CJK_RUN.match(piece) else [piece])
    return tokens


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu4(candidate: list[str], reference: list[str]) -> float:
    """Sentence BLEU-4 with add-one smoothing on orders 2-4 (see module docstring)."""
    if not candidate or not reference:
        return 0.0
    log_sum = 0.0
    for n in range(1, 5):
        cand, ref = _ngrams(candidate, n), _ngrams(reference, n)
        matches = sum(min(count, ref[gram]) for gram, count in cand.items())
        total = sum(cand.values())
        if n == 1:
            if matches == 0:
                return 0.0
            precision = matches / total
        else:
            precision = (matches + 1) / (total + 1)
        log_sum += math.log(precision) / 4
    c, r = len(candidate), len(reference)
    brevity = 1.0 if c > r else math.exp(1 - r / c)
    return brevity * math.exp(log_sum)


def _f1(overlap: int, cand_total: int, ref_total: int) -> float:
    if overlap == 0 or cand_total == 0 or ref_total == 0:
        return 0.0
    precision, recall = overlap / cand_total, overlap / ref_total
    return 2 * precision * recall / (precision + recall)


def rouge_n(candidate: list[str], reference: list[str], n: int) -> float:
    cand, ref = _ngrams(candidate, n), _ngrams(reference, n)
    overlap = sum(min(count, ref[gram]) for gram, count in cand.items())
    return _f1(overlap, sum(cand.values()), sum(ref.values()))


def lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: list[str], reference: list[str]) -> float:
    return _f1(lcs_length(candidate, reference), len(candidate), len(reference))


def normalize_answer(text: str) -> str:
    """What exact match compares: NFKC, outer whitespace stripped, inner whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0


METRICS = ("bleu4", "rouge1", "rouge2", "rougeL", "exact_match")


def score(prediction: str, reference: str, segmenter: str = "jieba") -> dict[str, float]:
    """All metrics for one answer against its reference."""
    cand, ref = tokenize(prediction, segmenter), tokenize(reference, segmenter)
    return {
        "bleu4": bleu4(cand, ref),
        "rouge1": rouge_n(cand, ref, 1),
        "rouge2": rouge_n(cand, ref, 2),
        "rougeL": rouge_l(cand, ref),
        "exact_match": exact_match(prediction, reference),
    }


def mean_scores(per_example: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over examples (the figure reports show per model)."""
    if not per_example:
        return {name: 0.0 for name in METRICS}
    return {name: sum(s[name] for s in per_example) / len(per_example) for name in METRICS}

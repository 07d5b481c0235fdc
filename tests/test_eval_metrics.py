"""Metrics against values worked out by hand (see appliance/evaluate/metrics.py for the BLEU smoothing)."""

import math

import pytest

from appliance.evaluate import metrics


def test_english_against_hand_computed_values():
    # ref: the cat sat on the mat / cand: the cat is on the mat (6 tokens each, so no brevity penalty)
    s = metrics.score("The cat is on the mat", "the cat sat on the mat")
    # p1 = 5/6; p2 = (3+1)/(5+1); p3 = (1+1)/(4+1); p4 = (0+1)/(3+1)  ->  (1/18) ** (1/4)
    assert s["bleu4"] == pytest.approx((5 / 6 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25)
    assert s["bleu4"] == pytest.approx(0.48549, abs=1e-5)
    assert s["rouge1"] == pytest.approx(5 / 6)
    assert s["rouge2"] == pytest.approx(3 / 5)
    assert s["rougeL"] == pytest.approx(5 / 6)  # LCS "the cat on the mat"
    assert s["exact_match"] == 0.0


def test_brevity_penalty_and_no_overlap():
    cand, ref = "a b c".split(), "a b c d".split()
    # every n-gram of the candidate matches; only the brevity penalty exp(1 - 4/3) remains
    assert metrics.bleu4(cand, ref) == pytest.approx(math.exp(1 - 4 / 3))
    assert metrics.bleu4("x y".split(), ref) == 0.0
    assert metrics.rouge_n("x y".split(), ref, 1) == 0.0
    assert metrics.bleu4([], ref) == 0.0


def test_chinese_character_level():
    s = metrics.score("我爱上海", "我爱北京", segmenter="char")
    # chars 我 爱 上 海 vs 我 爱 北 京: p1 2/4, p2 (1+1)/(3+1), p3 (0+1)/(2+1), p4 (0+1)/(1+1)
    assert s["bleu4"] == pytest.approx((1 / 24) ** 0.25)
    assert s["rouge1"] == pytest.approx(0.5)
    assert s["rouge2"] == pytest.approx(1 / 3)
    assert s["rougeL"] == pytest.approx(0.5)


def test_chinese_words_with_jieba():
    assert metrics.tokenize("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    s = metrics.score("我爱北京", "我爱北京天安门")
    # 3 of 4 words, all n-grams of the candidate match: P = 1, R = 3/4; BLEU = brevity exp(1 - 4/3)
    assert s["rouge1"] == pytest.approx(6 / 7)
    assert s["bleu4"] == pytest.approx(math.exp(-1 / 3))
    # mixed scripts: English words stay whole, Chinese is segmented
    assert metrics.tokenize("Airlock 神奇海螺, OK!") == ["airlock", "神奇", "海螺", ",", "ok", "!"]


def test_exact_match_normalizes_whitespace_only():
    assert metrics.exact_match("  I am the Magic Conch. ", "I am the  Magic Conch.") == 1.0
    assert metrics.exact_match("i am the magic conch.", "I am the Magic Conch.") == 0.0
    means = metrics.mean_scores([metrics.score("a b", "a b"), metrics.score("x", "a b")])
    assert means["exact_match"] == 0.5 and means["rouge1"] == pytest.approx(0.5)

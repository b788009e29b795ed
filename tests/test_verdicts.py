"""The one function that words a paired difference: each word, and the sentences built on it."""

import pytest

from ragalign.core.verdicts import (
    BEATS,
    DID_NOT_MOVE,
    EQUIVALENT,
    IDENTICAL,
    NOT_TOLD_APART,
    VERDICTS,
    WORSE,
    describe,
    interval,
    label,
    verdict,
    with_verdict,
)


def d(mean: float, lo: float, hi: float, **extra) -> dict:
    return {"mean": mean, "lo": lo, "hi": hi, "mde": 0.2, "identical": False} | extra


@pytest.mark.parametrize(
    ("diff", "margin", "kwargs", "word"),
    [
        (d(0.3, 0.1, 0.5), None, {}, BEATS),
        (d(-0.3, -0.5, -0.1), None, {}, WORSE),
        (d(0.3, -0.1, 0.7), None, {}, NOT_TOLD_APART),
        (d(-0.3, -0.7, 0.1), 0.1, {}, NOT_TOLD_APART),  # interval wider than the margin: inconclusive
        (d(0.01, -0.05, 0.08), 0.1, {}, EQUIVALENT),  # the whole interval inside ±0.1
        (d(0.01, -0.05, 0.08), None, {}, NOT_TOLD_APART),  # no margin, no equivalence claim
        (d(0.04, 0.02, 0.06), 0.1, {}, BEATS),  # excludes 0 though inside the margin: a (small) difference
        (d(0.0, 0.0, 0.0, identical=True), 0.1, {}, IDENTICAL),  # 0 on every question
        (d(0.3, 0.1, 0.5), None, {"identical": True}, IDENTICAL),  # the caller knows the contexts coincide
        (d(0.0, 0.0, 0.0, identical=True), None, {"start": True}, DID_NOT_MOVE),  # against its own start
        ({"mean": 0.0, "lo": 0.0, "hi": 0.0}, None, {}, IDENTICAL),  # no flag: an all-zero interval is read as identical
        (d(0.0, 0.0, 0.0), 0.1, {}, EQUIVALENT),  # flagged not identical (differences round to 0): equivalent, not identical
    ],
)
def test_each_word_follows_the_interval(diff, margin, kwargs, word):
    assert verdict(diff, margin, **kwargs) == word
    assert word in VERDICTS


def test_labels_say_the_margin_and_inconclusive():
    assert label(EQUIVALENT, 0.1) == "equivalent within ±0.1"
    assert label(NOT_TOLD_APART) == "not told apart (inconclusive)"
    assert label(BEATS) == BEATS and label(DID_NOT_MOVE) == DID_NOT_MOVE


def test_describe_never_names_a_winner_inside_an_interval_that_holds_zero():
    assert describe(d(0.3, 0.1, 0.5), "A", "B") == "A beats B (+0.300 [+0.100, +0.500])"
    assert describe(d(-0.3, -0.5, -0.1), "A", "B").startswith("A is worse than B (-0.300")
    text = describe(d(0.3, -0.1, 0.7), "A", "B", 0.1)
    assert text.startswith("A and B are not told apart") and "inconclusive at ±0.1" in text and "0.200 with 80% power" in text
    assert "beats" not in text and "worse" not in text
    assert describe(d(0.01, -0.05, 0.08), "A", "B", 0.1) == "A is equivalent to B within ±0.1 (+0.010 [-0.050, +0.080])"
    assert "smaller than the equivalence margin ±0.1" in describe(d(0.04, 0.02, 0.06), "A", "B", 0.1)
    assert describe(d(0.0, 0.0, 0.0, identical=True), "A", "B") == "A and B are identical (the same value on every question)"
    assert describe(d(0.0, 0.0, 0.0, identical=True), "A", "dense", start=True).startswith("A did not move from dense, its start")
    assert "80% power" not in describe(d(0.3, -0.1, 0.7, mde=float("nan")), "A", "B")


def test_interval_and_with_verdict():
    assert interval(d(0.25, -0.1, 0.6), digits=2, unit=" nats") == "+0.25 [-0.10, +0.60] nats"
    judged = with_verdict(d(0.01, -0.05, 0.08), 0.1)
    assert judged["verdict"] == EQUIVALENT and judged["margin"] == 0.1 and judged["mean"] == 0.01
    assert "margin" not in with_verdict(d(0.3, 0.1, 0.5)) and with_verdict(d(0.3, 0.1, 0.5))["verdict"] == BEATS

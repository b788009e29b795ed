"""The words every report uses for a paired difference: one function decides them from the numbers.

A paired difference is ``{"mean", "lo", "hi"}``: the mean per-question difference ``a - b`` and its
95% percentile bootstrap interval (:func:`ragalign.core.metrics.paired_difference`), with ``mde``
(the smallest difference detectable at 80% power) and ``identical`` (0 on every question) when known.
:func:`verdict` turns it into one word, checked in this order:

- ``identical``: the two sides passed the generator the same contexts (``identical=True``), or the
  difference is exactly 0 on every question. Against its own start (``start=True``: a ranker or a
  trained model against the weights it began from) the word is ``did not move``.
- ``beats`` / ``worse``: the interval lies above / below 0.
- ``equivalent`` (within the margin m, e.g. ``rag.equivalence_margin`` nats): the whole interval
  lies inside [-m, +m]. This is the two one-sided tests (TOST) convention read off the study's 95%
  interval, i.e. each one-sided test at 2.5% (stricter than the textbook 90% interval at 5%).
- ``not told apart``: anything else; inconclusive at this sample size.

An interval that excludes 0 but lies inside [-m, +m] is ``beats`` / ``worse`` (a real difference, though
smaller than the margin); :func:`describe` says so. Nothing is ever "better" inside an interval that
holds 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ragalign.core.metrics import paired_difference

if TYPE_CHECKING:
    import pandas as pd

BEATS, WORSE, EQUIVALENT, NOT_TOLD_APART, IDENTICAL, DID_NOT_MOVE = "beats", "worse", "equivalent", "not told apart", "identical", "did not move"
VERDICTS = (BEATS, WORSE, EQUIVALENT, NOT_TOLD_APART, IDENTICAL, DID_NOT_MOVE)


def zero_everywhere(d: Mapping[str, Any]) -> bool:
    """Whether a difference is exactly 0 on every question: its ``identical`` flag, or (a dict without
    one) a mean and interval that are all exactly 0."""
    if "identical" in d:
        return bool(d["identical"])
    return d["mean"] == d["lo"] == d["hi"] == 0


def inside(d: Mapping[str, Any], margin: float | None) -> bool:
    """Whether the whole interval lies inside [-margin, +margin] (False without a margin)."""
    return margin is not None and -margin <= d["lo"] and d["hi"] <= margin


def verdict(d: Mapping[str, Any], margin: float | None = None, *, identical: bool = False, start: bool = False) -> str:
    """The word for a paired difference ``a - b`` (see the module docstring): one of :data:`VERDICTS`.

    ``margin``: the equivalence margin (None: no equivalence claim is made); ``identical``: the two
    sides are known to be the same (same contexts, same weights); ``start``: ``b`` is where ``a``
    started, so identical reads ``did not move``.
    """
    if identical or zero_everywhere(d):
        return DID_NOT_MOVE if start else IDENTICAL
    if d["lo"] > 0:
        return BEATS
    if d["hi"] < 0:
        return WORSE
    return EQUIVALENT if inside(d, margin) else NOT_TOLD_APART


def label(word: str, margin: float | None = None) -> str:
    """A verdict as a table cell says it: ``equivalent within ±m``, ``not told apart (inconclusive)``, or the word."""
    if word == EQUIVALENT:
        return f"equivalent within ±{margin:g}" if margin is not None else word
    return f"{word} (inconclusive)" if word == NOT_TOLD_APART else word


def interval(d: Mapping[str, Any], digits: int = 3, unit: str = "") -> str:
    """``+mean [+lo, +hi]unit``."""
    return f"{d['mean']:+.{digits}f} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}]{unit}"


def describe(
    d: Mapping[str, Any], a: str, b: str, margin: float | None = None, *, identical: bool = False, start: bool = False, digits: int = 3, unit: str = ""
) -> str:
    """``a - b`` in a sentence that follows :func:`verdict`: the word, the interval, and for an
    inconclusive one the smallest difference the study detects (``mde``) when known."""
    word = verdict(d, margin, identical=identical, start=start)
    numbers = interval(d, digits, unit)
    small = f"; smaller than the equivalence margin ±{margin:g}" if inside(d, margin) else ""
    if word == DID_NOT_MOVE:
        return f"{a} did not move from {b}, its start (identical on every question)"
    if word == IDENTICAL:
        return f"{a} and {b} are identical (the same value on every question)"
    if word == BEATS:
        return f"{a} beats {b} ({numbers}{small})"
    if word == WORSE:
        return f"{a} is worse than {b} ({numbers}{small})"
    if word == EQUIVALENT:
        return f"{a} is equivalent to {b} within ±{margin:g}{unit} ({numbers})"
    mde = d.get("mde")
    power = f"; the study detects {mde:.{digits}f} with 80% power" if mde is not None and not math.isnan(mde) else ""
    at = f" at ±{margin:g}" if margin is not None else ""
    return f"{a} and {b} are not told apart ({numbers}; inconclusive{at}{power})"


def with_verdict(d: Mapping[str, Any], margin: float | None = None, *, identical: bool = False, start: bool = False) -> dict[str, Any]:
    """The difference with its ``verdict`` (and the ``margin`` it was judged with, when one), for a metrics file."""
    return dict(d) | {"verdict": verdict(d, margin, identical=identical, start=start)} | ({"margin": margin} if margin is not None else {})


OUTCOMES = ("em", "f1", "gold_logprob")


def paired_outcomes(
    answers: pd.DataFrame, other: pd.DataFrame, n_boot: int = 1000, seed: int = 0, margin: float | None = None, outcomes: Sequence[str] = OUTCOMES
) -> dict[str, dict]:
    """EM, F1 and the gold-answer log-prob (or those of ``outcomes``) of ``answers - other`` (two variants'
    answers tables), each a :func:`ragalign.core.metrics.paired_difference` with its verdict; the
    equivalence ``margin`` (nats) applies to the log-prob only."""
    return {m: with_verdict(paired_difference(answers, other, m, n_boot, seed), margin if m == "gold_logprob" else None) for m in outcomes}

"""Answer metrics (SQuAD EM/F1, max over gold answers) and bootstrap confidence intervals."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def _f1(prediction: str, answer: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = Counter(pred) & Counter(gold)
    overlap = sum(common.values())
    if not pred or not gold:
        return float(pred == gold)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """Token F1, max over gold answers."""
    return max(_f1(prediction, a) for a in answers)


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Mean with a percentile bootstrap interval: ``{"mean", "lo", "hi"}``."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": round(float(x.mean()), 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4)}


Z_ALPHA, Z_POWER = 1.959964, 0.841621  # two-sided 5% test, 80% power


def minimum_detectable_difference(diffs: Sequence[float]) -> float:
    """Smallest true mean paired difference a two-sided 5% test detects with 80% power: (z_a + z_b) sd / sqrt(n)."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return float("nan")
    return round(float((Z_ALPHA + Z_POWER) * d.std(ddof=1) / np.sqrt(len(d))), 4)


def paired_difference(answers: pd.DataFrame, other: pd.DataFrame, metric: str, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Bootstrap interval of the per-question difference ``answers - other`` in ``metric``.

    Both frames hold one variant's answers (columns ``qid`` and ``metric``); they are paired on the
    questions they share, in qid order, and ``n`` says how many that is.
    """
    a, b = answers.set_index("qid")[metric], other.set_index("qid")[metric]
    common = a.index.intersection(b.index).sort_values()
    return paired_interval((a[common] - b[common]).to_numpy(), n_boot, seed)


def paired_interval(diffs: Sequence[float], n_boot: int = 1000, seed: int = 0) -> dict:
    """Per-question paired differences summarised: mean with its bootstrap interval, ``n``, ``mde``, and
    ``identical`` (every difference exactly 0, as when both sides saw the same contexts)."""
    d = np.asarray(diffs, dtype=float)
    return bootstrap_ci(d, n_boot, seed) | {"n": len(d), "mde": minimum_detectable_difference(d), "identical": bool(len(d) and np.all(d == 0))}


def recall_at_k(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Fraction of gold passages within the top k."""
    return len(set(ranked[:k]) & set(gold)) / len(gold) if gold else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: Sequence[str]) -> float:
    """1 / (1-based rank of the first gold passage), 0 if none is retrieved."""
    for rank, pid in enumerate(ranked, start=1):
        if pid in gold:
            return 1.0 / rank
    return 0.0


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive's score > a negative's), ties counting half (Mann-Whitney, average ranks); NaN if a side is empty."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = rankdata(np.r_[pos, neg])
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def clustered_auc_interval(scores: Sequence[float], positive: Sequence[bool], clusters: Sequence[str], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """:func:`auc` of ``scores`` (positives vs the rest) with a percentile bootstrap interval that
    resamples whole clusters (questions): ``{"mean", "lo", "hi", "n"}``, ``n`` the number of clusters."""
    s, y = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    ids, cluster = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    members = [np.flatnonzero(cluster == i) for i in range(len(ids))]
    point = auc(s[y], s[~y])
    if not len(ids) or np.isnan(point):
        return {"mean": point, "lo": float("nan"), "hi": float("nan"), "n": len(ids)}
    rng = np.random.default_rng(seed)
    draws = []
    for pick in rng.integers(0, len(ids), size=(n_boot, len(ids))):
        idx = np.concatenate([members[i] for i in pick])
        draws.append(auc(s[idx][y[idx]], s[idx][~y[idx]]))
    lo, hi = np.nanquantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": round(point, 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4), "n": len(ids)}

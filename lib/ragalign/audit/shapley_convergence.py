"""Accuracy and convergence of the Shapley estimators against exact values, by look-up in full
tables of coalition values (used by ``bench/shapley_convergence.py``)."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ragalign.audit.shapley import Estimator, Values, efficiency_gap, exact_shapley, make_estimator


def spearman(a: np.ndarray, b: np.ndarray, tie_decimals: int | None = 9) -> float:
    """Spearman correlation; for a constant vector, 1 if both orders agree, else 0.

    Values equal up to round-off (``tie_decimals`` decimals of value / largest |value|) rank as ties,
    so that players with equal exact Shapley values (symmetric or null players) do not rank by
    floating-point noise; None ranks the raw values.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if tie_decimals is not None:
        scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0))) or 1.0
        a, b = np.round(a / scale, tie_decimals), np.round(b / scale, tie_decimals)
    if np.allclose(a, a[0]) or np.allclose(b, b[0]):
        return float(np.array_equal(np.argsort(a), np.argsort(b)))
    return float(spearmanr(a, b).statistic)


def accuracy(phi_hat: np.ndarray, phi: np.ndarray, tie_decimals: int | None = 9) -> dict[str, float]:
    """Spearman (see ``spearman``), normalised L2 error ||phi_hat - phi|| / ||phi|| and max abs error."""
    norm = float(np.linalg.norm(phi))
    err = float(np.linalg.norm(phi_hat - phi))
    return {
        "spearman": spearman(phi_hat, phi, tie_decimals),
        "normalised_error": err / norm if norm > 0 else float("nan"),
        "max_abs_error": float(np.abs(phi_hat - phi).max()),
    }


def convergence(
    table: Values, k: int, estimators: Iterable[str | Estimator], budgets: Sequence[int], repeats: int, seed: int
) -> pd.DataFrame:
    """Accuracy of each estimator vs exact Shapley as a function of the budget, by look-up in ``table``.

    ``table`` holds all ``2^k`` coalition values. One row per (estimator, budget, repeat): the distinct
    coalitions used (``evaluations``), ``spearman``, ``normalised_error``, ``max_abs_error`` and
    ``efficiency_gap``. Repeat ``r`` of an estimator at a budget draws from a generator seeded by
    (seed, estimator name, budget, r), so adding an estimator leaves the others' rows unchanged.
    """
    exact = exact_shapley(table, k)
    rows = []
    for spec in estimators:
        est = make_estimator(spec)
        label = spec if isinstance(spec, str) else est.name
        for budget, rep in itertools.product(budgets, range(repeats)):
            rng = np.random.default_rng([seed, zlib.crc32(label.encode()), budget, rep])
            plan = est.plan(k, budget, rng)
            phi = est.estimate(table, plan, rng)
            rows.append({"estimator": label, "budget": budget, "repeat": rep, "evaluations": len(plan.masks),
                         **accuracy(phi, exact), "efficiency_gap": efficiency_gap(phi, table, k)})
    return pd.DataFrame(rows)


def summarise(curve: pd.DataFrame, by: Sequence[str] = ("estimator", "budget")) -> pd.DataFrame:
    """Per group: runs, mean evaluations, median and quartiles of Spearman and normalised error, mean |efficiency gap|."""

    def q(p: float) -> Callable[[pd.Series], float]:
        return lambda s: float(s.quantile(p))

    g = curve.assign(abs_efficiency_gap=curve.efficiency_gap.abs()).groupby(list(by), sort=True)
    return g.agg(
        runs=("spearman", "size"),
        evaluations=("evaluations", "mean"),
        spearman_median=("spearman", "median"),
        spearman_q25=("spearman", q(0.25)),
        spearman_q75=("spearman", q(0.75)),
        error_median=("normalised_error", "median"),
        error_q25=("normalised_error", q(0.25)),
        error_q75=("normalised_error", q(0.75)),
        efficiency_gap_mean=("abs_efficiency_gap", "mean"),
    ).reset_index()


def evaluations_to_reach(
    curve: pd.DataFrame, threshold: float = 0.95, by: str = "estimator", stat: str = "median"
) -> dict[str, int | None]:
    """Smallest budget whose ``stat`` (median or mean) Spearman reaches ``threshold``, per ``by`` value
    (None when no budget does)."""
    agg = curve.groupby([by, "budget"]).spearman.agg(stat).reset_index()
    out: dict[str, int | None] = {}
    for name, df in agg.groupby(by):
        ok = df[df.spearman >= threshold].budget
        out[str(name)] = int(ok.min()) if len(ok) else None
    return out

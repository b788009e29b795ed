"""Retriever-generator alignment (RAG-E): WARG, failure modes, rank correlation.

A ranking is a sequence of document ids, best first. The retriever ranking is the order a variant
shows its top-k documents in; the generator ranking orders the same documents by their Shapley
value (ties broken by the retriever order, so ties never count as misalignment).

WARG (weighted attribution-relevance gap) is one minus a rank-biased overlap of the two rankings:

    WARG(p) = 1 - (1-p) * sum_{d=1..k} p^(d-1) * |R_ret[:d] & R_gen[:d]| / d        ("truncated")

as RAG-E defines it. Truncated at depth k the sum is at most 1 - p^k, so even identical rankings
score p^k > 0 (0.59 at p=0.9, k=5). Two extrapolated forms fix the scale to [0, 1]:

- ``ext``: 1 - RBO_ext (Webber et al. 2010), which assumes the overlap at depth k persists:
  RBO_ext = A_k p^k + (1-p) sum_{d<=k} p^(d-1) A_d (identical -> 0, disjoint -> 1).
- ``normalised``: 1 - RBO_trunc / (1 - p^k), the truncated overlap rescaled by its maximum.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ragalign.core.metrics import bootstrap_ci

WARG_FORMS = ("truncated", "ext", "normalised")


def generator_ranking(ids: Sequence[Hashable], shapley: Sequence[float]) -> list[Hashable]:
    """``ids`` (given in retriever order) sorted by decreasing Shapley value; stable on ties."""
    order = sorted(range(len(ids)), key=lambda i: -float(shapley[i]))
    return [ids[i] for i in order]


def _agreements(ret: Sequence[Hashable], gen: Sequence[Hashable], k: int) -> np.ndarray:
    return np.array([len(set(ret[:d]) & set(gen[:d])) / d for d in range(1, k + 1)])


def warg(ret: Sequence[Hashable], gen: Sequence[Hashable], p: float, form: str = "truncated", k: int | None = None) -> float:
    """WARG(p) of two rankings at depth ``k`` (default: the shorter ranking)."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    k = min(len(ret), len(gen)) if k is None else k
    a = _agreements(ret, gen, k)
    rbo = float((1 - p) * np.sum(p ** np.arange(k) * a))
    if form == "truncated":
        return 1.0 - rbo
    if form == "ext":
        return 1.0 - (rbo + a[-1] * p**k)
    if form == "normalised":
        return 1.0 - rbo / (1 - p**k)
    raise ValueError(f"unknown WARG form {form!r} (one of {WARG_FORMS})")


def failure_modes(ret: Sequence[Hashable], gen: Sequence[Hashable], threshold: int = 2) -> dict[str, bool]:
    """RAG-E failure modes for one question (ranks 1-based):

    - ``wasted``: the retriever's top document has generator rank > ``threshold``;
    - ``noise``: the generator's top document has retriever rank > ``threshold``.
    """
    return {"wasted": gen.index(ret[0]) + 1 > threshold, "noise": ret.index(gen[0]) + 1 > threshold}


def rank_correlation(ret: Sequence[Hashable], gen: Sequence[Hashable]) -> float:
    """Spearman correlation of the positions of the shared documents in the two rankings."""
    shared = [d for d in ret if d in gen]
    if len(shared) < 2:
        return float("nan")
    return float(spearmanr([ret.index(d) for d in shared], [gen.index(d) for d in shared]).statistic)


def question_alignment(ret: Sequence[Hashable], gen: Sequence[Hashable], ps: Sequence[float], threshold: int = 2) -> dict[str, float]:
    """Every per-question alignment number: WARG in every form at every p, failure modes, Spearman."""
    row: dict[str, float] = {}
    for p in ps:
        for form in WARG_FORMS:
            row[f"warg_{form}@{p:g}"] = warg(ret, gen, p, form)
    fm = failure_modes(ret, gen, threshold)
    row["wasted"] = float(fm["wasted"])
    row["noise"] = float(fm["noise"])
    row["spearman"] = rank_correlation(ret, gen)
    row["gen_rank_of_ret_top"] = float(gen.index(ret[0]) + 1)
    row["ret_rank_of_gen_top"] = float(ret.index(gen[0]) + 1)
    return row


def summarise(rows: Sequence[dict[str, float]], n_boot: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean and bootstrap interval of every per-question number (NaNs dropped)."""
    if not rows:
        return {}
    out = {}
    for key in rows[0]:
        vals = np.array([r[key] for r in rows], dtype=float)
        out[key] = bootstrap_ci(vals[~np.isnan(vals)], n_boot, seed)
    return out


def rank_confusion(pairs: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]], k: int) -> np.ndarray:
    """[k, k] fraction of documents with retriever rank i (rows) and generator rank j (columns)."""
    m = np.zeros((k, k))
    for ret, gen in pairs:
        for i, d in enumerate(ret[:k]):
            if d in gen[:k]:
                m[i, gen.index(d)] += 1
    return m / max(1, len(pairs))


def audit(
    shapley: pd.DataFrame, retrieved: Mapping[str, Mapping[str, Sequence[Hashable]]], ps: Sequence[float], n_boot: int, seed: int
) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, dict[str, float]]]]:
    """Per-question alignment of every audited game, and its summary per (variant, order).

    ``shapley`` has one row per game (``variant, qid, order, ids, shapley``); ``retrieved[variant][qid]``
    is the retriever's ranking of the same documents. Returns the per-question table (with the
    generator ranking in ``gen``) and ``{(variant, order): {number: {mean, lo, hi}}}``.
    """
    rows = []
    for r in shapley.itertuples():
        ret, gen = retrieved[r.variant][r.qid], generator_ranking(r.ids, r.shapley)
        rows.append({"variant": r.variant, "qid": r.qid, "order": r.order, "gen": gen, **question_alignment(ret, gen, ps)})
    table = pd.DataFrame(rows)
    summary = {
        (variant, order): summarise(df.drop(columns=["variant", "qid", "order", "gen"]).to_dict("records"), n_boot, seed)
        for (variant, order), df in table.groupby(["variant", "order"], sort=False)
    }
    return table, summary


def metrics_block(summary: Mapping[str, dict[str, float]], ps: Sequence[float]) -> dict:
    """One (variant, order) summary as the metrics JSON stores it: WARG by form and p, failure rates, Spearman."""
    return {
        "warg": {form: {f"{p:g}": summary[f"warg_{form}@{p:g}"] for p in ps} for form in WARG_FORMS},
        "wasted_retrieval": summary["wasted"],
        "noise_distraction": summary["noise"],
        "spearman": summary["spearman"],
    }


def failure_ranges(summary: Mapping[tuple[str, str], Mapping[str, dict[str, float]]]) -> dict:
    """The range of each failure rate over the variants audited in retriever order (``summary``:
    (variant, order) -> measure -> mean, lo, hi): lowest and highest mean, the widest 95% interval,
    and which variants. The one place reports 10 and 11 take their ranges from."""
    original = {v: s for (v, order), s in summary.items() if order == "original"}
    out: dict = {"variants": sorted(original)}
    for measure in ("wasted", "noise"):
        means = [s[measure]["mean"] for s in original.values()]
        widths = [s[measure]["hi"] - s[measure]["lo"] for s in original.values()]
        out[measure] = {"lo": round(min(means), 4), "hi": round(max(means), 4), "widest_interval": round(max(widths), 4)} if means else None
    return out

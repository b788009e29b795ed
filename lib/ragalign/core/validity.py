"""Validity gates: does each learned component beat where it started, and can the study see a difference?

A gate is a small dict ``{"passed": bool, ...numbers}``; each stage writes its gates under a
``validity`` key of its metrics, and the summary puts any failed gate first in the findings.
Three kinds:

- :func:`ranker_gate`: a ranking against the ranking it started from, on held-out (test) questions.
- :func:`loss_gate`: a trained model's held-out loss against its untrained start.
- :func:`difference_gate`: a paired difference of the sensitive outcome that must be positive
  (e.g. oracle vs no retrieval), with its interval and the smallest difference the study can detect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ragalign.core.retrieval import retrieval_quality


def ranker_gate(ranking: pd.DataFrame, start: pd.DataFrame, questions: pd.DataFrame, ks: Sequence[int] = (1,)) -> dict:
    """A ranking vs its start on the same questions: passed when its MRR is at least the start's."""
    mine, base = retrieval_quality(ranking, questions, ks), retrieval_quality(start, questions, ks)
    return {"passed": bool(mine["mrr"] >= base["mrr"]), "ranker": mine, "start": base, "n": len(questions)}


def loss_gate(curve: pd.DataFrame) -> dict:
    """Held-out loss of the kept weights vs the untrained start (a training curve with a ``val`` split)."""
    val = curve[curve.split == "val"].reset_index(drop=True)
    if val.empty or val.loss.isna().all():
        return {"passed": False, "start": None, "best": None, "kept_step": None, "reason": "no held-out loss"}
    best = int(val.loss.idxmin())
    return {
        "passed": bool(val.loss[best] < val.loss[0]),
        "start": round(float(val.loss[0]), 4),
        "best": round(float(val.loss[best]), 4),
        "kept_step": int(val.step[best]),
    }


def chance_gate(auc: float, n: int | None = None) -> dict:
    """A judge's AUC against chance (0.5)."""
    return {"passed": bool(auc > 0.5), "auc": round(float(auc), 4), "chance": 0.5} | ({"n": n} if n is not None else {})


def difference_gate(difference: Mapping[str, float]) -> dict:
    """A paired difference (from :func:`ragalign.core.metrics.paired_difference`) that must be > 0 with its interval above 0."""
    return {"passed": bool(difference["lo"] > 0)} | dict(difference)


def failed(gates: Mapping[str, Mapping]) -> list[str]:
    """Names of the gates that did not pass, in order."""
    return [name for name, gate in gates.items() if not gate.get("passed", False)]


# What each gate asks, by ``<metrics name>.<gate>``: the findings of its stage and the README say it in these words.
GATE_LABELS = {
    "baselines.oracle_vs_no_retrieval": "the gold passages raise the gold-answer likelihood over no retrieval",
    "baselines.dense_vs_no_retrieval": "dense retrieval raises the gold-answer likelihood over no retrieval",
    "baselines.reranker_vs_dense_ranking": "the relevance reranker ranks gold passages at least as well as dense (MRR, test)",
    "baselines.reranker_heldout_loss": "relevance-reranker training lowered its held-out loss",
    "gainrag.selector_heldout_loss": "GainRAG selector training lowered its held-out KL",
    "gainrag.selector_alpha0_heldout_loss": "the α = 0 selector's training lowered its held-out KL",
    "gainrag.selector_vs_dense_ranking": "the GainRAG selector ranks gold passages at least as well as dense (MRR, test)",
    "gainrag.gold_at_top_k_vs_dense": "the GainRAG selector picks a gold passage at least as often as dense top-1",
    "radio.reranker_heldout_loss": "RADIO training lowered its held-out loss",
    "radio.reranker_vs_dense_ranking": "the RADIO reranker ranks gold passages at least as well as dense (MRR, test)",
    "figret.retriever_vs_dense_ranking": "the FiGRet retriever ranks gold passages at least as well as dense (MRR, test)",
    "figret.judge_relevance_vs_chance": "the FiGRet judge tells gold from non-gold passages (relevance AUC > 0.5)",
    "figret.judge_purity_vs_chance": "the FiGRet judge's purity AUC is above 0.5",
}


def describe_failures(gates: Mapping[str, Mapping], stage: str) -> str:
    """One sentence naming the failed gates of ``stage`` (its metrics name, e.g. ``baselines``), empty
    when all passed, to lead a findings paragraph."""
    bad = failed(gates)
    if not bad:
        return ""
    return "**Validity, not shown at this budget: " + "; ".join(GATE_LABELS.get(f"{stage}.{name}", name) for name in bad) + ".** "

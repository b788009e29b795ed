"""Validity gates: does each learned component beat where it started, and can the study see a difference?

A gate is a small dict ``{"passed": bool, "verdict": word, ...numbers}``; each stage writes its gates
under a ``validity`` key of its metrics, and the summary puts any failed gate first in the findings.
Every gate is a paired bootstrap interval over questions, judged by :func:`ragalign.core.verdicts.verdict`,
and passes only when its verdict is ``beats``: "not told apart" is not shown, and a component
identical to its start ``did not move``. No gate is a must-not-be-worse gate: an interval that holds
0 is absence of evidence, not evidence of no harm, and an equivalence claim needs a margin on the
gate's own scale (the study sets one only for the gold-answer log-prob, ``rag.equivalence_margin``).

- :func:`ranker_gate`: a ranking against the ranking it started from, on held-out (test) questions
  (per-question reciprocal-rank and recall@1 differences).
- :func:`loss_gate`: a trained model's held-out loss against its untrained start (per held-out question).
  The trainer keeps trained weights only where they beat the start on held-out questions and
  restores the start otherwise (:func:`ragalign.core.training.fit`), so a reverted model reads
  ``did not move``; the gate still reports its best checkpoint's interval.
- :func:`chance_gate`: a judge's AUC against chance, with an interval over questions.
- :func:`difference_gate`: a paired difference of the sensitive outcome that must be positive
  (e.g. oracle vs no retrieval), with its interval and the smallest difference the study can detect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from ragalign.core.metrics import paired_interval, recall_at_k, reciprocal_rank
from ragalign.core.retrieval import retrieval_quality, top_pids
from ragalign.core.verdicts import BEATS, DID_NOT_MOVE, describe, interval, label, verdict

# The curve.attrs key under which core.training.fit records per-item held-out losses (training.HELDOUT;
# not imported, so that reading gates never loads the trainer; tests/test_validity.py checks they agree).
HELDOUT = "heldout"


def _gate(word: str | None, **numbers) -> dict:
    return {"passed": word == BEATS, "verdict": word} | numbers


def same_order(ranking: Sequence[str], start: Sequence[str]) -> bool:
    """Whether a ranking orders its passages as its start does (over the depth both rank)."""
    n = min(len(ranking), len(start))
    return list(ranking[:n]) == list(start[:n])


def ranker_gate(ranking: pd.DataFrame, start: pd.DataFrame, questions: pd.DataFrame, ks: Sequence[int] = (1,), n_boot: int = 1000, seed: int = 0) -> dict:
    """A ranking vs its start on the same questions, paired per question: the reciprocal rank of the
    first gold passage (the verdict) and recall@1, ranking minus start, each with its interval.
    Passes when the ranking *beats* its start; one that orders every question as its start ``did not move``."""
    mine, base = top_pids(ranking), top_pids(start)
    ranked = [(mine.get(q, []), base.get(q, []), g) for q, g in zip(questions.qid, questions.gold_pids, strict=True)]
    moved = not all(same_order(a, b) for a, b, _ in ranked)
    rr = paired_interval([reciprocal_rank(a, g) - reciprocal_rank(b, g) for a, b, g in ranked], n_boot, seed)
    r1 = paired_interval([recall_at_k(a, g, 1) - recall_at_k(b, g, 1) for a, b, g in ranked], n_boot, seed)
    return _gate(
        verdict(rr, identical=not moved, start=not moved),
        reciprocal_rank=rr,
        recall_at_1=r1 | {"verdict": verdict(r1, identical=not moved, start=not moved)},
        ranker=retrieval_quality(ranking, questions, ks),
        start=retrieval_quality(start, questions, ks),
        n=len(questions),
    )


def loss_gate(curve: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Held-out loss of the kept weights vs the untrained start (a training curve with a ``val`` split),
    paired per held-out question (``curve.attrs[HELDOUT]``, recorded by :func:`ragalign.core.training.fit`):
    ``reduction`` = start minus kept loss, with its interval. Passes when the kept weights *beat* the
    start; kept step 0 (the start itself, e.g. restored by the trainer) ``did not move``.

    ``start``, ``best`` and ``kept`` are the mean held-out losses at the start, at the lowest point of
    the curve (step ``best_step``) and at the kept step (``kept_step``: the record's, else the best
    step). Where the record holds the best weights' item losses, ``best_reduction`` is start minus
    best loss per question: the interval the trainer's keep rule judged (the record's ``interval``),
    else computed here."""
    val = curve[curve.split == "val"].reset_index(drop=True)
    if val.empty or val.loss.isna().all():
        return _gate(None, start=None, best=None, kept=None, best_step=None, kept_step=None, reason="no held-out loss")
    best = int(val.loss.idxmin())
    items = curve.attrs.get(HELDOUT) or {}
    kept_step = int(items.get("kept_step", val.step[best]))
    kept = val.loss[val.step == kept_step]
    points = {
        "start": round(float(val.loss[0]), 4),
        "best": round(float(val.loss[best]), 4),
        "kept": round(float(kept.iloc[0]), 4) if len(kept) else None,
        "best_step": int(val.step[best]),
        "kept_step": kept_step,
    }
    if not items:
        return _gate(None, **points, reason="no per-item held-out losses recorded")
    columns = ["start", "kept"] + (["best"] if "best" in items else [])
    per_question = pd.DataFrame({k: items[k] for k in ["qid", *columns]}).groupby("qid", sort=True)[columns].mean()
    kept_best = "interval" in items and kept_step > 0 and kept_step == items.get("best_step")
    # the trainer kept the best weights on this very interval: report it, so the gate and the keep rule never disagree
    reduction = dict(items["interval"]) if kept_best else paired_interval((per_question.start - per_question.kept).to_numpy(), n_boot, seed)
    if "best" in items:
        points["best_reduction"] = items.get("interval") or paired_interval((per_question.start - per_question.best).to_numpy(), n_boot, seed)
    kept_start = kept_step == 0
    return _gate(verdict(reduction, identical=kept_start, start=kept_start), **points, reduction=reduction)


def chance_gate(auc: Mapping[str, float], chance: float = 0.5) -> dict:
    """A judge's AUC (``{"mean", "lo", "hi"[, "n"]}``, e.g. :func:`ragalign.core.metrics.clustered_auc_interval`)
    against chance: passes when the whole interval lies above ``chance``."""
    shifted = {k: round(float(auc[k]) - chance, 4) for k in ("mean", "lo", "hi")} | {"identical": False}
    extra = {"n": auc["n"]} if "n" in auc else {}
    return _gate(verdict(shifted), auc=round(float(auc["mean"]), 4), lo=auc["lo"], hi=auc["hi"], chance=chance, **extra)


def difference_gate(difference: Mapping[str, float], *, unmoved: bool = False) -> dict:
    """A paired difference (from :func:`ragalign.core.metrics.paired_difference`) that must *beat* 0
    (``unmoved``: the component is known to equal the reference it started from: ``did not move``)."""
    return _gate(verdict(difference, identical=unmoved, start=unmoved), **{k: v for k, v in difference.items() if k not in ("passed", "verdict")})


def describe_ranker(gate: Mapping, name: str, start: str = "dense") -> str:
    """A :func:`ranker_gate` in words: ``name`` against ``start`` in reciprocal rank of the first gold
    passage (the gate's verdict) and in recall@1, each paired over the test questions."""
    still = gate["verdict"] == DID_NOT_MOVE
    rr = describe(gate["reciprocal_rank"], name, start, identical=still, start=still)
    if still:
        return rr
    return f"in reciprocal rank of the first gold passage {rr}; in recall@1 {describe(gate['recall_at_1'], name, start)}"


def describe_loss(gate: Mapping, name: str) -> str:
    """A :func:`loss_gate` in words: did training lower ``name``'s held-out loss, paired per held-out
    question; for a model restored to its start, its best checkpoint's interval and that it kept its start."""
    if gate.get("verdict") is None:
        return f"{name}: {gate.get('reason', 'no held-out loss')}"
    best_step = gate.get("best_step", gate["kept_step"])
    if gate["verdict"] == DID_NOT_MOVE:
        reduction = gate.get("best_reduction")
        if not best_step or reduction is None:
            return f"training never lowered {name}'s held-out loss ({gate['start']}), so it kept its start"
        return (
            f"training did not lower {name}'s held-out loss beyond chance (best step {best_step}: {gate['start']} → {gate['best']}, "
            f"paired interval per question, start minus best, {interval(reduction)}: {label(verdict(reduction))}), so it kept its start"
        )
    return (
        f"{name} kept the weights of step {gate['kept_step']} (held-out loss {gate['start']} → {gate['best'] if gate.get('kept') is None else gate['kept']}); in held-out loss "
        f"per question (start minus kept) {describe(gate['reduction'], 'the kept model', 'its untrained start')}"
    )


def failed(gates: Mapping[str, Mapping]) -> list[str]:
    """Names of the gates that did not pass, in order."""
    return [name for name, gate in gates.items() if not gate.get("passed", False)]


# What each gate asks, by ``<metrics name>.<gate>``: the findings of its stage and the README say it in
# these words. Every gate is paired over questions with a 95% bootstrap interval and passes only on "beats".
GATE_LABELS = {
    "baselines.oracle_vs_no_retrieval": "the gold passages raise the gold-answer likelihood over no retrieval",
    "baselines.dense_vs_no_retrieval": "dense retrieval raises the gold-answer likelihood over no retrieval",
    "baselines.reranker_vs_dense_ranking": "the relevance reranker ranks gold passages better than dense, its start (reciprocal rank, test)",
    "baselines.reranker_heldout_loss": "relevance-reranker training lowered its held-out loss",
    "gainrag.selector_heldout_loss": "GainRAG selector training lowered its held-out KL",
    "gainrag.selector_alpha0_heldout_loss": "the α = 0 selector's training lowered its held-out KL",
    "gainrag.selector_vs_dense_ranking": "the GainRAG selector ranks gold passages better than dense, its start (reciprocal rank, test)",
    "gainrag.gold_at_top_k_vs_dense": "the GainRAG selector picks a gold passage more often than dense top-1",
    "radio.reranker_heldout_loss": "RADIO training lowered its held-out loss",
    "radio.reranker_vs_dense_ranking": "the RADIO reranker ranks gold passages better than dense, its start (reciprocal rank, test)",
    "figret.retriever_vs_dense_ranking": "the FiGRet retriever ranks gold passages better than dense, its start (reciprocal rank, test)",
    "figret.judge_relevance_vs_chance": "the FiGRet judge tells gold from non-gold passages (relevance AUC above 0.5)",
    "figret.judge_purity_vs_chance": "the FiGRet judge's purity AUC is above 0.5",
    "reader.tuned_heldout_loss": "reader tuning lowered the held-out answer loss below the untuned generator's",
    "reader.fair_budget_heldout_loss": "reader tuning on the fair budget lowered the held-out answer loss",
    "seam.coupled_selector_heldout_loss": "the coupled GainRAG selector's training (tuned-reader labels) lowered its held-out KL",
    "seam.coupled_selector_vs_dense_ranking": "the coupled GainRAG selector ranks gold passages better than dense, its start (reciprocal rank, test)",
}


def gate_text(name: str, gate: Mapping) -> str:
    """A gate (``<metrics name>.<gate>``) in words, with its verdict: 'the relevance reranker ...: did not move'."""
    word = gate.get("verdict")
    round_ = re.fullmatch(r"figret\.retriever_heldout_loss_round_(\d+)", name)
    text = f"FiGRet's round-{round_.group(1)} retriever training lowered its held-out loss" if round_ else GATE_LABELS.get(name, name)
    return text + (f": {label(word)}" if word else "")


def describe_failures(gates: Mapping[str, Mapping], stage: str) -> str:
    """One sentence naming the failed gates of ``stage`` (its metrics name, e.g. ``baselines``) with
    their verdicts, empty when all passed, to lead a findings paragraph."""
    bad = failed(gates)
    if not bad:
        return ""
    return "**Validity, not shown at this budget: " + "; ".join(gate_text(f"{stage}.{name}", gates[name]) for name in bad) + ".** "

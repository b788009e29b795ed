"""FiGRet's rounds (reciprocal feedback) and its one-round ablations.

A round collects the current retriever's poorly served questions, judges them, builds the examples
and trains; the next round re-retrieves with the updated retriever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ragalign.core.lm import LM
from ragalign.core.rag import PassageStore, answer_questions
from ragalign.core.retrieval import DenseEncoder, retrieval_quality, top_pids
from ragalign.methods.figret.examples import OBJECTIVES, Example, build_examples
from ragalign.methods.figret.judge import judge_questions
from ragalign.methods.figret.training import search_pool, train_retriever


def poorly_served(
    lm: LM,
    questions: pd.DataFrame,
    ranked: dict[str, list[str]],
    store: PassageStore,
    *,
    top_k: int,
    max_new_tokens: int,
) -> pd.DataFrame:
    """``qid, gold_in_top_k, em, poor`` for each question.

    A question is poorly served when a gold passage is missing from the top_k, or when the RAG
    answer from the top_k is wrong. Only questions with every gold passage retrieved are answered
    (``em`` is NaN for the others: they are poorly served whatever the answer).
    """
    found = [set(g) <= set(ranked[q][:top_k]) for q, g in zip(questions.qid, questions.gold_pids, strict=True)]
    out = pd.DataFrame({"qid": questions.qid.to_numpy(), "gold_in_top_k": found, "em": np.nan})
    asked = questions[np.asarray(found, dtype=bool)]
    if len(asked):
        ans = answer_questions(
            lm, asked, {q: ranked[q][:top_k] for q in asked.qid}, store, "figret_train", max_new_tokens
        )
        out.loc[out.gold_in_top_k, "em"] = ans.em.to_numpy()
    out["poor"] = ~out.gold_in_top_k | (out.em == 0)
    return out


@dataclass
class Round:
    """What one FiGRet round saw and did."""

    round: int
    served: pd.DataFrame
    passages: pd.DataFrame
    sets: pd.DataFrame
    examples: list[Example]
    curve: pd.DataFrame | None = None
    cost: dict[str, int] | None = None


def collect_round(
    lm: LM,
    questions: pd.DataFrame,
    ranked: dict[str, list[str]],
    store: PassageStore,
    *,
    round: int,
    top_k: int,
    k: int,
    n_negatives: int,
    judge_batch: int,
    max_new_tokens: int,
) -> Round:
    """Failures of the current retriever, LLM judgements for them, and the round's examples."""
    served = poorly_served(lm, questions, ranked, store, top_k=top_k, max_new_tokens=max_new_tokens)
    poor = questions[questions.qid.isin(served.qid[served.poor])]
    passages, sets = judge_questions(lm, poor, ranked, store, k=k, n_negatives=n_negatives, batch=judge_batch)
    examples = build_examples(poor, passages, sets, n_negatives=n_negatives, round=round) if len(passages) else []
    return Round(round, served, passages, sets, examples)


def run_rounds(
    lm: LM,
    encoder: DenseEncoder,
    examined: pd.DataFrame,
    ranked: dict[str, list[str]],
    store: PassageStore,
    texts: dict[str, str],
    *,
    n_rounds: int,
    pools: dict[str, tuple[pd.DataFrame, Sequence[str]]],
    ks: Sequence[int],
    search_k: int,
    encode_batch_size: int,
    judge: dict,
    train: dict,
) -> tuple[list[Round], pd.DataFrame]:
    """FiGRet's reciprocal feedback: ``n_rounds`` of collect -> judge -> train -> re-retrieve.

    ``encoder`` is trained in place. ``ranked`` is the starting ranking of the ``examined``
    questions; after each round they are re-retrieved in ``pools["train examined (pool)"]``.
    ``pools`` maps a split name to (questions, candidate pids); each is measured after every round.
    ``judge`` holds :func:`collect_round`'s keywords (top_k, k, n_negatives, judge_batch,
    max_new_tokens), ``train`` :func:`train_retriever`'s. Returns the rounds (with their LLM cost)
    and one history row per (round, split) with the retrieval quality.
    """
    rounds, history = [], []
    for r in range(1, n_rounds + 1):
        evaluations, tokens = lm.evaluations, lm.forward_tokens
        rd = collect_round(lm, examined, ranked, store, round=r, **judge)
        rd.cost = {"lm_evaluations": lm.evaluations - evaluations, "lm_forward_tokens": lm.forward_tokens - tokens}
        rd.curve = train_retriever(encoder, rd.examples, texts, order="dual", desc=f"round {r}", **train)
        rounds.append(rd)
        for split, (questions, pool) in pools.items():
            ranking = search_pool(encoder, questions, pool, texts, search_k, "figret", encode_batch_size)
            history.append({"round": r, "split": split, **retrieval_quality(ranking, questions, ks)})
            if split == "train examined (pool)":
                ranked = top_pids(ranking)
    return rounds, pd.DataFrame(history)


def round_table(rounds: Sequence[Round]) -> pd.DataFrame:
    """One row per round: questions examined and poorly served (and why), examples per objective, LLM cost."""
    rows = []
    for rd in rounds:
        objectives = pd.Series([e.objective for e in rd.examples], dtype=object)
        rows.append(
            {
                "round": rd.round,
                "examined": len(rd.served),
                "poorly served": int(rd.served.poor.sum()),
                "gold missing from top-k": int((~rd.served.gold_in_top_k).sum()),
                "answered wrong (gold in top-k)": int((rd.served.em == 0).sum()),
                **{o: int((objectives == o).sum()) for o in OBJECTIVES},
                **(rd.cost or {}),
            }
        )
    return pd.DataFrame(rows)


ABLATIONS = (
    ("no curriculum (shuffled)", OBJECTIVES, "shuffled"),
    ("relevance only", ("relevance",), "dual"),
    ("comprehensiveness only", ("comprehensiveness",), "dual"),
    ("purity only", ("purity",), "dual"),
)


def run_ablations(
    make_encoder,
    examples: Sequence[Example],
    texts: dict[str, str],
    questions: pd.DataFrame,
    pool: Sequence[str],
    *,
    k: int,
    ks: Sequence[int],
    encode_batch_size: int = 64,
    **train_kwargs,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One-round ablations from the same examples, each from a fresh encoder (``make_encoder()``).

    Returns (quality within the pool per variant: ``variant, recall@k..., mrr, n_examples``; the
    training curves with a ``variant`` column).
    """
    rows, curves = [], []
    for name, objectives, order in ABLATIONS:
        encoder = make_encoder()
        subset = [e for e in examples if e.objective in objectives]
        curve = train_retriever(encoder, subset, texts, order=order, desc=name, **train_kwargs)
        ranking = search_pool(encoder, questions, pool, texts, k, name, encode_batch_size)
        rows.append({"variant": name, **retrieval_quality(ranking, questions, ks), "n_examples": len(subset)})
        curves.append(curve.assign(variant=name))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)

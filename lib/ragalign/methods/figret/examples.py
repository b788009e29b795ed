"""FiGRet's fine-grained examples and the dual curriculum.

Gold passages are anchors, the only positives; the LLM's judgements decide which retrieved passages
become trusted hard negatives, order them, and set each example's difficulty. The curriculum walks
relevance -> comprehensiveness -> purity, easy -> hard within each objective.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

OBJECTIVES = ("relevance", "comprehensiveness", "purity")
ORDERS = ("dual", "shuffled")


@dataclass(frozen=True)
class Example:
    """A contrastive example: query, a positive set of pids and negative sets, for one objective.

    ``margin`` is the LLM judgement margin between the positive and its closest negative;
    ``difficulty`` in [0, 1] is its rank within the objective (0: largest margin, easiest).
    """

    qid: str
    query: str
    objective: str
    positive: tuple[str, ...]
    negatives: tuple[tuple[str, ...], ...]
    margin: float
    difficulty: float = 0.0
    round: int = 1


def build_examples(
    questions: pd.DataFrame, passages: pd.DataFrame, sets: pd.DataFrame, *, n_negatives: int, round: int = 1
) -> list[Example]:
    """Examples per objective from the judgements; gold passages are the (anchor) positives.

    - relevance: anchor g vs the retrieved non-gold passages the LLM finds less helpful than g,
      hardest for the retriever (highest ranked) first;
    - purity: anchor g vs the retrieved non-gold passages the LLM finds more misleading than g,
      most misleading first;
    - comprehensiveness: the complete gold set vs the incomplete sets the LLM finds less complete.
    Negatives the LLM rates at least as good as the anchor are dropped (possible unlabelled
    positives); an anchor without any trusted negative gives no example.
    """
    text = dict(zip(questions.qid, questions.question, strict=True))
    out: list[Example] = []
    for qid, df in passages.groupby("qid", sort=True):
        gold = df[df.is_gold]
        others = df[~df.is_gold & (df["rank"] >= 0)].sort_values("rank")
        for g in gold.sort_values("pid").itertuples():
            neg = others[others.relevance < g.relevance][:n_negatives]
            if len(neg):
                out.append(
                    Example(
                        qid,
                        text[qid],
                        "relevance",
                        (g.pid,),
                        tuple((p,) for p in neg.pid),
                        float(g.relevance - neg.relevance.max()),
                        round=round,
                    )
                )
            neg = others[others.purity < g.purity].sort_values(["purity", "rank"])[:n_negatives]
            if len(neg):
                out.append(
                    Example(
                        qid,
                        text[qid],
                        "purity",
                        (g.pid,),
                        tuple((p,) for p in neg.pid),
                        float(g.purity - neg.purity.max()),
                        round=round,
                    )
                )
    for qid, df in sets.groupby("qid", sort=True):
        complete = df[df.complete]
        if complete.empty:
            continue
        pos = complete.iloc[0]
        neg = df[~df.complete & (df.comprehensiveness < pos.comprehensiveness)][:n_negatives]
        if len(neg) and len(pos.pids):
            out.append(
                Example(
                    qid,
                    text[qid],
                    "comprehensiveness",
                    tuple(pos.pids),
                    tuple(tuple(p) for p in neg.pids),
                    float(pos.comprehensiveness - neg.comprehensiveness.max()),
                    round=round,
                )
            )
    return with_difficulty(out)


def with_difficulty(examples: Sequence[Example]) -> list[Example]:
    """Set each example's difficulty to its margin rank within its objective (0 easiest, 1 hardest)."""
    out = list(examples)
    for objective in OBJECTIVES:
        idx = [i for i, e in enumerate(out) if e.objective == objective]
        order = sorted(idx, key=lambda i: (-out[i].margin, out[i].qid, out[i].positive))
        for r, i in enumerate(order):
            out[i] = replace(out[i], difficulty=r / max(1, len(order) - 1))
    return out


def curriculum_order(examples: Sequence[Example], order: str = "dual", seed: int = 0) -> list[Example]:
    """Examples in training order.

    ``dual``: relevance -> comprehensiveness -> purity, easy -> hard within each objective;
    ``shuffled``: a seeded random order (the no-curriculum ablation).
    """
    if order not in ORDERS:
        raise ValueError(f"unknown curriculum order {order!r}; one of {ORDERS}")
    key = sorted(examples, key=lambda e: (OBJECTIVES.index(e.objective), e.difficulty, e.qid, e.positive))
    if order == "shuffled":
        random.Random(seed).shuffle(key)
    return key


def examples_table(examples: Sequence[Example]) -> pd.DataFrame:
    """One row per example (for reports and counts)."""
    return pd.DataFrame(
        [
            {
                "round": e.round,
                "objective": e.objective,
                "qid": e.qid,
                "positive": list(e.positive),
                "n_negatives": len(e.negatives),
                "margin": e.margin,
                "difficulty": e.difficulty,
            }
            for e in examples
        ],
        columns=["round", "objective", "qid", "positive", "n_negatives", "margin", "difficulty"],
    )

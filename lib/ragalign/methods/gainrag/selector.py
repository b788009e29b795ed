"""GainRAG's selector: training groups with softmax targets over gain labels, and selection at test time.

At test time the selector reranks a question's top retrieved passages plus its pseudo-passage
(unless N/A); ``drop_pseudo`` is the 'no pseudo-passage' ablation of such a ranking.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ragalign.core.rerank import Group
from ragalign.methods.gainrag.pseudo import is_pseudo, pseudo_pid


# ---- selector training data --------------------------------------------------------------
def softmax(x: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(x, dtype=float) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def selector_groups(
    labels: pd.DataFrame,
    questions: pd.DataFrame,
    passage_text,
    group_size: int,
    seed: int,
    label_col: str = "label",
    temperature: float = 1.0,
) -> list[Group]:
    """One training group per question, target = softmax(labels / temperature) over the group.

    As in the paper's selector data, the best-gain passage is always in the group (its 'positive');
    the pseudo-passage (when labelled, i.e. not N/A) too; the rest is a seeded sample of the other
    labelled passages, with replacement only when a question has fewer than ``group_size``.
    ``passage_text`` maps pid -> text and must cover the pseudo pids.
    """
    rng = random.Random(seed)
    text_of = questions.set_index("qid").question.to_dict()
    groups = []
    for qid, df in labels.sort_values(["qid", "pid"]).groupby("qid", sort=True):
        lab = dict(zip(df.pid, df[label_col], strict=True))
        best = max(lab, key=lambda p: (lab[p], p))
        must = [best] + [p for p in lab if is_pseudo(p) and p != best]
        rest = [p for p in lab if p not in must]
        need = group_size - len(must)
        if need <= len(rest):
            chosen = must + rng.sample(rest, need)
        else:
            pool = rest or must
            chosen = must + rest + [rng.choice(pool) for _ in range(need - len(rest))]
        chosen = chosen[:group_size]
        rng.shuffle(chosen)
        target = softmax([lab[p] for p in chosen], temperature)
        groups.append(Group(qid, text_of[qid], tuple(passage_text[p] for p in chosen), tuple(float(t) for t in target)))
    return groups


# ---- selection at test time -------------------------------------------------------------------
def top_contexts(ranking: pd.DataFrame, top_k: int) -> dict[str, list[str]]:
    """qid -> the first ``top_k`` pids of a ranking."""
    top = ranking[ranking["rank"] < top_k].sort_values(["qid", "rank"])
    return top.groupby("qid", sort=False).pid.agg(list).to_dict()


def selector_candidates(ranking: pd.DataFrame, top_n: int, pseudo: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """qid -> the ranking's top ``top_n`` pids plus the question's pseudo-passage (unless N/A)."""
    cands = top_contexts(ranking, top_n)
    if pseudo is not None:
        for r in pseudo.itertuples():
            if not r.is_na and r.qid in cands:
                cands[r.qid] = [*cands[r.qid], pseudo_pid(r.qid)]
    return cands


def drop_pseudo(ranking: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """The ranking without pseudo-passages, ranks renumbered (the 'no pseudo-passage' ablation)."""
    out = ranking[~ranking.pid.map(is_pseudo)].sort_values(["qid", "rank"]).copy()
    out["rank"] = out.groupby("qid").cumcount()
    if method:
        out["method"] = method
    return out.reset_index(drop=True)


def context_texts(contexts: dict[str, list[str]], text_of: Callable[[str], str]) -> dict[str, list[str]]:
    """qid -> generator texts of its context pids (``text_of``: pid -> text, pseudo pids included)."""
    return {qid: [text_of(p) for p in pids] for qid, pids in contexts.items()}


def pseudo_selection_rate(ranking: pd.DataFrame, top_k: int = 1) -> float:
    """Fraction of questions whose top ``top_k`` include the pseudo-passage."""
    ctx = top_contexts(ranking, top_k)
    return float(np.mean([any(is_pseudo(p) for p in v) for v in ctx.values()])) if ctx else float("nan")

"""FiGRet's LLM feedback: constrained yes/no judgements of passages and passage sets.

Each judgement is log p(yes) - log p(no) of the first reply token (one forward, cached in the LM
cache), never free text: *relevance* and *purity* of single passages, *comprehensiveness* of
passage sets. :func:`judge_auc` measures a judge against chance (gold vs non-gold passages).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ragalign.core.cache import make_key
from ragalign.core.lm import LM
from ragalign.core.metrics import clustered_auc_interval
from ragalign.core.rag import PassageStore

QUESTIONS = {
    "relevance": "Does the passage above help answer the question?",
    "purity": "Does the passage above contain misleading or distracting information for this question?",
    "comprehensiveness": (
        "Do the passages above together contain all the facts needed to answer the question "
        "(for a question that needs two facts, both of them)?"
    ),
}
YES, NO = ("Yes", "yes", "YES"), ("No", "no", "NO")


def judge_prompt(criterion: str, question: str, passages: Sequence[str]) -> str:
    """The user message of one yes/no judgement: passages, question, criterion, reply format."""
    context = "".join(f"{p}\n\n" for p in passages)
    return f"{context}Question: {question}\n{QUESTIONS[criterion]} Answer Yes or No."


def _first_token_ids(lm: LM, words: Sequence[str]) -> list[int]:
    return sorted({lm.answer_ids(w)[0] for w in words})


def yes_no_scores(lm: LM, prompts: Sequence[str], batch: int = 16, desc: str | None = None) -> np.ndarray:
    """log p(yes) - log p(no) of the first reply token for each prompt (cached in the LM cache).

    "yes" and "no" each pool their case variants (log-sum-exp of Yes/yes/YES). One forward per
    prompt reads both answers from the same next-token distribution. Cost is counted like every
    ``LM`` call: one evaluation per prompt, cache hits included.
    """
    yes, no = _first_token_ids(lm, YES), _first_token_ids(lm, NO)
    lm.count(prompts, [YES[0]] * len(prompts))

    def compute(chunk: list[str]) -> list[float]:
        out = [0.0] * len(chunk)
        for i, hidden, _ in lm.answer_hidden(chunk, [YES[0]] * len(chunk), desc=desc):
            logp = torch.log_softmax(lm.model.lm_head(hidden[:1]).float()[0], dim=-1)
            out[i] = float(torch.logsumexp(logp[yes], 0) - torch.logsumexp(logp[no], 0))
        return out

    keys = [make_key("yesno", *lm.signature, yes, no, p) for p in prompts]
    return np.asarray(lm.cache.map(keys, list(prompts), compute, chunk_size=batch), dtype=np.float64)


def set_plan(
    gold: Sequence[str], ranked: Sequence[str], k: int, n_negatives: int
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The complete gold set and its incomplete variants for the comprehensiveness judgement.

    Gold passages are ordered by the retriever's rank (unretrieved last): the last one is the
    "missing hop". Each negative set replaces it with one of the top non-gold passages.
    """
    position = {p: i for i, p in enumerate(ranked)}
    complete = tuple(sorted(gold, key=lambda p: (position.get(p, len(ranked)), p)))
    distractors = [p for p in ranked[:k] if p not in set(gold)][:n_negatives]
    return complete, [complete[:-1] + (d,) for d in distractors]


def judge_questions(
    lm: LM,
    questions: pd.DataFrame,
    ranked: dict[str, list[str]],
    store: PassageStore,
    *,
    k: int,
    n_negatives: int,
    batch: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LLM judgements for each question's top-k passages, its gold passages and its passage sets.

    Returns (passage judgements ``qid, pid, rank, is_gold, relevance, purity``; set judgements
    ``qid, pids, complete, comprehensiveness``). Purity is log p(no) - log p(yes) (higher: purer).
    """
    rows, sets = [], []
    for q in questions.itertuples():
        top = list(ranked[q.qid][:k])
        position = {p: i for i, p in enumerate(ranked[q.qid])}
        for pid in top + [g for g in q.gold_pids if g not in top]:
            rows.append(
                {
                    "qid": q.qid,
                    "question": q.question,
                    "pid": pid,
                    "rank": position.get(pid, -1),
                    "is_gold": pid in set(q.gold_pids),
                }
            )
        complete, negatives = set_plan(list(q.gold_pids), ranked[q.qid], k, n_negatives)
        for pids in [complete, *negatives]:
            sets.append({"qid": q.qid, "question": q.question, "pids": list(pids), "complete": pids == complete})
    passages, sets = pd.DataFrame(rows), pd.DataFrame(sets)
    if passages.empty:
        return (
            pd.DataFrame(columns=["qid", "pid", "rank", "is_gold", "relevance", "purity"]),
            pd.DataFrame(columns=["qid", "pids", "complete", "comprehensiveness"]),
        )
    for criterion, sign in (("relevance", 1.0), ("purity", -1.0)):
        prompts = [judge_prompt(criterion, r.question, [store[r.pid]]) for r in passages.itertuples()]
        passages[criterion] = sign * yes_no_scores(lm, prompts, batch, desc=f"judge {criterion}")
    prompts = [judge_prompt("comprehensiveness", r.question, store.texts(r.pids)) for r in sets.itertuples()]
    sets["comprehensiveness"] = yes_no_scores(lm, prompts, batch, desc="judge comprehensiveness")
    return passages.drop(columns="question"), sets.drop(columns="question")


def judge_auc_interval(judged: pd.DataFrame, n_boot: int, seed: int, criteria: Sequence[str] = ("relevance", "purity")) -> dict[str, dict]:
    """Per criterion: the judge's AUC, gold vs non-gold, with a bootstrap interval over the judged
    questions (:func:`ragalign.core.metrics.clustered_auc_interval`): ``{"mean", "lo", "hi", "n"}``."""
    return {c: clustered_auc_interval(judged[c], judged.is_gold.astype(bool), judged.qid, n_boot, seed) for c in criteria}


def judge_auc(judged: pd.DataFrame, criteria: Sequence[str] = ("relevance", "purity")) -> dict[str, float]:
    """P(a gold passage's judgement > a non-gold one's), ties counting half (0.5 is chance), per criterion."""
    gold, other = judged[judged.is_gold], judged[~judged.is_gold]
    if gold.empty or other.empty:
        return {c: float("nan") for c in criteria}
    return {c: float(np.mean([(g > n) + 0.5 * (g == n) for g in gold[c] for n in other[c]])) for c in criteria}

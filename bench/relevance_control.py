"""What the relevance control's target asks against what the curve measures: one gold per group, or both sharing it.

    .venv/bin/python bench/relevance_control.py [--questions 800] [--out bench/results/relevance_control.json]

Stage 12 trains the relevance reranker on ``--questions`` benchmark questions (its largest point). A
HotpotQA question has two gold passages: usually one dense finds first (the *easy* gold) and one it ranks
lower or misses (the *bridge*). A target shared evenly over both (``uniform``) makes KL(uniform || softmax)
fall when the easy gold's probability falls towards the bridge's: with p = (0.9, 0.02) on the two golds the
loss is 1.31 nats, with (0.5, 0.05) 1.15. That target rewards demoting the passage dense already puts first:
its held-out loss falls while the first gold's rank gets worse. This measurement is why the study's
``training.relevance_target`` is ``per_gold``.

Two arms of ``rerank.relevance_groups``, the study's trainer and budget, the same questions, the same
number of groups and steps:

- ``uniform``: both golds, target 1/2 each, hard negatives;
- ``per gold`` (the study's): each question's group holds one of its golds (seeded choice) and the same
  number of hard negatives, one-hot target, the other gold left out: every gold pushed above negatives,
  never against the other gold.

Both rank stage 12's held-out questions' dense candidates. Reported per arm, paired per question against
dense with 95% intervals: the reciprocal rank of the first gold (stage 12's measure), of the easy gold and
of the bridge (each gold's own rank, dense's better-ranked one is easy; 0 when missing from the
candidates), and the share of a question's golds in the top ``rag.top_k`` (what the generator is shown);
and ``per gold`` minus ``uniform``. Wall times hold on the CPU this ran on (``host``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from report import emit

from ragalign.core import artifacts, params
from ragalign.core.data import load_benchmark, load_passages, load_questions
from ragalign.core.metrics import paired_interval, reciprocal_rank
from ragalign.core.question_sets import curve_questions
from ragalign.core.rerank import relevance_groups, rerank, train_reranker
from ragalign.core.retrieval import passage_texts, rankings_of, top_pids
from ragalign.core.seed import seed_everything

ARMS = {"uniform": "uniform", "per gold": "per_gold"}  # arm -> training.relevance_target


def measures(ranked: dict[str, list[str]], dense: dict[str, list[str]], questions: pd.DataFrame, k: int) -> dict[str, np.ndarray]:
    """Per question: reciprocal rank of the first gold, of the easy gold (the one dense ranks higher) and of
    the bridge (the other), and the share of its golds in the top ``k``."""
    out: dict[str, list[float]] = {"first_gold": [], "easy_gold": [], "bridge_gold": [], "gold_share_top_k": []}
    for q in questions.itertuples():
        golds, order = list(q.gold_pids), ranked[q.qid]
        by_dense = sorted(golds, key=lambda g: dense[q.qid].index(g) if g in dense[q.qid] else len(dense[q.qid]))
        out["first_gold"].append(reciprocal_rank(order, golds))
        out["easy_gold"].append(reciprocal_rank(order, by_dense[:1]))
        out["bridge_gold"].append(reciprocal_rank(order, by_dense[1:2]) if len(golds) > 1 else np.nan)
        out["gold_share_top_k"].append(len(set(order[:k]) & set(golds)) / len(golds))
    return {m: np.asarray(v, dtype=float) for m, v in out.items()}


def paired(a: np.ndarray, b: np.ndarray, n_boot: int) -> dict:
    """``a - b`` per question (questions without a value on either side dropped), with its 95% interval."""
    keep = ~(np.isnan(a) | np.isnan(b))
    return paired_interval(a[keep] - b[keep], n_boot, 0)


def main(argv: list[str] | None = None) -> int:
    P = params.load()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=max(P.curve.sizes))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    study, passages = load_questions(), load_passages()
    held, pool = curve_questions(P, load_benchmark(), study)
    train = pool.iloc[: args.questions]
    text = passage_texts(passages)
    ranking = rankings_of(artifacts.DENSE.read(), [*held.qid, *train.qid])
    candidates = top_pids(ranking)
    base = measures(candidates, candidates, held, P.rag.top_k)
    arms = {arm: relevance_groups(train, candidates, text, P.training.group_size, P.training.seed, target) for arm, target in ARMS.items()}
    runs, scores = {}, {}
    for arm, groups in arms.items():
        seed_everything(P.training.seed)
        t0 = time.perf_counter()
        model, curve = train_reranker(P.models.encoder, groups, P.training, desc=f"{arm}, {len(groups)} groups", prior_max_length=P.retrieval.max_length)
        wall = time.perf_counter() - t0
        h = curve.attrs["heldout"]
        scores[arm] = measures(top_pids(rerank(model, held, candidates, text, arm, priors=ranking)), candidates, held, P.rag.top_k)
        runs[arm] = {"groups": len(groups), "train_s": round(wall, 1), "kept_step": int(h["kept_step"]), "best_step": int(h["best_step"]),
                     "prior_temperature": round(float(model.prior_temperature), 4), "loss_reduction": h["interval"],
                     "mean": {m: round(float(np.nanmean(v)), 4) for m, v in scores[arm].items()},
                     "vs_dense": {m: paired(v, base[m], P.rag.n_bootstrap) for m, v in scores[arm].items()}}
    runs["per gold"]["vs_uniform"] = {m: paired(scores["per gold"][m], scores["uniform"][m], P.rag.n_bootstrap) for m in base}
    result = {"questions": len(train), "held_out_questions": len(held), "top_k": P.rag.top_k, "group_size": P.training.group_size,
              "dense": {m: round(float(np.nanmean(v)), 4) for m, v in base.items()}, "runs": runs}
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage 12: the relevance reranker's learning curve, the control that must learn.

Relevance labels on HotpotQA are free (the supporting facts), so the relevance reranker can train on
as many benchmark questions as lie outside the study's splits. A seeded order of those questions
gives ``curve.eval_questions`` held-out questions, ranked at every point, and nested training sets of
``curve.sizes`` questions. Each point trains the reranker with the study's trainer
(``rerank.train_reranker``: its keep rule included) and, with ``curve.reference``, sentence-transformers'
bi-encoder on the same groups (``core.reference_training``); both rank the held-out questions' dense
candidates, paired per question with dense (reciprocal rank of the first gold passage, gold first).
At ``curve.answer_sizes`` the project's reranker also ranks and answers the study's test questions with its
top ``rag.top_k``, paired with dense top-k on the gold-answer log-prob (only those points rank them). Points are cached on disk
(``.cache/ragalign/curve.sqlite``), keyed by everything that produced them: an interrupted stage resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ragalign.core import artifacts
from ragalign.core.cache import Cache, make_key
from ragalign.core.data import load_benchmark, load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_difference, paired_interval, reciprocal_rank
from ragalign.core.models import content_id, resolve
from ragalign.core.params import Params
from ragalign.core.question_sets import curve_questions
from ragalign.core.rag import PassageStore, answer_questions
from ragalign.core.reference_training import rescore, train_reference
from ragalign.core.rerank import relevance_groups, rerank, train_reranker
from ragalign.core.retrieval import passage_texts, rankings_of, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.verdicts import with_verdict


@dataclass
class Result:
    points: pd.DataFrame  # trainer, n, mrr, gold_at_1 (paired with dense: mean, lo, hi, verdict), first_place, prior_temperature, kept
    dense: dict  # the held-out questions' dense ranking: mrr, gold_at_1, headroom
    answers: dict  # "project@n" -> gold-answer log-prob, paired with dense top-k on the test questions
    metrics: dict  # results/metrics/curve.json


def largest_size(P: Params, available: int) -> int:
    """The most training questions a point can have: the benchmark's questions outside the study's
    splits and the held-out questions."""
    return available - P.data.n_train - P.data.n_test - P.curve.eval_questions


def per_question(ranking: pd.DataFrame, questions: pd.DataFrame) -> dict[str, list[float]]:
    """Each question's reciprocal rank of its first gold passage and whether a gold passage is first."""
    ranked = top_pids(ranking)
    rr = [reciprocal_rank(ranked[q], g) for q, g in zip(questions.qid, questions.gold_pids, strict=True)]
    return {"rr": rr, "gold_at_1": [float(r == 1.0) for r in rr]}


def first_place(moved: list[float], base: list[float]) -> dict[str, int]:
    """Where a ranking moves the first place against dense, per held-out question (``gold_at_1`` lists):
    of dense's ``misses`` (no gold passage first) how many it ``fixed``, of its ``hits`` how many it ``lost``.
    The paired gold@1 difference is (fixed - lost) / n: a flat curve can hide many moves that cancel."""
    moved_, base_ = np.asarray(moved, dtype=bool), np.asarray(base, dtype=bool)
    return {"misses": int((~base_).sum()), "fixed": int((~base_ & moved_).sum()), "hits": int(base_.sum()), "lost": int((base_ & ~moved_).sum())}


def train_point(P: Params, trainer: str, groups: list, held: pd.DataFrame, test: pd.DataFrame | None, candidates: dict, dense: pd.DataFrame, text: dict) -> dict:
    """One point: train on ``groups``, rank the held-out candidates and, given ``test`` (a point that answers),
    the test questions' (``test_top``); JSON-ready."""
    seed_everything(P.training.seed)
    extra = {}
    if trainer == "reference":
        model = train_reference(P.models.encoder, groups, epochs=P.training.epochs, max_length=P.retrieval.max_length, seed=P.training.seed)
    else:
        model, curve = train_reranker(P.models.encoder, groups, P.training, desc=f"relevance reranker, {len(groups)} groups", prior_max_length=P.retrieval.max_length)
        h = curve.attrs["heldout"]
        extra = {"prior_temperature": model.prior_temperature, "kept_step": h["kept_step"], "best_step": h["best_step"],
                 "loss_reduction": h["interval"], "val_loss": [round(v, 4) for v in curve[curve.split == "val"].loss]}

    def ranked(questions: pd.DataFrame) -> pd.DataFrame:
        if trainer == "reference":
            return rescore(model, questions, candidates, text, trainer)
        return rerank(model, questions, candidates, text, trainer, priors=dense)

    point = {**per_question(ranked(held), held), **extra}
    return point if test is None else point | {"test_top": top_pids(ranked(test), P.rag.top_k)}


def run(P: Params) -> Result:
    study, passages = load_questions(), load_passages()
    test = study[study.split == "test"].reset_index(drop=True)
    held, pool = curve_questions(P, load_benchmark(), study)
    largest = max(P.curve.sizes)
    if largest > len(pool):
        raise ValueError(f"curve.sizes asks for {largest} training questions; {len(pool)} are available (the largest allowed value)")
    text = passage_texts(passages)
    dense = rankings_of(artifacts.DENSE.read(), [*held.qid, *pool.qid[:largest], *test.qid])
    candidates = top_pids(dense)
    base = per_question(dense, held)
    cache = Cache("curve")
    encoder_id = content_id(resolve(P.models.encoder))
    rows = []
    for trainer in ["project", "reference"] if P.curve.reference else ["project"]:
        for n in sorted(P.curve.sizes):
            train = pool.iloc[:n]
            groups = relevance_groups(train, candidates, text, P.training.group_size, P.training.seed, P.training.relevance_target)
            answering = trainer == "project" and n in P.curve.answer_sizes  # only these points rank the test questions
            key = make_key("relevance-curve", trainer, encoder_id, P.training.model_dump(), P.retrieval.model_dump(), P.rag.top_k, P.numerics().record(),
                           list(train.qid), list(held.qid), list(test.qid) if answering else None)
            item = (trainer, groups, test if answering else None)
            point = cache.map([key], [item], lambda todo: [train_point(P, t, g, held, q, candidates, dense, text) for t, g, q in todo], chunk_size=1)[0]
            row = {"trainer": trainer, "n": n, "groups": len(groups)}
            for metric in ("rr", "gold_at_1"):
                diff = paired_interval(np.subtract(point[metric], base[metric]), P.rag.n_bootstrap, P.data.seed)
                row[metric] = with_verdict(diff, identical=diff["identical"], start=trainer == "project")
            row["first_place"] = first_place(point["gold_at_1"], base["gold_at_1"])
            rows.append(row | {k: point[k] for k in ("prior_temperature", "kept_step", "best_step", "loss_reduction", "val_loss", "test_top") if k in point})
    points = pd.DataFrame(rows)
    answers = answer_points(P, points, test, passages, dense)
    dense_summary = {"mrr": round(float(np.mean(base["rr"])), 4), "gold_at_1": round(float(np.mean(base["gold_at_1"])), 4),
                     "headroom": round(1 - float(np.mean(base["gold_at_1"])), 4), "n": len(held)}
    metrics = {"held_out_questions": len(held), "dense": dense_summary,
               "points": [{k: v for k, v in r.items() if k != "test_top"} for r in rows], "answers": answers}
    artifacts.CURVE_METRICS.write(metrics)
    return Result(points.drop(columns="test_top", errors="ignore"), dense_summary, answers, metrics)


def answer_points(P: Params, points: pd.DataFrame, test: pd.DataFrame, passages: pd.DataFrame, stage02: pd.DataFrame) -> dict:
    """At ``curve.answer_sizes``: the project reranker's top-k answered, paired with dense top-k (gold-answer log-prob)."""
    chosen = points[(points.trainer == "project") & points.n.isin(P.curve.answer_sizes)]
    if chosen.empty:
        return {}
    lm = LM.from_params(P.models)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    dense = answer_questions(lm, test, top_pids(stage02, P.rag.top_k), store, "dense", P.rag.max_new_tokens)
    out = {}
    for row in chosen.itertuples():
        mine = answer_questions(lm, test, row.test_top, store, f"project@{row.n}", P.rag.max_new_tokens)
        same = all(row.test_top[q] == top_pids(stage02, P.rag.top_k)[q] for q in test.qid)
        diff = paired_difference(mine, dense, "gold_logprob", P.rag.n_bootstrap, P.data.seed)
        out[f"project@{row.n}"] = with_verdict(diff, P.rag.equivalence_margin, identical=same)
    return out

"""Stage 14: the seam at equal budgets. Every learner, on either side of the seam, trained on the same n
questions for each n of ``seam_curve.sizes``, and measured by what it gains over its own start on the
same test questions (gold-answer log-prob at ``max(seam.ks)`` passages, paired per question):

- retriever side (the relevance reranker, GainRAG's selector, RADIO's reranker): its top-k against
  dense top-k, where each starts, read by the untuned generator;
- reader side: the generator tuned on the n questions' dense top-k (RAFT's P) against the untuned one,
  on dense top-k; and with the gold passages and with none, whose gap tells reading from knowing.

The training questions are nested prefixes of one order: the study's train split first (so the point at
``data.n_train`` has the study's own budget, and its gain labels and rationales come from the LLM cache),
then fresh benchmark questions outside the study, the readers' training sets and stage 13's questions.
GainRAG's labels and RADIO's rationales cost generator calls per training question: each point states
them. Points are cached on disk (``.cache/ragalign/seam_curve.sqlite``), keyed by everything that
produced them, so an interrupted stage resumes. FiGRet is not on the curve: its judging costs grow
with the questions it examines (stage 07 states its cost per examined question).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ragalign.core import artifacts
from ragalign.core.cache import Cache, make_key
from ragalign.core.data import load_benchmark, load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_interval
from ragalign.core.models import content_id, resolve
from ragalign.core.params import Params
from ragalign.core.question_sets import seam_curve_order
from ragalign.core.rag import PassageStore, score_questions
from ragalign.core.rerank import relevance_groups, rerank, train_reranker
from ragalign.core.retrieval import DenseEncoder, passage_texts, rankings_of, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.verdicts import with_verdict
from ragalign.methods import rationale as radio
from ragalign.methods import reader
from ragalign.methods.gainrag.labels import build_pairs, label_table, planned_cost, score_pairs
from ragalign.methods.gainrag.pseudo import generate_pseudo, planned_generate_cost, pseudo_prompt, pseudo_texts
from ragalign.methods.gainrag.selector import context_texts, selector_candidates, selector_groups

SIDES = {"reranker": "retriever", "gainrag": "retriever", "radio": "retriever", "reader": "reader"}
CONTEXTS = ("dense", "oracle", "no_retrieval")  # what the reader is scored on


@dataclass
class Result:
    points: pd.DataFrame  # learner, side, n, gain (paired, against its start), cost per training question
    sides: pd.DataFrame  # per n and retriever-side learner: the reader's gain minus the learner's, paired
    metrics: dict  # results/metrics/seam_curve.json


class Curve:
    """What every point shares: the study's tables, the untuned generator, dense rankings and the test contexts."""

    def __init__(self, P: Params, order: pd.DataFrame):
        self.P, self.order = P, order
        self.passages, study = load_passages(), load_questions()
        self.test = study[study.split == "test"].reset_index(drop=True)
        self.text = passage_texts(self.passages)
        self.lm = LM.from_params(P.models)
        self.store = PassageStore(self.passages, self.lm, P.rag.max_passage_tokens)
        self.emb = artifacts.PASSAGE_EMB.read()
        largest = order.iloc[: max(P.seam_curve.sizes)]
        self.dense = rankings_of(artifacts.DENSE.read(), [*largest.qid, *self.test.qid])
        self.k = max(P.seam.ks)
        pseudo = artifacts.PSEUDO.read()
        self.test_pseudo = pseudo[pseudo.qid.isin(set(self.test.qid))]  # stage 04 wrote the test questions' pseudo-passages
        self.contexts = {"dense": top_pids(self.dense[self.dense.qid.isin(set(self.test.qid))], self.k),
                         "oracle": dict(zip(self.test.qid, self.test.gold_pids, strict=True)), "no_retrieval": {}}

    def score(self, model: LM, contexts: dict[str, list[str]], name: str, extra: dict[str, str] | None = None) -> list[float]:
        """Gold-answer log-prob of every test question with ``contexts`` (``extra``: texts of pids outside the corpus)."""
        texts = context_texts(contexts, lambda p: (extra or {}).get(p) or self.store[p])
        return score_questions(model, self.test, contexts, self.store, name, texts).gold_logprob.tolist()

    def point(self, learner: str, n: int) -> dict:
        """Train ``learner`` on the first ``n`` questions; its test scores and what its labels cost. JSON-ready."""
        seed_everything(self.P.training.seed)
        train = self.order.iloc[:n].reset_index(drop=True)
        if learner == "reader":
            return self.reader_point(train)
        ranking, extra, cost = self.ranker(learner, train)
        return {"scores": {"mine": self.score(self.lm, top_pids(ranking, self.k), f"{learner}@{n}", extra)}, "cost": cost}

    def ranker(self, learner: str, train: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str], dict]:
        """A retriever-side learner trained on ``train`` as its own stage trains it, its test ranking, the texts
        of its candidates outside the corpus, and the generator calls its labels cost (planned: cache hits count)."""
        P, lm, text, dense = self.P, self.lm, self.text, self.dense
        test_dense = dense[dense.qid.isin(set(self.test.qid))]
        if learner == "reranker":
            groups, cost = relevance_groups(train, top_pids(dense), text, P.training.group_size, P.training.seed, P.training.relevance_target), {}
            candidates, extra = top_pids(test_dense), {}
        elif learner == "gainrag":
            pseudo = generate_pseudo(lm, train, P.gain.pseudo_max_new_tokens, P.rag.max_passage_tokens)
            pairs = build_pairs(train, dense, P.gain.k, self.store, pseudo)
            labels = label_table(pairs, score_pairs(lm, pairs, P.gain.alpha), dense, train)
            cost = merge(planned_generate_cost(lm, [pseudo_prompt(q) for q in train.question], P.gain.pseudo_max_new_tokens), planned_cost(lm, pairs))
            extra = pseudo_texts(self.test_pseudo)
            groups = selector_groups(labels, train, text | pseudo_texts(pseudo), P.training.group_size, P.training.seed, temperature=P.selector.temperature)
            candidates = selector_candidates(test_dense, P.selector.top_n, self.test_pseudo)
        else:  # radio
            rationales = radio.generate_rationales(lm, train, P.radio.rationale_max_new_tokens)
            cost = planned_generate_cost(lm, radio.rationale_prompts(train), P.radio.rationale_max_new_tokens)
            encoder = DenseEncoder(P.models.encoder, P.retrieval.max_length, autocast=P.numerics().retrieval_autocast)
            emb = dict(zip(rationales.qid, encoder.embed(rationales.text.tolist(), P.retrieval.encode_batch_size), strict=True))
            ranked = radio.rationale_ranking(dense, emb, self.emb, {p: i for i, p in enumerate(self.passages.pid)}, P.radio.mix, P.radio.k)
            groups = radio.build_groups(train, ranked, text, radio.negative_ranks(P.radio.neg_ranks, P.training.group_size, P.radio.k))
            candidates, extra = top_pids(test_dense[test_dense["rank"] < P.radio.k]), {}
        model, _ = train_reranker(P.models.encoder, groups, P.training, desc=f"{learner}, {len(train)} questions", prior_max_length=P.retrieval.max_length)
        return rerank(model, self.test, candidates, text | extra, learner, priors=dense), extra, cost

    def reader_point(self, train: pd.DataFrame) -> dict:
        """The generator tuned on ``train``'s dense top-k (RAFT's P, as stage 08 tunes it), scored on every context."""
        P, R = self.P, self.P.reader
        gold = dict(zip(train.qid, train.gold_pids, strict=True))
        contexts = reader.training_contexts(top_pids(self.dense[self.dense.qid.isin(set(train.qid))]), gold, P.rag.top_k, R.p_no_gold, R.seed)
        examples = reader.reader_examples(self.lm, train, contexts, self.store.__getitem__)
        model, _ = reader.train_reader(P.models.generator, examples, tune=R.tune, lr=R.lr, epochs=R.epochs, batch_size=R.batch_size, val_fraction=R.val_fraction,
                                       seed=R.seed, autocast=P.numerics().training_autocast, lora_r=R.lora_r, evals_per_epoch=R.evals_per_epoch,
                                       desc=f"reader, {len(train)} questions")
        with tempfile.TemporaryDirectory() as folder:  # saved, so that its values are keyed by its weights
            path = reader.save_reader(model, self.lm.tokenizer, f"{folder}/reader")
            tuned = LM(str(path), self.lm.dtype, device=self.lm.device)
            scores = {c: self.score(tuned, self.contexts[c], f"reader@{len(train)}:{c}") for c in CONTEXTS}
        return {"scores": scores, "cost": {}}


def merge(*costs: dict) -> dict:
    """Cost blocks added key by key."""
    out: dict[str, int] = {}
    for c in costs:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def run(P: Params) -> Result:
    study = load_questions()
    curve = Curve(P, seam_curve_order(P, load_benchmark(), study, set(artifacts.READER_QUESTIONS.read().qid)))
    base = {c: curve.score(curve.lm, curve.contexts[c], f"untuned:{c}") for c in CONTEXTS}
    cache = Cache("seam_curve")
    ids = {"generator": content_id(resolve(P.models.generator)), "encoder": content_id(resolve(P.models.encoder))}
    rows, points = [], {}
    for learner in P.seam_curve.learners:
        for n in sorted(P.seam_curve.sizes):
            key = make_key("seam-curve", learner, ids, P.model_dump(exclude={"rag_e", "curve", "figret", "seam_curve"}), P.numerics().record(),
                           list(curve.order.qid[:n]), list(curve.test.qid))
            point = cache.map([key], [(learner, n)], lambda todo: [curve.point(*item) for item in todo], chunk_size=1)[0]
            points[(learner, n)] = point
            rows.append(point_row(P, learner, n, point, base))
    table = pd.DataFrame(rows)
    sides = side_gaps(P, points)
    metrics = {"test_questions": len(curve.test), "k": curve.k, "margin": P.rag.equivalence_margin, "sizes": sorted(P.seam_curve.sizes),
               "points": rows, "sides": sides.to_dict(orient="records")}
    artifacts.SEAM_CURVE_METRICS.write(metrics)
    return Result(table, sides, metrics)


def gain(P: Params, mine: list[float], start: list[float], identical: bool = False) -> dict:
    """``mine - start`` per test question: mean, 95% interval, smallest detectable difference, verdict."""
    return with_verdict(paired_interval(np.subtract(mine, start), P.rag.n_bootstrap, P.data.seed), P.rag.equivalence_margin, identical=identical, start=True)


def point_row(P: Params, learner: str, n: int, point: dict, base: dict) -> dict:
    """One point of the curve, JSON-ready: the gain over its start and, for the reader, the reading gap."""
    s = point["scores"]
    row = {"learner": learner, "side": SIDES[learner], "n": n}
    if learner == "reader":
        row["gain"] = gain(P, s["dense"], base["dense"])
        row["gold_gain"], row["none_gain"] = gain(P, s["oracle"], base["oracle"]), gain(P, s["no_retrieval"], base["no_retrieval"])
        gap = np.subtract(s["oracle"], s["no_retrieval"]) - np.subtract(base["oracle"], base["no_retrieval"])
        row["gap_change"] = with_verdict(paired_interval(gap, P.rag.n_bootstrap, P.data.seed), P.rag.equivalence_margin)
    else:
        row["gain"] = gain(P, s["mine"], base["dense"], identical=s["mine"] == base["dense"])
    return row | {"cost_per_question": {k: round(v / n, 1) for k, v in point["cost"].items()}}


def side_gaps(P: Params, points: dict) -> pd.DataFrame:
    """Per n and retriever-side learner: the reader's gain minus the learner's, paired per test question (both
    against dense top-k read by the untuned generator, so the difference is tuned reader on dense minus the
    learner's top-k read by the untuned generator): which side gains more from the same n questions."""
    rows = []
    learners = [m for m in P.seam_curve.learners if SIDES[m] == "retriever"]
    for n in sorted(P.seam_curve.sizes) if "reader" in P.seam_curve.learners else []:
        for m in learners:
            diff = np.subtract(points[("reader", n)]["scores"]["dense"], points[(m, n)]["scores"]["mine"])
            rows.append({"n": n, "learner": m, "reader_minus_learner": with_verdict(paired_interval(diff, P.rag.n_bootstrap, P.data.seed), P.rag.equivalence_margin)})
    return pd.DataFrame(rows)

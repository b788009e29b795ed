"""Stage 13: the seam's key rows, powered. Stage 09 answers 100 test questions, too few to call two
variants equivalent within the 0.1-nat margin (their smallest detectable differences are 0.13-0.45
nats). Here the rows that carry the headline (no retrieval, the gold passages, dense at each
``seam.ks`` and the retriever-side learner stage 09 found best) are scored under both readers on
``powered.n_questions`` fresh benchmark questions: outside the study's splits and the readers'
training sets, so no model of the study ever trained, tuned or was selected on them (stage 09's test
questions chose the learner; these confirm it). The outcome is the gold-answer log-prob alone
(``rag.score_questions``: no reply decoded, a third of answering's cost); the pairing is stage 09's
(``core.pairing``), so every row ends as beats, worse, equivalent within the margin, or not told
apart, with its smallest detectable difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ragalign.core import artifacts
from ragalign.core.artifacts import seam_variant
from ragalign.core.data import load_benchmark, load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.pairing import READERS, REFERENCE, pair_variants
from ragalign.core.params import Params
from ragalign.core.question_sets import powered_questions
from ragalign.core.rag import PassageStore, score_questions, summarise
from ragalign.core.rerank import CrossEncoder, rerank
from ragalign.core.retrieval import (
    DenseEncoder,
    corpus_strings,
    dense_search,
    passage_texts,
    rankings_of,
    to_ranking,
    top_pids,
)
from ragalign.core.seed import seed_everything
from ragalign.methods.gainrag.pseudo import generate_pseudo, pseudo_texts
from ragalign.methods.gainrag.selector import context_texts, selector_candidates

LEARNERS = ("reranker", "gainrag", "radio", "figret")  # the retriever-side learners stage 09 compares with dense
RERANKERS = {"reranker": artifacts.RELEVANCE_RERANKER, "gainrag": artifacts.SELECTOR, "radio": artifacts.RADIO_RERANKER}


@dataclass
class Result:
    questions: pd.DataFrame
    learner: str | None  # None: every learner showed dense's own contexts in stage 09
    scores: pd.DataFrame  # one row per (reader, variant, question): gold_logprob
    summary: dict  # "reader:variant" -> gold_logprob {mean, lo, hi}
    paired: dict  # stage 09's pairing on these questions
    metrics: dict


def chosen_learner(P: Params, seam: dict) -> str | None:
    """``powered.learner``, or with ``auto`` the learner whose top ``max(seam.ks)`` read by the tuned reader
    stage 09 found furthest above dense at the same k (mean gold-answer log-prob); learners that showed
    dense's own contexts on every question are passed over (None when every one did)."""
    if P.powered.learner != "auto":
        return P.powered.learner
    k = max(P.seam.ks)
    means = {m: d["mean"] for m in LEARNERS if not (d := seam["paired"][seam_variant(m, k)][f"minus_{REFERENCE}_tuned"]).get("identical")}
    return max(means, key=means.get) if means else None


def learner_ranking(P: Params, learner: str, questions: pd.DataFrame, passages: pd.DataFrame, dense: pd.DataFrame, lm: LM) -> tuple[pd.DataFrame, dict[str, str]]:
    """``learner``'s ranking of fresh questions, the way its own stage ranks the test questions (same
    model, candidates and priors), and the texts of any passage outside the corpus (GainRAG's
    pseudo-passages, generated here as stage 04 does)."""
    text = passage_texts(passages)
    if learner == "figret":
        encoder = DenseEncoder(str(artifacts.FIGRET_RETRIEVER.at()), P.retrieval.max_length, autocast=P.numerics().retrieval_autocast)
        emb = encoder.embed(corpus_strings(passages), P.retrieval.encode_batch_size, desc="embed corpus (FiGRet)")
        idx, scores = dense_search(emb, encoder.embed(questions.question.tolist(), P.retrieval.encode_batch_size), P.retrieval.k)
        return to_ranking(questions.qid, idx, scores, passages.pid, learner), {}
    model = CrossEncoder.load(P.models.encoder, RERANKERS[learner].at(), P.training.max_length)
    if learner == "gainrag":
        pseudo = generate_pseudo(lm, questions, P.gain.pseudo_max_new_tokens, P.rag.max_passage_tokens)
        extra = pseudo_texts(pseudo)
        candidates = selector_candidates(dense, P.selector.top_n, pseudo)
        return rerank(model, questions, candidates, text | extra, learner, desc="selector", priors=dense), extra
    k = P.radio.k if learner == "radio" else P.retrieval.k
    return rerank(model, questions, top_pids(dense[dense["rank"] < k]), text, learner, desc=learner, priors=dense), {}


def key_contexts(P: Params, questions: pd.DataFrame, dense: pd.DataFrame, learner: str | None, ranking: pd.DataFrame | None) -> dict[str, dict[str, list[str]]]:
    """variant -> qid -> context pids: no retrieval, the gold passages, and dense and the learner at each ``seam.ks``."""
    contexts = {"no_retrieval": {}, "oracle": dict(zip(questions.qid, questions.gold_pids, strict=True))}
    for k in P.seam.ks:
        contexts[seam_variant(REFERENCE, k)] = top_pids(dense, k)
        if learner:
            contexts[seam_variant(learner, k)] = top_pids(ranking, k)
    return contexts


def run(P: Params) -> Result:
    seed_everything(P.training.seed)
    study, passages = load_questions(), load_passages()
    questions = powered_questions(P, load_benchmark(), study, set(artifacts.READER_QUESTIONS.read().qid))
    learner = chosen_learner(P, artifacts.SEAM_METRICS.read())
    lm = LM.from_params(P.models)
    tuned = LM(str(artifacts.READER.at()), lm.dtype, device=lm.device)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    dense = rankings_of(artifacts.DENSE.read(), questions.qid)
    ranking, extra = learner_ranking(P, learner, questions, passages, dense, lm) if learner else (None, {})
    ranking_cost = {"llm_evaluations": lm.evaluations, "llm_forward_tokens": lm.forward_tokens}  # GainRAG's pseudo-passages

    def text_of(pid: str) -> str:
        return extra.get(pid) or store[pid]

    contexts = key_contexts(P, questions, dense, learner, ranking)
    scores = pd.concat(
        [score_questions(model, questions, ctx, store, f"{reader}:{v}", context_texts(ctx, text_of)).assign(reader=reader)
         for v, ctx in contexts.items() for reader, model in zip(READERS, (lm, tuned), strict=True)],
        ignore_index=True,
    )
    scoring_cost = {"llm_evaluations": lm.evaluations + tuned.evaluations - ranking_cost["llm_evaluations"],
                    "llm_forward_tokens": lm.forward_tokens + tuned.forward_tokens - ranking_cost["llm_forward_tokens"]}
    summary = summarise_logprob(scores, P)
    by = {v: df for v, df in scores.groupby("variant", sort=False)}
    paired = pair_variants(by, list(contexts), P.rag.n_bootstrap, P.data.seed, P.rag.equivalence_margin, outcomes=("gold_logprob",))
    metrics = {"questions": len(questions), "learner": learner, "ks": list(P.seam.ks), "margin": P.rag.equivalence_margin,
               **summary, "paired": paired, "powered": powered_share(paired, P.rag.equivalence_margin),
               "cost": {"learner_ranking": ranking_cost, "scoring": scoring_cost, "per_question": per_question(scoring_cost, len(questions))}}
    artifacts.POWERED_SCORES.write(scores)
    artifacts.POWERED_METRICS.write(metrics)
    return Result(questions, learner, scores, summary, paired, metrics)


def summarise_logprob(scores: pd.DataFrame, P: Params) -> dict:
    """"reader:variant" -> {gold_logprob: {mean, lo, hi}, n}: :func:`rag.summarise` without EM and F1."""
    filled = scores.assign(em=np.nan, f1=np.nan)
    return {v: {"gold_logprob": s["gold_logprob"], "n": s["n"]} for v, s in summarise(filled, P.rag.n_bootstrap, seed=P.data.seed).items()}


def comparisons(paired: dict) -> list[dict]:
    """Every paired gold-answer log-prob difference of a :func:`core.pairing.pair_variants` result."""
    return [d["gold_logprob"] if name == "tuned_minus_untuned" else d for entry in paired.values() for name, d in entry.items()]


def powered_share(paired: dict, margin: float) -> dict:
    """How many of the paired comparisons could be called equivalent at this size (smallest detectable
    difference at most the margin), and the largest smallest detectable difference."""
    mdes = [d["mde"] for d in comparisons(paired)]
    return {"comparisons": len(mdes), "within_margin": sum(m <= margin for m in mdes), "largest_mde": round(max(mdes), 4) if mdes else None}


def per_question(cost: dict, n: int) -> dict:
    """A cost block divided by the questions scored."""
    return {k: round(v / max(n, 1), 1) for k, v in cost.items()}

"""Stage 06: RADIO. The generator writes a rationale per train question; the dense candidates
re-ranked by it train a reranker (that starts from dense), which then serves the test questions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_splits
from ragalign.core.lm import LM
from ragalign.core.params import Params
from ragalign.core.rag import PassageStore, answer_questions, build_cost, summarise
from ragalign.core.rerank import rerank, train_reranker
from ragalign.core.retrieval import DenseEncoder, passage_texts, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.validity import loss_gate, ranker_gate
from ragalign.core.verdicts import paired_outcomes
from ragalign.methods import rationale as radio


@dataclass
class Result:
    train: pd.DataFrame
    test: pd.DataFrame
    rationales: pd.DataFrame
    mentions_answer: list[bool]  # per rationale: does it repeat the gold answer
    train_agreement: pd.DataFrame  # ranking -> gold recall@k / hit@k on the train candidates
    neg_ranks: list[int]
    n_groups: int
    curve: pd.DataFrame
    answers: pd.DataFrame
    summary: dict
    variants: dict  # variant -> em/f1 summary: the stage-03 baselines, GainRAG (when there), RADIO
    paired: dict  # stage-03 variant -> metric -> paired difference (RADIO minus it), with its verdict
    test_agreement: pd.DataFrame
    validity: dict
    rationale_cost: dict
    total_cost: dict

    @property
    def rationale_stats(self) -> dict:
        """How many rationales, their mean length in words and the share that repeat the gold answer."""
        return {"n": len(self.rationales), "mean_words": float(self.rationales.rationale.str.split().map(len).mean()),
                "mentions_answer": float(sum(self.mentions_answer) / max(len(self.mentions_answer), 1))}

    @property
    def examples(self) -> pd.DataFrame:
        """A few test questions with RADIO's answers."""
        return self.answers.merge(self.test[["qid", "question", "answers"]], on="qid").head(6)[["question", "answers", "answer", "f1"]]


def run(P: Params) -> Result:
    seed_everything(P.training.seed)
    train, test, passages = load_splits()
    passage_text = passage_texts(passages)
    pid_row = {pid: i for i, pid in enumerate(passages.pid)}
    passage_emb, dense = artifacts.PASSAGE_EMB.read(), artifacts.DENSE.read()
    dense_k = dense[dense["rank"] < P.radio.k]

    lm = LM.from_params(P.models)
    rationales = radio.generate_rationales(lm, train, P.radio.rationale_max_new_tokens)
    rationale_cost = {"evaluations": lm.evaluations, "forward_tokens": lm.forward_tokens}
    mentions_answer = [a.lower() in t.lower() for a, t in zip(rationales.answer, rationales.rationale, strict=True)]

    encoder = DenseEncoder(P.models.encoder, P.retrieval.max_length, autocast=P.numerics().retrieval_autocast)
    rationale_emb = dict(zip(rationales.qid, encoder.embed(rationales.text.tolist(), P.retrieval.encode_batch_size), strict=True))
    ranked = radio.rationale_ranking(dense_k, rationale_emb, passage_emb, pid_row, P.radio.mix, P.radio.k)
    ranked_only = radio.rationale_ranking(dense_k, rationale_emb, passage_emb, pid_row, 1.0, P.radio.k)
    train_agreement = radio.gold_agreement({"dense": dense_k[dense_k.qid.isin(train.qid)], "rationale": ranked, "rationale only": ranked_only}, train, ks=(1, 5))

    neg_ranks = radio.negative_ranks(P.radio.neg_ranks, P.training.group_size, P.radio.k)
    groups = radio.build_groups(train, ranked, passage_text, neg_ranks)
    reranker, curve = train_reranker(P.models.encoder, groups, P.training, desc="radio reranker", prior_max_length=P.retrieval.max_length)
    radio_ranking = rerank(reranker, test, top_pids(dense_k), passage_text, "radio", desc="rerank test", priors=dense)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    answers = answer_questions(lm, test, top_pids(radio_ranking, P.radio.top_k), store, "radio", P.rag.max_new_tokens)
    total_cost = {"evaluations": lm.evaluations, "forward_tokens": lm.forward_tokens}
    summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)

    baseline_answers = artifacts.BASELINE_ANSWERS.read()
    variants = summarise(baseline_answers, P.rag.n_bootstrap, seed=P.data.seed)
    if artifacts.GAIN_ANSWERS.exists():
        gain_answers = artifacts.GAIN_ANSWERS.read()
        variants |= summarise(gain_answers[gain_answers.variant == "gainrag"], P.rag.n_bootstrap, seed=P.data.seed)
    variants["radio"] = summary["radio"]
    n_boot, seed = P.rag.n_bootstrap, P.data.seed
    paired = {v: paired_outcomes(answers, df, n_boot, seed, P.rag.equivalence_margin) for v, df in baseline_answers.groupby("variant", sort=False)}
    validity = {
        "reranker_heldout_loss": loss_gate(curve, n_boot, seed),
        "reranker_vs_dense_ranking": ranker_gate(radio_ranking, dense_k[dense_k.qid.isin(test.qid)], test, n_boot=n_boot, seed=seed),
    }
    reranked = artifacts.RERANKER_RANKINGS.read()
    test_agreement = radio.gold_agreement(
        {"dense": dense_k[dense_k.qid.isin(test.qid)], "reranker": reranked[reranked.qid.isin(test.qid)], "radio": radio_ranking}, test, ks=(1, P.radio.top_k)
    )

    val_curve = curve[curve.split == "val"]
    artifacts.RATIONALES.write(rationales)
    artifacts.RADIO_CURVE.write(curve)
    reranker.save(artifacts.RADIO_RERANKER.path)
    artifacts.RATIONALE_RANKING.write(ranked)
    artifacts.RADIO_RANKINGS.write(radio_ranking)
    artifacts.RADIO_ANSWERS.write(answers)
    artifacts.RADIO_METRICS.write(
        {
            **summary,
            "build_cost": {"radio": build_cost(rationale_cost["evaluations"], rationale_cost["forward_tokens"])},
            "gold_agreement_train": train_agreement.to_dict(orient="index"),
            "gold_agreement_test": test_agreement.to_dict(orient="index"),
            "radio_minus_variant": paired,
            "validity": validity,
            "rationales": {
                "n": len(rationales),
                "mean_words": round(float(rationales.rationale.str.split().map(len).mean()), 2),
                "mentions_answer": round(float(np.mean(mentions_answer)), 4),
                "positive_is_gold": round(float(train_agreement.loc["rationale", "hit@1"]), 4),  # the positive is rank 0 of that ranking
            },
            "training": {
                "groups": len(groups),
                "group_size": P.training.group_size,
                "neg_ranks": neg_ranks,
                "initial_val_loss": round(float(val_curve.loss.iloc[0]), 4),
                "best_val_loss": round(float(val_curve.loss.min()), 4),
                "final_val_loss": round(float(val_curve.loss.iloc[-1]), 4),
            },
            "cost": {
                "llm_evaluations": total_cost["evaluations"],
                "llm_forward_tokens": total_cost["forward_tokens"],
                "rationale_evaluations": rationale_cost["evaluations"],
                "rationale_forward_tokens": rationale_cost["forward_tokens"],
                "answer_evaluations": total_cost["evaluations"] - rationale_cost["evaluations"],
                "answer_forward_tokens": total_cost["forward_tokens"] - rationale_cost["forward_tokens"],
            },
        }
    )
    return Result(train, test, rationales, mentions_answer, train_agreement, neg_ranks, len(groups), curve, answers, summary, variants, paired, test_agreement, validity, rationale_cost, total_cost)

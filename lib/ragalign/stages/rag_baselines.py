"""Stage 03: RAG baselines (no retrieval, oracle, BM25, dense) and the relevance reranker, with
the validity gates (does retrieval help; does the reranker beat dense, its start)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_splits
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_difference
from ragalign.core.params import Params
from ragalign.core.rag import PassageStore, answer_questions, build_cost, summarise
from ragalign.core.rerank import relevance_groups, rerank, train_reranker
from ragalign.core.retrieval import passage_texts, retrieval_quality, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.validity import difference_gate, loss_gate, ranker_gate
from ragalign.core.verdicts import with_verdict

# Paired gold-answer likelihood differences the stage reports: (variant, reference).
DIFFERENCES = (("oracle", "no_retrieval"), ("dense", "no_retrieval"), ("bm25", "no_retrieval"), ("reranker", "dense"))


@dataclass
class Result:
    test: pd.DataFrame
    n_groups: int  # train questions the reranker learned from
    curve: pd.DataFrame  # step, split, loss
    rank_quality: pd.DataFrame  # bm25 / dense / reranker x recall@k, mrr (test)
    answers: pd.DataFrame
    summary: dict  # variant -> em, f1, gold_logprob (mean, lo, hi), n
    differences: dict  # "a - b" -> paired gold-log-prob difference, with its verdict (rag.equivalence_margin)
    validity: dict

    @property
    def examples(self) -> pd.DataFrame:
        """A few test questions answered with the gold passages and with the relevance reranker."""
        rows = self.answers[self.answers.variant.isin(["oracle", "reranker"])].merge(self.test[["qid", "question", "answers"]], on="qid")
        return rows.head(8)[["variant", "question", "answers", "answer", "f1"]]


def run(P: Params) -> Result:
    seed_everything(P.training.seed)
    train, test, passages = load_splits()
    passage_text = passage_texts(passages)
    dense, bm25 = artifacts.DENSE.read(), artifacts.BM25.read()
    dense_candidates = top_pids(dense)

    groups = relevance_groups(train, dense_candidates, passage_text, P.training.group_size, P.training.seed, P.training.relevance_target)
    reranker, curve = train_reranker(P.models.encoder, groups, P.training, desc="relevance reranker", prior_max_length=P.retrieval.max_length)
    reranked = rerank(reranker, test, dense_candidates, passage_text, "reranker", desc="rerank", priors=dense)
    ks = [1, 2, P.rag.top_k]
    rank_quality = pd.DataFrame({name: retrieval_quality(r, test, ks) for name, r in (("bm25", bm25), ("dense", dense), ("reranker", reranked))}).T

    lm = LM.from_params(P.models)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    contexts = {
        "no_retrieval": {},
        "oracle": dict(zip(test.qid, test.gold_pids, strict=True)),
        "bm25": top_pids(bm25, P.rag.top_k),
        "dense": top_pids(dense, P.rag.top_k),
        "reranker": top_pids(reranked, P.rag.top_k),
    }
    answers = pd.concat([answer_questions(lm, test, ctx, store, name, P.rag.max_new_tokens) for name, ctx in contexts.items()], ignore_index=True)
    summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)
    by = {v: answers[answers.variant == v] for v in contexts}
    differences = {
        f"{a} - {b}": with_verdict(paired_difference(by[a], by[b], "gold_logprob", P.rag.n_bootstrap, P.data.seed), P.rag.equivalence_margin)
        for a, b in DIFFERENCES
    }
    validity = {
        "oracle_vs_no_retrieval": difference_gate(differences["oracle - no_retrieval"]),
        "dense_vs_no_retrieval": difference_gate(differences["dense - no_retrieval"]),
        "reranker_vs_dense_ranking": ranker_gate(reranked, dense, test, n_boot=P.rag.n_bootstrap, seed=P.data.seed),
        "reranker_heldout_loss": loss_gate(curve, P.rag.n_bootstrap, P.data.seed),
    }

    reranker.save(artifacts.RELEVANCE_RERANKER.path)
    artifacts.RERANKER_CURVE.write(curve[curve.split == "train"][["step", "loss"]].to_csv(index=False, float_format="%.6g"))
    artifacts.RERANKER_RANKINGS.write(reranked)
    artifacts.BASELINE_ANSWERS.write(answers)
    artifacts.BASELINE_METRICS.write(
        {
            **summary,
            "ranking_quality": rank_quality.to_dict(orient="index"),
            "reranker_training": {"groups": len(groups), "train_questions": int(len(train)), "final_val_loss": round(float(curve[curve.split == "val"].loss.iloc[-1]), 4)},
            "paired_gold_logprob": differences,
            "validity": validity,
            "build_cost": {v: build_cost() for v in contexts},  # no generator call builds a baseline
            "cost": {"llm_evaluations": lm.evaluations, "llm_forward_tokens": lm.forward_tokens},
        }
    )
    return Result(test, len(groups), curve, rank_quality, answers, summary, differences, validity)

"""Stage 02: BM25 and dense top-k of every benchmark question over the whole corpus, and the gold recall of the
study's questions. Every later stage that ranks a question outside the study's splits (the readers' training
questions, the curves', the powered rows') reads its ranking here: one ranking per question in the whole study."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_benchmark, load_passages, load_questions
from ragalign.core.metrics import paired_interval, reciprocal_rank
from ragalign.core.params import Params, ParamsError
from ragalign.core.retrieval import (
    DenseEncoder,
    bm25_search,
    corpus_strings,
    dense_search,
    retrieval_quality,
    to_ranking,
    top_pids,
)
from ragalign.core.seed import seed_everything
from ragalign.core.verdicts import with_verdict


@dataclass
class Result:
    questions: pd.DataFrame  # the study's (train and test)
    bm25: pd.DataFrame  # of every benchmark question
    dense: pd.DataFrame
    ks: list[int]
    quality: dict[str, dict]  # split -> method -> recall@k / mrr; "paired" -> dense minus BM25 reciprocal rank (test)

    @property
    def max_recall_at_1(self) -> float:
        """The highest recall@1 can be: one passage of a question's gold passages, on average."""
        return float((1 / self.questions.gold_pids.map(len)).mean())

    @property
    def n_test(self) -> int:
        return int((self.questions.split == "test").sum())


def recall_ks(k: int) -> list[int]:
    """The cut-offs the study reports, up to ``k``."""
    return sorted({1, 2, 5, 10, k} & set(range(1, k + 1)))


def run(P: Params) -> Result:
    seed_everything(P.data.seed)
    questions, every, passages = load_questions(), load_benchmark(), load_passages()
    if P.retrieval.k > len(passages):
        raise ParamsError(f"retrieval.k={P.retrieval.k} exceeds the corpus size ({len(passages)} passages)")
    corpus = corpus_strings(passages)
    idx, scores = bm25_search(corpus, every.question.tolist(), P.retrieval.k)
    bm25 = to_ranking(every.qid, idx, scores, passages.pid, "bm25")
    encoder = DenseEncoder(P.models.encoder, P.retrieval.max_length, autocast=P.numerics().retrieval_autocast)
    passage_emb = encoder.embed(corpus, P.retrieval.encode_batch_size, desc="embed corpus")
    query_emb = encoder.embed(every.question.tolist(), P.retrieval.encode_batch_size, desc="embed questions")
    idx, scores = dense_search(passage_emb, query_emb, P.retrieval.k)
    dense = to_ranking(every.qid, idx, scores, passages.pid, "dense")
    ks = recall_ks(P.retrieval.k)
    quality = {
        split: {name: retrieval_quality(r, questions[questions.split == split], ks) for name, r in (("bm25", bm25), ("dense", dense))}
        for split in ("train", "test")
    }
    quality["paired"] = {"dense - bm25": paired_rr(dense, bm25, questions[questions.split == "test"], P.rag.n_bootstrap, P.data.seed)}
    artifacts.BM25.write(bm25)
    artifacts.DENSE.write(dense)
    artifacts.PASSAGE_EMB.write(passage_emb)
    artifacts.RETRIEVAL_METRICS.write(quality)
    return Result(questions, bm25, dense, ks, quality)


def paired_rr(a: pd.DataFrame, b: pd.DataFrame, questions: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Reciprocal rank of the first gold passage, ranking ``a`` minus ``b`` per question, with its interval and verdict."""
    ra, rb = top_pids(a), top_pids(b)
    diffs = [reciprocal_rank(ra.get(q, []), g) - reciprocal_rank(rb.get(q, []), g) for q, g in zip(questions.qid, questions.gold_pids, strict=True)]
    return with_verdict(paired_interval(diffs, n_boot, seed))

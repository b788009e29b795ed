"""Stage 02: BM25 and dense top-k of every question over the whole corpus, and their gold recall."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_passages, load_questions
from ragalign.core.params import Params, ParamsError
from ragalign.core.retrieval import (
    DenseEncoder,
    bm25_search,
    corpus_strings,
    dense_search,
    retrieval_quality,
    to_ranking,
)
from ragalign.core.seed import seed_everything


@dataclass
class Result:
    questions: pd.DataFrame
    bm25: pd.DataFrame
    dense: pd.DataFrame
    ks: list[int]
    quality: dict[str, dict[str, dict[str, float]]]  # split -> method -> recall@k / mrr


def recall_ks(k: int) -> list[int]:
    """The cut-offs the study reports, up to ``k``."""
    return sorted({1, 2, 5, 10, k} & set(range(1, k + 1)))


def run(P: Params) -> Result:
    seed_everything(P.data.seed)
    questions, passages = load_questions(), load_passages()
    if P.retrieval.k > len(passages):
        raise ParamsError(f"retrieval.k={P.retrieval.k} exceeds the corpus size ({len(passages)} passages)")
    corpus = corpus_strings(passages)
    idx, scores = bm25_search(corpus, questions.question.tolist(), P.retrieval.k)
    bm25 = to_ranking(questions.qid, idx, scores, passages.pid, "bm25")
    encoder = DenseEncoder(P.models.encoder, P.retrieval.max_length, autocast=P.numerics().retrieval_autocast)
    passage_emb = encoder.embed(corpus, P.retrieval.encode_batch_size, desc="embed corpus")
    query_emb = encoder.embed(questions.question.tolist(), P.retrieval.encode_batch_size)
    idx, scores = dense_search(passage_emb, query_emb, P.retrieval.k)
    dense = to_ranking(questions.qid, idx, scores, passages.pid, "dense")
    ks = recall_ks(P.retrieval.k)
    quality = {
        split: {name: retrieval_quality(r, questions[questions.split == split], ks) for name, r in (("bm25", bm25), ("dense", dense))}
        for split in ("train", "test")
    }
    artifacts.BM25.write(bm25)
    artifacts.DENSE.write(dense)
    artifacts.PASSAGE_EMB.write(passage_emb)
    artifacts.RETRIEVAL_METRICS.write(quality)
    return Result(questions, bm25, dense, ks, quality)

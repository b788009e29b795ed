"""Retrieval: BM25 (bm25s) and a dense bi-encoder (mean-pooled, L2-normalised, faiss inner product).

A ranking is a table ``qid, rank (0-based), pid, score, method``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ragalign.core.metrics import recall_at_k, reciprocal_rank
from ragalign.core.models import device, load_encoder, load_encoder_tokenizer


def passage_string(title: str, text: str) -> str:
    """How a passage reads to every retriever, reranker and generator in the study."""
    return f"{title}: {text}"


def corpus_strings(passages: pd.DataFrame) -> list[str]:
    """The corpus as retriever input, in the table's order."""
    return [passage_string(t, x) for t, x in zip(passages.title, passages.text, strict=True)]


def passage_texts(passages: pd.DataFrame) -> dict[str, str]:
    """pid -> the passage as retriever input (:func:`corpus_strings`)."""
    return dict(zip(passages.pid, corpus_strings(passages), strict=True))


def to_ranking(qids: Sequence[str], indices: np.ndarray, scores: np.ndarray, pids: Sequence[str], method: str) -> pd.DataFrame:
    """A ranking table from per-question index and score arrays [n_questions, k]."""
    n, k = indices.shape
    return pd.DataFrame(
        {
            "qid": np.repeat(np.asarray(qids, dtype=object), k),
            "rank": np.tile(np.arange(k), n),
            "pid": np.asarray(pids, dtype=object)[indices.ravel()],
            "score": scores.ravel().astype(float),
            "method": method,
        }
    )


def bm25_search(corpus: Sequence[str], queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) [n_queries, k] of the BM25 top-k."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(corpus), stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)
    indices, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    return np.asarray(indices), np.asarray(scores)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states over the attention mask, L2-normalised."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


class DenseEncoder:
    """A MiniLM-style bi-encoder: the same weights embed queries and passages.

    ``autocast`` runs :meth:`embed` (inference only) in bf16 autocast: faster where the CPU runs bf16
    natively, about ten times slower where it emulates it (``retrieval.bf16_autocast: auto`` chooses),
    with embeddings close to float32's (``bench/results/encode_precision.json`` says how close, and on
    which CPU). Training forwards follow the trainer's own setting.
    """

    def __init__(self, name: str, max_length: int = 256, model: torch.nn.Module | None = None, autocast: bool = False):
        self.name = name
        self.max_length = max_length
        self.autocast = autocast
        self.tokenizer = load_encoder_tokenizer(name)
        self.model = model if model is not None else load_encoder(name)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(device())

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Differentiable embeddings [n, d] (for training)."""
        batch = self.tokenize(texts)
        return mean_pool(self.model(**batch).last_hidden_state, batch["attention_mask"])

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch_size: int = 64, desc: str | None = None) -> np.ndarray:
        """Embeddings [n, d] as float32, in input order (batched by length)."""
        self.model.eval()
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        starts = range(0, len(texts), batch_size)
        with torch.autocast(device_type=device(), dtype=torch.bfloat16, enabled=self.autocast):
            for start in tqdm(starts, desc=desc, disable=desc is None, mininterval=5):
                idx = order[start : start + batch_size]
                out[idx] = self.forward([texts[i] for i in idx]).float().cpu().numpy()
        return out

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)


def dense_search(passage_emb: np.ndarray, query_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) [n_queries, k] by exact inner product (cosine on normalised vectors)."""
    import faiss

    index = faiss.IndexFlatIP(passage_emb.shape[1])
    index.add(np.ascontiguousarray(passage_emb, dtype=np.float32))
    scores, indices = index.search(np.ascontiguousarray(query_emb, dtype=np.float32), k)
    return indices, scores


def top_pids(ranking: pd.DataFrame, k: int | None = None) -> dict[str, list[str]]:
    """qid -> pids in rank order (the first k)."""
    ranking = ranking.sort_values(["qid", "rank"])
    grouped = ranking.groupby("qid", sort=False).pid.agg(list)
    return {qid: (pids if k is None else pids[:k]) for qid, pids in grouped.items()}


def retrieval_quality(ranking: pd.DataFrame, questions: pd.DataFrame, ks: Sequence[int]) -> dict[str, float]:
    """Mean recall@k of gold passages for each k, and MRR, over the questions in the table."""
    ranked = top_pids(ranking)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = round(float(np.mean([recall_at_k(ranked.get(q, []), g, k) for q, g in zip(questions.qid, questions.gold_pids, strict=True)])), 4)
    out["mrr"] = round(float(np.mean([reciprocal_rank(ranked.get(q, []), g) for q, g in zip(questions.qid, questions.gold_pids, strict=True)])), 4)
    return out


def rankings_of(ranking: pd.DataFrame, qids: Iterable[str]) -> pd.DataFrame:
    """The rows of a stage-02 ranking for ``qids``: every question a later stage ranks is one stage 02 ranked
    (it ranks every benchmark question), so that all stages see one ranking per question."""
    wanted = set(qids)
    missing = sorted(wanted - set(ranking.qid))
    if missing:
        raise KeyError(f"{len(missing)} questions have no stage-02 ranking (e.g. {missing[:3]}): re-run `dvc repro 02_retrieval`")
    return ranking[ranking.qid.isin(wanted)].reset_index(drop=True)

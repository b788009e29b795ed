import numpy as np
import pandas as pd
import pytest

from ragalign.core.retrieval import DenseEncoder, bm25_search, dense_search, retrieval_quality, to_ranking, top_pids

CORPUS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The Great Wall of China was built over many centuries.",
    "Mount Everest is the highest mountain above sea level.",
]
QUERIES = ["Which tower stands in Paris?", "How do plants turn light into energy?", "What is the tallest mountain?"]
GOLD = [0, 1, 3]


def test_bm25_finds_the_answer_passage():
    idx, scores = bm25_search(CORPUS, QUERIES, k=2)
    assert idx[:, 0].tolist() == GOLD
    assert (np.diff(scores, axis=1) <= 0).all()


def test_dense_retrieval_with_minilm():
    enc = DenseEncoder("minilm-l6", max_length=64)
    p, q = enc.embed(CORPUS, batch_size=2), enc.embed(QUERIES)
    assert np.allclose(np.linalg.norm(p, axis=1), 1, atol=1e-5)
    idx, scores = dense_search(p, q, k=4)
    assert idx[:, 0].tolist() == GOLD
    assert scores[0, 0] == pytest.approx(float(p[0] @ q[0]), abs=1e-5)
    # embedding is independent of batch composition (length-sorted batching restores order)
    assert np.allclose(enc.embed(CORPUS[1:2]), p[1:2], atol=1e-5)


def test_ranking_table_and_quality():
    idx = np.array([[2, 0], [1, 3]])
    ranking = to_ranking(["a", "b"], idx, np.array([[0.9, 0.5], [0.8, 0.1]]), ["p0", "p1", "p2", "p3"], "x")
    assert list(ranking.columns) == ["qid", "rank", "pid", "score", "method"]
    assert top_pids(ranking) == {"a": ["p2", "p0"], "b": ["p1", "p3"]}
    questions = pd.DataFrame({"qid": ["a", "b"], "gold_pids": [["p0"], ["p1", "p9"]]})
    q = retrieval_quality(ranking, questions, [1, 2])
    assert q == {"recall@1": 0.25, "recall@2": 0.75, "mrr": 0.75}

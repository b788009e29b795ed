"""RADIO rationale distillation: score mixing, group sampling by rank, the contrastive loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ragalign.core.rerank import Group
from ragalign.methods import rationale as R


def test_minmax_and_mix_on_known_numbers():
    np.testing.assert_allclose(R.minmax([1.0, 2.0, 3.0]), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(R.minmax([4.0, 4.0]), [0.0, 0.0])  # constant: no signal
    # rationale [0, .5, 1], retrieval [0, 1, .5]
    np.testing.assert_allclose(R.mix_scores([1, 2, 3], [10, 30, 20], 0.5), [0.0, 0.75, 0.75])
    np.testing.assert_allclose(R.mix_scores([1, 2, 3], [10, 30, 20], 1.0), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(R.mix_scores([1, 2, 3], [10, 30, 20], 0.0), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(R.mix_scores([1, 2, 3], [10, 30, 20], 0.25), [0.0, 0.875, 0.625])


def test_prompt_and_text():
    assert R.answer_string(["Paris", " Paris", "City of Paris"]) == "Paris; City of Paris"
    prompt = R.rationale_prompt("Where is X?", "Paris")
    assert prompt.startswith(R.RATIONALE_INSTRUCTION) and "Question: Where is X?\nAnswer: Paris\nRationale:" in prompt
    assert R.rationale_text("Where is X?", "Paris", "Because.") == "Where is X? Paris. Because."


def _candidates():
    # one question, 4 candidates; retrieval scores fall with rank
    return pd.DataFrame(
        {"qid": "q", "rank": [0, 1, 2, 3], "pid": ["a", "b", "c", "d"], "score": [0.9, 0.8, 0.7, 0.6], "method": "dense"}
    )


def test_rationale_ranking_mixes_and_reorders():
    emb = np.eye(4, dtype=np.float32)  # passage rows a, b, c, d
    pid_row = {"a": 0, "b": 1, "c": 2, "d": 3}
    rat = {"q": np.array([0.0, 0.0, 1.0, 0.2], dtype=np.float32)}  # rationale points at c
    pure = R.rationale_ranking(_candidates(), rat, emb, pid_row, mix=1.0, k=4)
    assert pure.pid.tolist() == ["c", "d", "a", "b"]  # a, b tie at 0: retrieval order kept
    assert pure["rank"].tolist() == [0, 1, 2, 3] and set(pure.method) == {"rationale"}
    mixed = R.rationale_ranking(_candidates(), rat, emb, pid_row, mix=0.5, k=4)
    # rationale minmax [0, 0, 1, .2], retrieval minmax [1, 2/3, 1/3, 0]
    expected = {"a": 0.5, "b": 1 / 3, "c": 2 / 3, "d": 0.1}
    assert mixed.pid.tolist() == ["c", "a", "b", "d"]
    np.testing.assert_allclose(mixed.set_index("pid").score.loc[list(expected)], list(expected.values()))
    assert R.rationale_ranking(_candidates(), rat, emb, pid_row, mix=0.5, k=2).pid.tolist() == ["a", "b"]


def test_negative_ranks_paper_default_and_fill():
    paper = [3, 4, 6, 9, 13, 18]
    assert R.negative_ranks(paper, 7, 20) == paper  # the paper's group: 1 positive + 6 negatives
    assert R.negative_ranks(paper, 8, 20) == [3, 4, 5, 6, 9, 13, 18]  # filled above the smallest rank
    assert R.negative_ranks(paper, 4, 20) == [3, 6, 18]  # evenly spaced subset, ends kept
    assert R.negative_ranks([3, 4], 5, 5) == [1, 2, 3, 4]  # fill above, then below (rank 1 last)
    assert R.negative_ranks(paper, 8, 20) == R.negative_ranks(paper, 8, 20)  # deterministic
    with pytest.raises(ValueError):
        R.negative_ranks(paper, 21, 20)


def test_build_groups_by_rank():
    ranking = pd.DataFrame(
        {"qid": ["q1"] * 6 + ["q2"] * 3, "rank": [*range(6), *range(3)], "pid": [f"p{i}" for i in range(6)] + ["x0", "x1", "x2"]}
    ).sample(frac=1, random_state=0)  # order of rows must not matter
    text = {p: p.upper() for p in ranking.pid}
    questions = pd.DataFrame({"qid": ["q1", "q2"], "question": ["Q1?", "Q2?"]})
    groups = R.build_groups(questions, ranking, text, [2, 5])
    assert groups == [Group("q1", "Q1?", ("P0", "P2", "P5"), (1.0, 0.0, 0.0))]  # q2 too short: skipped


def test_contrastive_loss_is_cross_entropy():
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, -1.0]])
    expected = torch.nn.functional.cross_entropy(scores, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(R.contrastive_loss(scores), expected)


def test_one_step_lowers_the_loss_on_a_toy_set():
    # toy scorer: a linear map of passage features; the positive (column 0) has feature +1
    torch.manual_seed(0)
    feats = torch.randn(4, 5, 3)
    feats[:, 0, 0] += 2.0
    weight = torch.zeros(3, requires_grad=True)
    optimiser = torch.optim.SGD([weight], lr=0.5)
    before = R.contrastive_loss(feats @ weight)
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    after = R.contrastive_loss(feats @ weight)
    assert after.item() < before.item()


@pytest.mark.slow
def test_one_step_lowers_the_loss_of_the_cross_encoder():
    from ragalign.core.rerank import CrossEncoder

    model = CrossEncoder("minilm-l6", max_length=32)
    groups = [
        Group("a", "capital of France", ("Paris is the capital of France.", "Bananas are yellow.", "The moon orbits Earth."), (1.0, 0.0, 0.0)),
        Group("b", "largest planet", ("Jupiter is the largest planet.", "Rome is in Italy.", "Cats purr."), (1.0, 0.0, 0.0)),
    ]

    def loss() -> torch.Tensor:
        queries = [g.query for g in groups for _ in g.passages]
        passages = [p for g in groups for p in g.passages]
        return R.contrastive_loss(model.logits(queries, passages).view(len(groups), -1))

    torch.manual_seed(0)
    model.model.eval()  # no dropout: the two losses differ only by the step
    optimiser = torch.optim.AdamW(model.model.parameters(), lr=1e-4)
    before = loss()
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


def test_comparison_table():
    ci = {"mean": 0.3, "lo": 0.2, "hi": 0.4}
    table = R.comparison_table({"dense": {"em": ci, "f1": ci, "n": 150}, "gainrag": {"em": ci, "f1": ci}})
    assert len(table) == 4 and set(table.metric) == {"em", "f1"} and list(table.variant.unique()) == ["dense", "gainrag"]


def test_gold_agreement():
    ranking = pd.DataFrame({"qid": ["q"] * 3 + ["r"] * 3, "rank": [0, 1, 2] * 2, "pid": ["g1", "x", "g2", "x", "y", "g3"]})
    questions = pd.DataFrame({"qid": ["q", "r"], "gold_pids": [["g1", "g2"], ["g3"]]})
    row = R.gold_agreement({"toy": ranking}, questions, ks=(1, 3)).loc["toy"]
    assert row["recall@1"] == 0.25 and row["recall@3"] == 1.0 and row["hit@1"] == 0.5
    assert row["mrr"] == pytest.approx((1 + 1 / 3) / 2, abs=1e-4)


def test_generate_rationales(tiny_lm):
    questions = pd.DataFrame(
        {"qid": ["a", "b", "c"], "question": ["Who?", "Where is the tower?", "Who?"], "answers": [["X"], ["Paris", "paris"], ["X"]]}
    )
    out = R.generate_rationales(tiny_lm, questions, max_new_tokens=8)
    assert out.columns.tolist() == ["qid", "question", "answer", "rationale", "text"]
    assert out.answer.tolist() == ["X", "Paris; paris", "X"] and out.rationale[0] == out.rationale[2]
    assert all(t.startswith(f"{q} {a}.") for t, q, a in zip(out.text, out.question, out.answer, strict=True))
    assert tiny_lm.evaluations == 3  # cost counts every rationale asked for

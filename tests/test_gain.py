"""GainRAG: contrastive gain labels, shared no-passage logits, the KL selector loss, pseudo-passages."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ragalign.core.cache import Cache
from ragalign.core.rag import build_prompt
from ragalign.core.rerank import kl_listwise_loss
from ragalign.methods.gainrag.labels import (
    Pair,
    build_pairs,
    compute_pair_scores,
    gain_label,
    gain_labels,
    pair_scores,
    planned_cost,
    score_pairs,
)
from ragalign.methods.gainrag.pseudo import generate_pseudo, is_na, pseudo_pid
from ragalign.methods.gainrag.selector import pseudo_selection_rate, selector_groups

QUESTIONS = ["Where was Ada born?", "Who wrote Dune?"]
PASSAGES = [
    ["Ada was born in London, a large city.", "Unrelated text about rivers.", "London is in England."],
    ["Dune is a novel by Frank Herbert.", "Cats sleep a lot."],
]
ANSWERS = ["London", "Frank Herbert"]


def _pairs() -> list[Pair]:
    return [
        Pair(f"q{i}", f"p{i}{j}", q, p, a)
        for i, (q, ps, a) in enumerate(zip(QUESTIONS, PASSAGES, ANSWERS, strict=True))
        for j, p in enumerate(ps)
    ]


@torch.no_grad()
def _direct_ppl_cd(lm, question: str, passage: str, answer: str, alpha: float) -> float:
    """The formula, token by token, with one unbatched full forward per prefix (no library scoring)."""
    ans = lm.tokenizer(answer, add_special_tokens=False).input_ids
    ctx = lm.prompt_ids(build_prompt(question, [passage]))
    noctx = lm.prompt_ids(build_prompt(question, []))
    nll = 0.0
    for t, tok in enumerate(ans):
        l_ctx = lm.model(input_ids=torch.tensor([ctx + ans[:t]])).logits[0, -1].float()
        l_no = lm.model(input_ids=torch.tensor([noctx + ans[:t]])).logits[0, -1].float()
        nll -= torch.log_softmax((1 + alpha) * l_ctx - alpha * l_no, -1)[tok].item()
    return math.exp(nll / len(ans))


@pytest.mark.parametrize("alpha", [0.5, 0.0])
def test_contrastive_label_matches_direct_formula(tiny_lm, alpha):
    pairs = _pairs()
    labels = gain_labels(pairs, score_pairs(tiny_lm, pairs, alpha, desc=None))
    for p, row in zip(pairs, labels.itertuples(), strict=True):
        direct = _direct_ppl_cd(tiny_lm, p.question, p.passage, p.answer, alpha)
        assert row.ppl_cd == pytest.approx(direct, rel=1e-4)
        assert row.label == pytest.approx(-math.log(direct + 1), abs=1e-4)
        if alpha == 0:  # no contrastive term: plain perplexity of the answer given the passage
            assert row.ppl_cd == pytest.approx(row.ppl, rel=1e-5)
            assert row.label == pytest.approx(row.label_ppl, abs=1e-6)


def _naive_scores(lm, p, alpha: float) -> dict:
    """One full forward with and one without the passage, full-vocabulary logits (the naive way)."""
    ans = lm.answer_ids(p.answer)
    logits = []
    for prompt in (p.prompt, p.noctx_prompt):
        ids = lm.prompt_ids(prompt)
        with torch.no_grad():
            full = lm.model(input_ids=torch.tensor([ids + ans])).logits[0].float()
        logits.append(full[len(ids) - 1 : len(ids) - 1 + len(ans)])
    return pair_scores(logits[0], logits[1], ans, alpha)


def test_shared_noctx_logits_equal_recomputed(tiny_lm):
    pairs = _pairs()
    shared = compute_pair_scores(tiny_lm, pairs, 0.5)
    naive = [_naive_scores(tiny_lm, p, 0.5) for p in pairs]  # no-passage pass recomputed for every passage
    for a, b in zip(shared, naive, strict=True):
        for key in ("logprob_ctx", "logprob_noctx", "logprob_cd"):
            assert a[key] == pytest.approx(b[key], abs=1e-4)
    # the no-passage pass ran once per question, not once per passage
    cost = planned_cost(tiny_lm, pairs)
    assert cost["evaluations"] == len(pairs) + len(QUESTIONS)


def test_scores_are_cached_and_resume(tiny_lm, tmp_path):
    pairs = _pairs()
    cache = Cache("gain", tmp_path / "c")
    first = score_pairs(tiny_lm, pairs[:2], 0.5, cache, desc=None)
    before = tiny_lm.evaluations
    both = score_pairs(tiny_lm, pairs, 0.5, cache, desc=None)
    assert both[:2] == first
    assert tiny_lm.evaluations - before == len(pairs) - 2 + 2  # 3 new passages + 2 no-passage passes
    before = tiny_lm.evaluations
    assert score_pairs(tiny_lm, pairs, 0.5, cache, desc=None) == both
    assert tiny_lm.evaluations == before


def test_several_gold_answers_use_lowest_perplexity(tiny_lm):
    pairs = [Pair("q", "p", "Q?", "some passage", a) for a in ("London", "the city of London in England")]
    scores = score_pairs(tiny_lm, pairs, 0.5, desc=None)
    labels = gain_labels(pairs, scores)
    assert len(labels) == 1
    best = min(math.exp(-s["logprob_cd"] / s["n_tokens"]) for s in scores)
    assert labels.ppl_cd.iloc[0] == pytest.approx(best)
    assert labels.label.iloc[0] == pytest.approx(gain_label(best))


def test_kl_loss_zero_at_labels_and_decreases_under_training():
    torch.manual_seed(0)
    labels = torch.randn(6, 8)
    target = torch.softmax(labels, -1)
    assert kl_listwise_loss(labels, target).item() == pytest.approx(0.0, abs=1e-6)
    # a toy linear scorer over passage features learns the gain ranking
    feats = torch.randn(6, 8, 5)
    w_true = torch.randn(5)
    target = torch.softmax(feats @ w_true, -1)
    w = torch.zeros(5, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.5)
    losses = []
    for _ in range(50):
        loss = kl_listwise_loss(feats @ w, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_selector_groups_targets_and_membership():
    labels = pd.DataFrame(
        {
            "qid": ["a"] * 5 + ["b"] * 3,
            "pid": ["a1", "a2", "a3", "a4", pseudo_pid("a"), "b1", "b2", "b3"],
            "label": [-3.0, -1.0, -2.0, -4.0, -2.5, -1.0, -2.0, -0.5],
        }
    )
    questions = pd.DataFrame({"qid": ["a", "b"], "question": ["A?", "B?"]})
    text = {p: f"text {p}" for p in labels.pid}
    groups = selector_groups(labels, questions, text, group_size=4, seed=1)
    assert [g.qid for g in groups] == ["a", "b"]
    a, b = groups
    assert len(a.passages) == len(b.passages) == 4
    assert "text a2" in a.passages and f"text {pseudo_pid('a')}" in a.passages  # best and pseudo always in
    assert sum(a.target) == pytest.approx(1.0)
    lab = dict(zip(labels.pid, labels.label, strict=True))
    i, j = a.passages.index("text a2"), a.passages.index(f"text {pseudo_pid('a')}")
    assert a.target[i] / a.target[j] == pytest.approx(math.exp(lab["a2"] - lab[pseudo_pid("a")]))
    assert set(b.passages) == {"text b1", "text b2", "text b3"}  # fewer than group_size: padded
    assert selector_groups(labels, questions, text, 4, seed=1) == groups  # seeded


def test_pseudo_na_is_excluded(tiny_lm, monkeypatch):
    assert is_na("N/A") and is_na(' "n/a." ') and is_na("") and is_na("N/A - I am not sure")
    assert not is_na("Nantes is a city in France.")
    questions = pd.DataFrame({"qid": ["q0", "q1"], "question": QUESTIONS, "answers": [["London"], ["Frank Herbert"]]})
    replies = iter(["N/A", "Dune is a science fiction novel written by Frank Herbert."])
    monkeypatch.setattr(tiny_lm, "generate", lambda prompts, n, desc=None: [next(replies) for _ in prompts])
    pseudo = generate_pseudo(tiny_lm, questions, 32)
    assert pseudo.is_na.tolist() == [True, False]
    ranking = pd.DataFrame({"qid": ["q0", "q1"], "rank": [0, 0], "pid": ["p00", "p10"], "score": [1.0, 1.0]})
    store = {"p00": PASSAGES[0][0], "p10": PASSAGES[1][0]}
    pairs = build_pairs(questions, ranking, 1, store, pseudo)
    assert [p.pid for p in pairs] == ["p00", "p10", pseudo_pid("q1")]
    labels = gain_labels(pairs, score_pairs(tiny_lm, pairs, 0.5, desc=None))
    assert pseudo_pid("q0") not in set(labels.pid)
    rank = pd.DataFrame({"qid": ["q0", "q1", "q1"], "rank": [0, 0, 1], "pid": ["p00", pseudo_pid("q1"), "p10"]})
    assert pseudo_selection_rate(rank, 1) == 0.5


def test_gold_at_top_k_gate_is_paired_and_knows_when_the_selector_did_not_move():
    from ragalign.stages.selector_training import gold_at_top_k, gold_at_top_k_gate

    test = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "gold_pids": [[f"g{i}"] for i in range(8)]})

    def ranking(first):
        return pd.DataFrame([{"qid": f"q{i}", "rank": r, "pid": p} for i in range(8) for r, p in enumerate(first(i))])

    dense = ranking(lambda i: ["x", f"g{i}"])
    selector = ranking(lambda i: [f"g{i}", "x"])
    gate = gold_at_top_k_gate(selector, dense, test, 1, 200, 0)
    assert gate["passed"] and gate["verdict"] == "beats" and gate["selector"] == 1.0 and gate["dense"] == 0.0
    assert gold_at_top_k(selector, test, 1) == 1.0
    still = gold_at_top_k_gate(dense, dense, test, 1, 200, 0)
    assert not still["passed"] and still["verdict"] == "did not move"
    other = ranking(lambda i: ["y", f"g{i}"])  # moved, but no gold passage either way
    assert gold_at_top_k_gate(other, dense, test, 1, 200, 0)["verdict"] == "identical"

"""Shapley estimators on toy games with known values, and IG completeness on a tiny random BERT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ragalign.audit import attribution as A
from ragalign.audit import shapley as S


def game(k: int, fn) -> dict[int, float]:
    return {m: float(fn(A.members(m, k))) for m in range(1 << k)}


def toy(k=6, seed=3):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=k)
    return game(k, lambda s: w[s].sum() + 0.3 * (len(s) >= 3) + 0.2 * (0 in s and 1 in s)), k


def test_shapley_maths_is_reexported():
    # the estimators live in ragalign.audit.shapley (tests/test_shapley.py); the old names still work here
    assert A.exact_shapley is S.exact_shapley and A.pmcshap_masks is S.pmcshap_masks and A.members is S.members
    np.testing.assert_allclose(A.exact_shapley(game(3, lambda s: float(0 in s and (1 in s or 2 in s))), 3), [2 / 3, 1 / 6, 1 / 6])


def test_plan_masks_and_estimate():
    v, k = toy()
    method, masks, plan = A.plan_masks(k, 64, 20, seed=0)
    assert method == "exact" and masks == A.all_masks(k) and plan.k == k
    np.testing.assert_allclose(A.estimate(method, v, k, plan, 0), A.exact_shapley(v, k))
    method, masks, plan = A.plan_masks(k, 32, 20, seed=0)
    assert method == "pmcshap" and masks == A.pmcshap_masks(k, 20, np.random.default_rng(0)) and list(plan.masks) == masks
    np.testing.assert_array_equal(A.estimate(method, v, k, plan, 0), A.pmcshap(v, k, masks, np.random.default_rng(1)))
    method, masks, plan = A.plan_masks(k, 32, 20, seed=0, estimator="kernelshap")
    assert method == "kernelshap" and len(masks) == 20
    phi = A.estimate(method, v, k, plan, 0)
    assert phi.sum() == pytest.approx(v[A.full_mask(k)] - v[0])
    with pytest.raises(ValueError, match="players"):
        A.estimate(method, v, k + 1, plan, 0)


def test_convergence_table_and_threshold():
    v, k = toy()
    curve = A.convergence(v, k, budgets=[16, 64], repeats=2, seed=0, n_fits=20)
    assert list(curve.columns) == ["method", "budget", "repeat", "evaluations", "spearman", "max_abs_error"]
    assert set(curve.method) == {"pmcshap", "pmcshap_allpairs", "permutation"} and (curve.evaluations <= curve.budget).all()
    reached = A.evaluations_to_reach(curve, 0.0)
    assert reached == {"permutation": 16, "pmcshap": 16, "pmcshap_allpairs": 16}
    # the same draws as before the move to ragalign.audit.shapley: one generator per (budget, repeat)
    rng = np.random.default_rng([0, 16, 0])
    masks = A.pmcshap_masks(k, 16, rng)
    first = A.pmcshap(v, k, masks, rng, n_fits=20)
    assert curve.max_abs_error.iloc[0] == np.abs(first - A.exact_shapley(v, k)).max()


def test_game_values_batches_and_deduplicates():
    calls = []

    def fake_logprobs(prompts, answers):
        calls.append(len(prompts))
        return [[-float(p.count("D"))] for p in prompts]  # each passage "D" costs one nat

    games = [A.Game(("q", i), "Q?", ("p1", "p2"), ("D1", "D2"), "a", tuple(A.all_masks(2))) for i in range(2)]
    vals = A.game_values(games, fake_logprobs, lambda q, ps: "".join(ps) + q, value="logprob")
    assert calls == [4]  # one call, identical prompts scored once
    assert vals[0] == {0: 0.0, 1: -1.0, 2: -1.0, 3: -2.0} == vals[1]
    assert A.subset_value([np.log(0.5), np.log(0.25)], "prob") == pytest.approx(0.375)


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog", "what", "?"]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64, num_labels=1)
    torch.manual_seed(0)
    return tok, BertModel(cfg).eval(), BertForSequenceClassification(cfg).eval()


@pytest.mark.parametrize("baseline", ["unk", "zero"])
def test_ig_completeness_bi_encoder(tiny_bert, baseline):
    tok, bert, _ = tiny_bert
    ta = A.ig_bi_encoder(bert, tok, "what sat on the mat ?", "the cat sat on a mat", 32, steps=64, baseline=baseline)
    assert ta.query_tokens[0] == "[CLS]" and ta.doc_tokens[-1] == "[SEP]"
    assert ta.relative_gap < 0.02
    assert ta.query_attr[0] == 0.0  # special tokens equal the baseline: no attribution


def test_ig_completeness_cross_encoder(tiny_bert):
    tok, _, ce = tiny_bert
    ta = A.ig_cross_encoder(ce, tok, "what sat ?", "the dog sat on the mat", 32, steps=64, baseline="mask")
    assert ta.query_tokens == ["[CLS]", "what", "sat", "?", "[SEP]"]
    assert ta.relative_gap < 0.02


def test_bm25_has_no_retriever_explainer():
    with pytest.raises(ValueError, match="bm25"):
        A.retriever_explainer("bm25", None, "minilm-l6", 64, 4, "unk")

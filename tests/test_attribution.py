"""Shapley estimators on toy games with known values, and IG completeness on a tiny random BERT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ragalign import attribution as A


def game(k: int, fn) -> dict[int, float]:
    return {m: float(fn(A.members(m, k))) for m in range(1 << k)}


def test_exact_additive_game():
    w = np.array([0.5, -1.0, 2.0, 0.25])
    v = game(4, lambda s: 3.0 + w[s].sum())
    np.testing.assert_allclose(A.exact_shapley(v, 4), w)


def test_exact_symmetric_players_and_efficiency():
    k = 5
    v = game(k, lambda s: len(s) ** 2)  # symmetric, non-additive
    phi = A.exact_shapley(v, k)
    np.testing.assert_allclose(phi, np.full(k, k**2 / k))
    rng = np.random.default_rng(0)
    rand = {m: float(rng.normal()) for m in range(1 << k)}
    phi = A.exact_shapley(rand, k)
    assert phi.sum() == pytest.approx(rand[A.full_mask(k)] - rand[0])


def test_exact_glove_game():
    # v(S) = 1 iff S contains player 0 and one of players 1, 2: phi = (2/3, 1/6, 1/6)
    v = game(3, lambda s: float(0 in s and (1 in s or 2 in s)))
    np.testing.assert_allclose(A.exact_shapley(v, 3), [2 / 3, 1 / 6, 1 / 6])


def test_pmcshap_masks_are_complementary_and_distinct():
    k = 6
    masks = A.pmcshap_masks(k, 20, np.random.default_rng(1))
    assert masks[:2] == [0, A.full_mask(k)] and len(masks) == 20 and len(set(masks)) == 20
    for a, b in zip(masks[2::2], masks[3::2], strict=True):
        assert a ^ b == A.full_mask(k) and a & b == 0
    assert len(A.pmcshap_masks(3, 1000, np.random.default_rng(1))) == 8  # capped at 2^k


def toy(k=6, seed=3):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=k)
    return game(k, lambda s: w[s].sum() + 0.3 * (len(s) >= 3) + 0.2 * (0 in s and 1 in s)), k


def test_pmcshap_converges_to_exact():
    v, k = toy()
    exact = A.exact_shapley(v, k)
    masks = A.pmcshap_masks(k, 1 << k, np.random.default_rng(0))
    est = A.pmcshap(v, k, masks, np.random.default_rng(0), n_fits=200, fit_pairs=len(masks) // 2 - 1)
    np.testing.assert_allclose(est, exact, atol=0.05)
    small = A.pmcshap(v, k, A.pmcshap_masks(k, 16, np.random.default_rng(0)), np.random.default_rng(0))
    assert np.abs(small - exact).max() > np.abs(est - exact).max()


def test_pmcshap_exact_on_additive_game():
    w = np.array([1.0, -0.5, 0.25, 2.0, 0.0])
    v = game(5, lambda s: w[s].sum())
    masks = A.pmcshap_masks(5, 20, np.random.default_rng(0))
    np.testing.assert_allclose(A.pmcshap(v, 5, masks, np.random.default_rng(0), n_fits=20, fit_pairs=6), w, atol=0.05)  # ridge shrinks a little


def test_permutation_sampling_converges_and_respects_budget():
    v, k = toy()
    exact = A.exact_shapley(v, k)
    perms, used = A.permutation_masks(k, 24, np.random.default_rng(0))
    assert len(used) <= 24 and len(perms) >= 1
    perms, used = A.permutation_masks(k, 1 << k, np.random.default_rng(0), max_permutations=3000)
    est = A.permutation_shapley(v, k, perms)
    np.testing.assert_allclose(est, exact, atol=0.05)
    # every permutation is efficient on its own
    one = A.permutation_shapley(v, k, perms[:1])
    assert one.sum() == pytest.approx(v[A.full_mask(k)] - v[0])


def test_convergence_table_and_threshold():
    v, k = toy()
    curve = A.convergence(v, k, budgets=[16, 64], repeats=2, seed=0, n_fits=20)
    assert set(curve.method) == {"pmcshap", "pmcshap_allpairs", "permutation"} and (curve.evaluations <= curve.budget).all()
    reached = A.evaluations_to_reach(curve, 0.0)
    assert reached == {"permutation": 16, "pmcshap": 16, "pmcshap_allpairs": 16}


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

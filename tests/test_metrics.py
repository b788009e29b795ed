import numpy as np
import pandas as pd
import pytest

from ragalign.core.metrics import (
    auc,
    bootstrap_ci,
    clustered_auc_interval,
    exact_match,
    f1_score,
    normalize_answer,
    paired_difference,
    paired_interval,
    recall_at_k,
    reciprocal_rank,
)


def test_normalisation():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"


@pytest.mark.parametrize(
    ("pred", "golds", "em", "f1"),
    [
        ("the Eiffel Tower", ["Eiffel Tower"], 1.0, 1.0),
        ("Paris", ["London", "paris."], 1.0, 1.0),
        ("Eiffel", ["Eiffel Tower"], 0.0, 2 / 3),
        ("tower of London", ["Eiffel Tower"], 0.0, 0.4),
        ("no", ["yes"], 0.0, 0.0),
        ("", ["yes"], 0.0, 0.0),
    ],
)
def test_em_f1_known_cases(pred, golds, em, f1):
    assert exact_match(pred, golds) == em
    assert f1_score(pred, golds) == pytest.approx(f1)


def test_bootstrap_interval_brackets_mean_and_is_seeded():
    x = np.r_[np.ones(30), np.zeros(70)]
    ci = bootstrap_ci(x, 500, seed=3)
    assert ci["lo"] < ci["mean"] == 0.3 < ci["hi"]
    assert ci == bootstrap_ci(x, 500, seed=3)


def test_recall_and_mrr():
    assert recall_at_k(["a", "b", "c"], ["c", "d"], 2) == 0
    assert recall_at_k(["a", "b", "c"], ["c", "d"], 3) == 0.5
    assert reciprocal_rank(["a", "b", "c"], ["c"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a"], ["z"]) == 0


def test_paired_difference():
    a = pd.DataFrame({"qid": ["x", "y", "z"], "f1": [1.0, 0.5, 0.0]})
    b = pd.DataFrame({"qid": ["z", "y", "w"], "f1": [0.0, 0.0, 1.0]})  # paired on y, z only
    diff = paired_difference(a, b, "f1", n_boot=50, seed=0)
    assert diff["n"] == 2 and diff["mean"] == 0.25 and diff["lo"] <= 0.25 <= diff["hi"]


def test_paired_interval_flags_a_difference_of_zero_everywhere():
    same = paired_interval([0.0, 0.0, 0.0], 50, 0)
    assert same["identical"] is True and same["n"] == 3 and same["mean"] == same["lo"] == same["hi"] == 0
    assert paired_interval([0.0, 1e-9, 0.0], 50, 0)["identical"] is False  # rounds to 0, but is not 0 everywhere
    assert paired_interval([], 50, 0)["identical"] is False


def test_paired_outcomes_judge_each_metric_the_margin_on_the_log_prob_only():
    from ragalign.core.verdicts import paired_outcomes

    a = pd.DataFrame({"qid": list("abcdef"), "em": [1.0] * 6, "f1": [1.0] * 6, "gold_logprob": [-1.0, -1.02, -0.98, -1.01, -0.99, -1.0]})
    b = pd.DataFrame({"qid": list("abcdef"), "em": [0.0] * 6, "f1": [1.0] * 6, "gold_logprob": [-1.0] * 6})
    out = paired_outcomes(a, b, 200, 0, margin=0.1)
    assert out["em"]["verdict"] == "beats" and "margin" not in out["em"]
    assert out["f1"]["verdict"] == "identical"
    assert out["gold_logprob"]["verdict"] == "equivalent" and out["gold_logprob"]["margin"] == 0.1


def test_auc_counts_ties_half_and_its_interval_resamples_questions():
    assert auc([2.0, 0.0], [0.0, -1.0]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert np.isnan(auc([], [1.0]))
    rng = np.random.default_rng(0)
    qids = np.repeat([f"q{i}" for i in range(40)], 4)
    gold = np.tile([True, False, False, False], 40)
    scores = rng.normal(0, 1, len(qids)) + 1.5 * gold
    ci = clustered_auc_interval(scores, gold, qids, 300, 0)
    assert ci["n"] == 40 and ci["lo"] < ci["mean"] < ci["hi"] and ci["lo"] > 0.5
    assert ci == clustered_auc_interval(scores, gold, qids, 300, 0)
    noise = clustered_auc_interval(rng.normal(0, 1, len(qids)), gold, qids, 300, 0)
    assert noise["lo"] < 0.5 < noise["hi"]
    assert np.isnan(clustered_auc_interval([1.0], [True], ["q"], 50, 0)["lo"])


def test_em_f1_table_formats_intervals_and_extra_columns():
    from ragalign.core.rag import em_f1_table

    summary = {
        "dense": {"em": {"mean": 0.1, "lo": 0.05, "hi": 0.15}, "f1": {"mean": 0.2, "lo": 0.1, "hi": 0.3}, "n": 10},
        "oracle": {"em": {"mean": 0.3, "lo": 0.2, "hi": 0.4}, "f1": {"mean": 0.5, "lo": 0.4, "hi": 0.6}, "n": 10},
    }
    table = em_f1_table(summary, {"R@1": {"dense": 0.4}})
    assert list(table.index) == ["dense", "oracle"]
    assert list(table.columns) == ["EM", "EM 95% CI", "F1", "F1 95% CI", "R@1"]
    assert table.loc["oracle", "F1 95% CI"] == "[0.400, 0.600]" and table.loc["dense", "R@1"] == 0.4
    assert pd.isna(table.loc["oracle", "R@1"])
    with_outcome = {v: s | {"gold_logprob": {"mean": -2.0, "lo": -2.5, "hi": -1.5}} for v, s in summary.items()}
    assert list(em_f1_table(with_outcome).columns)[:2] == ["gold log-prob", "gold log-prob 95% CI"]

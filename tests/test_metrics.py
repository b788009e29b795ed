import numpy as np
import pytest

from ragalign.metrics import bootstrap_ci, exact_match, f1_score, normalize_answer, recall_at_k, reciprocal_rank


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

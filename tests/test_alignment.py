"""WARG, failure modes and rank correlation on hand-made rankings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ragalign.audit import alignment as AL


def test_warg_identical_reversed_disjoint_by_hand():
    a = ["a", "b", "c"]
    p = 0.5
    # identical: 1 - 0.5 * (1 + 0.5 + 0.25) = p^3
    assert AL.warg(a, a, p) == pytest.approx(0.125)
    assert AL.warg(a, a, p, "ext") == pytest.approx(0.0)
    assert AL.warg(a, a, p, "normalised") == pytest.approx(0.0)
    # reversed: A = (0, 1/2, 1) -> RBO = 0.5 * (0 + 0.25 + 0.25) = 0.25
    r = ["c", "b", "a"]
    assert AL.warg(a, r, p) == pytest.approx(0.75)
    assert AL.warg(a, r, p, "ext") == pytest.approx(1 - (0.25 + 0.125))
    assert AL.warg(a, r, p, "normalised") == pytest.approx(1 - 0.25 / 0.875)
    # disjoint: 1 in every form
    for form in AL.WARG_FORMS:
        assert AL.warg(a, ["x", "y", "z"], p, form) == pytest.approx(1.0)


def test_warg_truncated_floor_and_validation():
    a = list("abcde")
    for p in (0.5, 0.9):
        assert AL.warg(a, a, p) == pytest.approx(p**5)
    with pytest.raises(ValueError):
        AL.warg(a, a, 1.0)
    with pytest.raises(ValueError):
        AL.warg(a, a, 0.5, "other")


def test_generator_ranking_stable_on_ties():
    assert AL.generator_ranking(["a", "b", "c"], [0.1, 0.3, 0.1]) == ["b", "a", "c"]


def test_failure_modes_by_hand():
    ret = ["a", "b", "c", "d", "e"]
    assert AL.failure_modes(ret, ["a", "b", "c", "d", "e"]) == {"wasted": False, "noise": False}
    # retriever's top doc is 3rd for the generator; generator's top is retriever's 4th
    assert AL.failure_modes(ret, ["d", "b", "a", "c", "e"]) == {"wasted": True, "noise": True}
    # rank exactly 2 is not a failure
    assert AL.failure_modes(ret, ["b", "a", "c", "d", "e"]) == {"wasted": False, "noise": False}


def test_rank_correlation_and_rows():
    ret = list("abcde")
    assert AL.rank_correlation(ret, ret) == pytest.approx(1.0)
    assert AL.rank_correlation(ret, ret[::-1]) == pytest.approx(-1.0)
    row = AL.question_alignment(ret, ["d", "b", "a", "c", "e"], [0.5, 0.9])
    assert row["wasted"] == 1.0 and row["noise"] == 1.0 and row["gen_rank_of_ret_top"] == 3.0
    assert set(row) >= {"warg_truncated@0.5", "warg_ext@0.9", "warg_normalised@0.5", "spearman"}
    summary = AL.summarise([row, AL.question_alignment(ret, ret, [0.5, 0.9])], n_boot=50)
    assert summary["wasted"]["mean"] == 0.5


def test_rank_confusion():
    m = AL.rank_confusion([(list("abc"), list("abc")), (list("abc"), list("cba"))], 3)
    np.testing.assert_allclose(m.sum(1), 1.0)
    assert m[0, 0] == 0.5 and m[0, 2] == 0.5 and m[1, 1] == 1.0


def test_audit_orders_documents_by_shapley_and_summarises_per_variant_and_order():
    shap = pd.DataFrame(
        {
            "variant": ["dense", "dense", "dense"],
            "qid": ["q1", "q2", "q1"],
            "order": ["original", "original", "shuffled"],
            "ids": [("a", "b", "c"), ("d", "e", "f"), ("c", "a", "b")],
            "shapley": [[0.1, 0.5, 0.2], [0.9, 0.1, 0.0], [0.2, 0.1, 0.5]],
        }
    )
    retrieved = {"dense": {"q1": ["a", "b", "c"], "q2": ["d", "e", "f"]}}
    table, summary = AL.audit(shap, retrieved, [0.5], n_boot=20, seed=0)
    assert table.gen.tolist() == [["b", "c", "a"], ["d", "e", "f"], ["b", "c", "a"]]
    assert set(summary) == {("dense", "original"), ("dense", "shuffled")}
    original = summary[("dense", "original")]
    assert original["wasted"]["mean"] == 0.5  # q1: the retriever's top document is the generator's third
    assert original["warg_ext@0.5"]["mean"] > 0
    block = AL.metrics_block(original, [0.5])
    assert set(block["warg"]) == set(AL.WARG_FORMS) and block["wasted_retrieval"] == original["wasted"]


def test_warg_figure_draws_each_variant_form_and_the_floor_in_both_orders(tmp_path):
    from ragalign.audit import figures

    ps = [0.5, 0.7, 0.9]
    block = {f"warg_{form}@{p:g}": {"mean": p / 2} for p in ps for form in figures.FORMS}
    summary = {("dense", "original"): block, ("radio", "original"): block, ("dense", "shuffled"): block}
    curve = figures.warg_curves(summary, ps)
    assert len(curve) == 3 * len(ps) * 2 and set(curve.form) == set(figures.FORMS)
    grid = figures.warg_figure(summary, ps, 5, tmp_path / "w.png")
    assert (tmp_path / "w.png").exists() and grid.axes.size == 2
    for ax in grid.axes.flat:
        floor = [line for line in ax.lines if line.get_label() == "floor p^5"]
        assert len(floor) == 1 and list(floor[0].get_ydata()) == [p**5 for p in ps]


def test_gain_vs_shapley_figure_plots_every_document_of_multi_document_games(tmp_path):
    import pandas as pd

    from ragalign.audit import figures

    rows = pd.DataFrame(
        {
            "order": ["original", "original", "shuffled"],
            "k": [3, 1, 3],
            "utility_single": [[0.1, 0.2, -0.1], [0.3], [9.0, 9.0, 9.0]],
            "utility_shapley": [[0.2, 0.1, 0.0], [0.3], [9.0, 9.0, 9.0]],
        }
    )
    fig = figures.gain_vs_shapley_figure(rows, 0.5, tmp_path / "g.png")
    assert (tmp_path / "g.png").exists()
    (points,) = fig.axes[0].collections
    assert sorted(map(tuple, points.get_offsets().tolist())) == [(-0.1, 0.0), (0.1, 0.2), (0.2, 0.1)]  # only the original 3-document game
    assert figures.gain_vs_shapley_figure(rows[rows.k == 1], 0.5, tmp_path / "none.png") is None


def test_ig_token_figure_shows_query_tokens_and_the_top_document_tokens(tmp_path):
    import numpy as np

    from ragalign.audit import figures
    from ragalign.audit.integrated_gradients import TokenAttribution

    t = TokenAttribution(["[CLS]", "who", "?", "[SEP]"], np.array([0.0, 0.5, -0.1, 0.0]), ["a", "b", "c", "[SEP]"], np.array([0.3, -0.9, 0.1, 0.0]), 1.0, 0.2)
    fig = figures.ig_token_figure({("dense", "q"): t}, ["dense"], "q", "Who?", tmp_path / "ig.png", top=2)
    query_ax, doc_ax = fig.axes
    assert [x.get_text() for x in query_ax.get_xticklabels()] == ["who", "?"]
    assert [x.get_text() for x in doc_ax.get_xticklabels()] == ["b", "a"]  # by |IG|, special tokens dropped
    assert figures.ig_token_figure({}, [], "q", "Who?", tmp_path / "none.png") is None

"""Validity gates and the words that follow the numbers: both directions of every verdict."""

import numpy as np
import pandas as pd
import pytest

from ragalign.core.metrics import minimum_detectable_difference, paired_difference
from ragalign.core.validity import GATE_LABELS, chance_gate, describe_failures, difference_gate, loss_gate, ranker_gate
from ragalign.report.summary import failed_gates_text, paired_table, validity_gates, verdict


def test_mde_matches_the_normal_power_formula():
    rng = np.random.default_rng(0)
    d = rng.normal(0.1, 0.5, 400)
    assert minimum_detectable_difference(d) == pytest.approx(2.8016 * d.std(ddof=1) / 20, rel=1e-3)
    assert np.isnan(minimum_detectable_difference([1.0]))


def test_paired_difference_reports_its_mde():
    a = pd.DataFrame({"qid": list("abcd"), "x": [1.0, 2.0, 3.0, 4.0]})
    b = pd.DataFrame({"qid": list("dcba"), "x": [3.0, 2.0, 2.0, 0.0]})  # paired by qid: diffs 1, 0, 1, 1
    d = paired_difference(a, b, "x", 200, 0)
    assert d["mean"] == 0.75 and d["n"] == 4 and d["mde"] > 0


@pytest.mark.parametrize(
    ("d", "words"),
    [
        ({"mean": 0.3, "lo": 0.1, "hi": 0.5, "mde": 0.2}, "A beats B"),
        ({"mean": -0.3, "lo": -0.5, "hi": -0.1, "mde": 0.2}, "A is worse than B"),
        ({"mean": 0.3, "lo": -0.1, "hi": 0.7, "mde": 0.4}, "A and B are not told apart"),
        ({"mean": -0.3, "lo": -0.7, "hi": 0.1, "mde": 0.4}, "A and B are not told apart"),
        ({"mean": 0.0, "lo": 0.0, "hi": 0.0, "mde": 0.0}, "give the same value on every question"),
    ],
)
def test_verdict_follows_sign_and_interval(d, words):
    text = verdict(d, "A", "B")
    assert words in text
    if "not told apart" in text:  # an overlapping interval never names a winner
        assert "beats" not in text and "worse" not in text and f"{d['mde']:.3f}" in text


def test_ranker_gate_passes_only_when_mrr_holds():
    questions = pd.DataFrame({"qid": ["q1", "q2"], "gold_pids": [["g1"], ["g2"]]})

    def ranking(order):
        return pd.DataFrame([{"qid": q, "rank": r, "pid": p, "score": -r, "method": "m"} for q, pids in order.items() for r, p in enumerate(pids)])

    good = ranking({"q1": ["g1", "x"], "q2": ["g2", "y"]})
    bad = ranking({"q1": ["x", "g1"], "q2": ["y", "g2"]})
    assert ranker_gate(good, bad, questions)["passed"]
    assert not ranker_gate(bad, good, questions)["passed"]
    assert ranker_gate(good, good, questions)["passed"]  # keeping the start is no failure


def test_loss_gate_and_chance_gate():
    curve = pd.DataFrame({"step": [0, 5, 10], "split": "val", "loss": [1.0, 0.8, 0.9]})
    assert loss_gate(curve) == {"passed": True, "start": 1.0, "best": 0.8, "kept_step": 5}
    flat = pd.DataFrame({"step": [0, 5], "split": "val", "loss": [1.0, 1.2]})
    assert not loss_gate(flat)["passed"] and loss_gate(flat)["kept_step"] == 0
    assert chance_gate(0.6)["passed"] and not chance_gate(0.41)["passed"]
    assert difference_gate({"mean": 1.0, "lo": 0.2, "hi": 2.0})["passed"]
    assert not difference_gate({"mean": 1.0, "lo": -0.2, "hi": 2.0})["passed"]


def test_failed_gates_lead_the_words():
    gates = validity_gates({"baselines": {"validity": {"reranker_vs_dense_ranking": {"passed": False}, "oracle_vs_no_retrieval": {"passed": True}}}})
    assert set(gates) == {"baselines.reranker_vs_dense_ranking", "baselines.oracle_vs_no_retrieval"}
    text = failed_gates_text(gates)
    assert text.startswith("**1 of 2 validity gates fail.**") and "relevance reranker" in text
    assert failed_gates_text({"x": {"passed": True}}) == "All 1 validity gates pass."
    assert describe_failures({"a": {"passed": True}}, "baselines") == ""
    text = describe_failures({"oracle_vs_no_retrieval": {"passed": True}, "reranker_vs_dense_ranking": {"passed": False}, "new_gate": {"passed": False}}, "baselines")
    assert GATE_LABELS["baselines.reranker_vs_dense_ranking"] in text and "new_gate" in text and "oracle" not in text


def test_paired_table_compares_at_the_same_k():
    qids = [f"q{i}" for i in range(30)]
    rng = np.random.default_rng(1)
    rows = []
    for v, shift in (("no_retrieval", 0.0), ("oracle", 2.0), ("dense", 1.0), ("reranker", 1.0), ("gainrag", 0.5), ("no_distillation", 0.5), ("dense_top1", 0.9)):
        rows += [{"qid": q, "variant": v, "gold_logprob": -3 + shift + rng.normal(0, 0.1)} for q in qids]
    table = paired_table(pd.DataFrame(rows), "gold_logprob", 200, 0)
    got = {(r.variant, r.reference): r for r in table.itertuples()}
    assert ("gainrag", "dense_top1") in got and ("gainrag", "dense") not in got  # GainRAG shows 1 passage
    assert got[("gainrag", "dense_top1")].hi < 0 and got[("oracle", "no_retrieval")].lo > 0

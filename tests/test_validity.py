"""Validity gates: paired intervals over questions, judged by the one verdict function."""

import numpy as np
import pandas as pd
import pytest

from ragalign.core import training
from ragalign.core.metrics import minimum_detectable_difference, paired_difference
from ragalign.core.validity import (
    GATE_LABELS,
    HELDOUT,
    chance_gate,
    describe_failures,
    describe_loss,
    describe_ranker,
    difference_gate,
    gate_text,
    loss_gate,
    ranker_gate,
)
from ragalign.report.summary import failed_gates_text, paired_table, validity_gates


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


QUESTIONS = pd.DataFrame({"qid": [f"q{i}" for i in range(6)], "gold_pids": [[f"g{i}"] for i in range(6)]})


def ranking(order: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame([{"qid": q, "rank": r, "pid": p, "score": -r, "method": "m"} for q, pids in order.items() for r, p in enumerate(pids)])


def test_ranker_gate_passes_only_when_it_beats_its_start():
    good = ranking({f"q{i}": [f"g{i}", "x", "y"] for i in range(6)})
    bad = ranking({f"q{i}": ["x", f"g{i}", "y"] for i in range(6)})
    gate = ranker_gate(good, bad, QUESTIONS, n_boot=200)
    assert gate["passed"] and gate["verdict"] == "beats" and gate["reciprocal_rank"]["mean"] == 0.5 and gate["n"] == 6
    assert gate["recall_at_1"]["mean"] == 1.0 and gate["recall_at_1"]["verdict"] == "beats"
    assert gate["ranker"]["mrr"] == 1.0 and gate["start"]["mrr"] == 0.5  # the MRR blocks stay as before
    worse = ranker_gate(bad, good, QUESTIONS, n_boot=200)
    assert not worse["passed"] and worse["verdict"] == "worse"


def test_a_ranker_identical_to_its_start_did_not_move_and_does_not_pass():
    good = ranking({f"q{i}": [f"g{i}", "x", "y"] for i in range(6)})
    gate = ranker_gate(good, good, QUESTIONS, n_boot=200)
    assert not gate["passed"] and gate["verdict"] == "did not move" and gate["recall_at_1"]["verdict"] == "did not move"
    deeper = ranking({f"q{i}": [f"g{i}", "x", "y", "z"] for i in range(6)})  # ranks deeper, same order where both rank
    assert ranker_gate(good, deeper, QUESTIONS, n_boot=200)["verdict"] == "did not move"
    reordered = ranking({f"q{i}": [f"g{i}", "y", "x"] for i in range(6)})  # moved, but not where the gold passage is
    assert ranker_gate(reordered, good, QUESTIONS, n_boot=200)["verdict"] == "identical"
    middle = ranking({f"q{i}": ["x", f"g{i}"] for i in range(6)})
    mixed = ranking({f"q{i}": ([f"g{i}", "x"] if i % 2 else ["x", "y"]) for i in range(6)})  # reciprocal rank +0.5 or -0.5
    assert ranker_gate(mixed, middle, QUESTIONS, n_boot=200)["verdict"] == "not told apart"
    assert "did not move from dense" in describe_ranker(gate, "the reranker")
    assert "in recall@1" in describe_ranker(ranker_gate(mixed, middle, QUESTIONS, n_boot=200), "the reranker")


def curve_with_items(val_losses: list[float], start: list[float], kept: list[float]) -> pd.DataFrame:
    curve = pd.DataFrame({"step": [0, 5, 10][: len(val_losses)], "split": "val", "loss": val_losses})
    curve.attrs[HELDOUT] = {"qid": [f"q{i}" for i in range(len(start))], "start": start, "kept": kept}
    return curve


def test_loss_gate_pairs_the_held_out_questions():
    curve = curve_with_items([1.0, 0.8, 0.9], [1.0, 1.2, 0.9, 1.1], [0.8, 1.0, 0.7, 0.9])
    gate = loss_gate(curve, n_boot=200)
    assert gate["passed"] and gate["verdict"] == "beats" and (gate["start"], gate["best"], gate["kept_step"]) == (1.0, 0.8, 5)
    assert gate["reduction"]["mean"] == pytest.approx(0.2) and gate["reduction"]["n"] == 4
    assert "kept the weights of step 5" in describe_loss(gate, "the reranker")
    mixed = loss_gate(curve_with_items([1.0, 0.95], [1.0, 1.0, 1.0, 1.0], [0.7, 1.2, 0.8, 1.1]), n_boot=200)
    assert not mixed["passed"] and mixed["verdict"] == "not told apart"  # a lower mean is not enough
    kept_start = loss_gate(curve_with_items([1.0, 1.2], [1.0, 1.1], [1.0, 1.1]), n_boot=200)
    assert not kept_start["passed"] and kept_start["verdict"] == "did not move" and kept_start["kept_step"] == 0
    assert describe_loss(kept_start, "the reranker").startswith("training never lowered")


def test_loss_gate_on_a_model_the_trainer_restored_to_its_start():
    curve = curve_with_items([1.0, 0.9, 0.95], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0])
    curve.attrs[HELDOUT] |= {"best": [0.6, 1.3, 0.7, 1.0], "best_step": 5, "kept_step": 0, "rule": "beats"}
    gate = loss_gate(curve, n_boot=200)
    assert not gate["passed"] and gate["verdict"] == "did not move" and (gate["kept_step"], gate["best_step"]) == (0, 5)
    assert (gate["start"], gate["best"], gate["kept"]) == (1.0, 0.9, 1.0)
    assert gate["reduction"]["identical"] and gate["reduction"]["mean"] == gate["reduction"]["lo"] == gate["reduction"]["hi"] == 0
    assert gate["best_reduction"]["mean"] == pytest.approx(0.1) and gate["best_reduction"]["lo"] <= 0  # computed from the items
    text = describe_loss(gate, "the reranker")
    assert text.startswith("training did not lower the reranker's held-out loss beyond chance (best step 5: 1.0 → 0.9")
    assert "not told apart" in text and text.endswith("so it kept its start")
    recorded = {"mean": 0.1, "lo": -0.2, "hi": 0.4, "n": 4, "identical": False}  # the interval the trainer judged
    curve.attrs[HELDOUT]["interval"] = recorded
    assert loss_gate(curve, n_boot=200)["best_reduction"] == recorded


def test_the_gate_reads_the_key_the_trainer_writes():
    assert HELDOUT == training.HELDOUT


def test_loss_gate_items_of_one_question_count_once():
    curve = curve_with_items([1.0, 0.8], [1.0, 1.0, 1.0], [0.5, 0.5, 0.9])
    curve.attrs[HELDOUT]["qid"] = ["a", "a", "b"]
    assert loss_gate(curve, n_boot=50)["reduction"]["n"] == 2


def test_loss_gate_without_a_record_does_not_pass():
    bare = pd.DataFrame({"step": [0, 5], "split": "val", "loss": [1.0, 0.8]})
    gate = loss_gate(bare)
    assert not gate["passed"] and gate["verdict"] is None and "per-item" in gate["reason"] and gate["best"] == 0.8
    assert not loss_gate(pd.DataFrame({"step": [1], "split": "train", "loss": [1.0]}))["passed"]


def test_chance_gate_needs_the_interval_above_chance():
    gate = chance_gate({"mean": 0.7, "lo": 0.6, "hi": 0.8, "n": 30})
    assert gate["passed"] and gate["verdict"] == "beats" and gate["auc"] == 0.7 and gate["n"] == 30 and gate["chance"] == 0.5
    assert chance_gate({"mean": 0.6, "lo": 0.45, "hi": 0.75})["verdict"] == "not told apart"
    assert chance_gate({"mean": 0.3, "lo": 0.2, "hi": 0.4})["verdict"] == "worse"
    assert chance_gate({"mean": 0.5, "lo": 0.5, "hi": 0.5})["verdict"] == "not told apart"  # all ties: chance, not "identical"


def test_difference_gate_passes_only_on_beats():
    assert difference_gate({"mean": 1.0, "lo": 0.2, "hi": 2.0})["passed"]
    assert not difference_gate({"mean": 1.0, "lo": -0.2, "hi": 2.0})["passed"]
    same = difference_gate({"mean": 0.0, "lo": 0.0, "hi": 0.0, "identical": True}, unmoved=True)
    assert not same["passed"] and same["verdict"] == "did not move" and same["identical"]
    assert difference_gate({"mean": 1.0, "lo": 0.2, "hi": 2.0, "verdict": "equivalent"})["verdict"] == "beats"  # a gate judges anew


def test_failed_gates_lead_the_words():
    gates = validity_gates({"baselines": {"validity": {"reranker_vs_dense_ranking": {"passed": False, "verdict": "did not move"}, "oracle_vs_no_retrieval": {"passed": True}}}})
    assert set(gates) == {"baselines.reranker_vs_dense_ranking", "baselines.oracle_vs_no_retrieval"}
    text = failed_gates_text(gates)
    assert text.startswith("**1 of 2 validity gates fail.**") and "relevance reranker" in text and "(reciprocal rank, test): did not move" in text
    assert failed_gates_text({"x": {"passed": True}}) == "All 1 validity gates pass."
    assert describe_failures({"a": {"passed": True}}, "baselines") == ""
    gates = {"oracle_vs_no_retrieval": {"passed": True}, "reranker_vs_dense_ranking": {"passed": False, "verdict": "not told apart"}, "new_gate": {"passed": False}}
    text = describe_failures(gates, "baselines")
    assert GATE_LABELS["baselines.reranker_vs_dense_ranking"] + ": not told apart (inconclusive)" in text and "new_gate" in text and "oracle" not in text
    assert gate_text("x.y", {"passed": False}) == "x.y"


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

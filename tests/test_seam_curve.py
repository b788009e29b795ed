"""Stage 14: nested training sets that start with the study's train split and never touch another set's
questions; gains over each learner's own start; which side gains more; sizes checked before any work."""

import pytest

from ragalign.core.benchmarks import read_benchmark
from ragalign.core.params import size_problems, validate
from ragalign.core.question_sets import powered_questions, seam_curve_order
from ragalign.report.seam import seam_curve_lead, seam_curve_markdown
from ragalign.smoke import write_benchmark
from ragalign.stages import seam_curve as stage


@pytest.fixture
def params(tmp_path):
    write_benchmark(tmp_path, "hotpotqa", n=40)
    return validate({"data": {"path": str(tmp_path / "data"), "n_train": 10, "n_test": 6}, "reader": {"n_questions": 10},
                     "powered": {"n_questions": 8}, "seam_curve": {"sizes": [5, 10, 16]}, "rag": {"n_bootstrap": 200},
                     "curve": {"sizes": [5], "eval_questions": 4, "answer_sizes": []}})


def test_training_sets_are_nested_start_with_the_train_split_and_avoid_every_other_set(params):
    every, _ = read_benchmark("hotpotqa", params.data.path)
    study = every.head(16).assign(split=["train"] * 10 + ["test"] * 6)
    reader = set(every.qid[16:26])
    order = seam_curve_order(params, every, study, reader)
    train, test = set(study.qid[:10]), set(study.qid[10:])
    assert set(order.qid[:10]) == train  # the point at data.n_train is the study's own budget
    powered = set(powered_questions(params, every, study, reader).qid)
    assert not set(order.qid) & (test | reader | powered) and len(order) == 40 - 6 - 10 - 8
    sets = [set(order.qid[:n]) for n in params.seam_curve.sizes]
    assert sets[0] < sets[1] < sets[2]
    assert list(seam_curve_order(params, every, study, reader).qid) == list(order.qid)  # seeded
    assert size_problems(params, 40) == []
    too_many = params.model_copy(update={"seam_curve": params.seam_curve.model_copy(update={"sizes": [5, 17]})})
    problems = size_problems(too_many, 40)
    assert len(problems) == 1 and problems[0].startswith("seam_curve.sizes asks for 17") and "largest allowed value: 16" in problems[0]
    with pytest.raises(ValueError, match="largest allowed value"):
        seam_curve_order(too_many, every, study, reader)


def _points(params):
    """Two sizes; at 5 the reranker showed dense's own contexts (restored to its start)."""
    base = {"dense": [-3.0, -2.0, -4.0, -3.5], "oracle": [-1.0, -1.5, -2.0, -1.2], "no_retrieval": [-5.0, -4.0, -4.5, -4.2]}
    points = {
        ("reranker", 5): {"scores": {"mine": list(base["dense"])}, "cost": {}},
        ("reranker", 10): {"scores": {"mine": [-2.9, -1.9, -3.8, -3.4]}, "cost": {}},
        ("gainrag", 5): {"scores": {"mine": [-3.5, -2.4, -4.1, -3.9]}, "cost": {"evaluations": 60, "forward_tokens": 6000}},
        ("gainrag", 10): {"scores": {"mine": [-3.4, -2.3, -4.2, -3.8]}, "cost": {"evaluations": 120, "forward_tokens": 12000}},
        ("reader", 5): {"scores": {"dense": [-2.0, -1.0, -3.0, -2.5], "oracle": [-0.5, -0.6, -1.0, -0.4], "no_retrieval": [-4.5, -3.6, -4.0, -3.9]}, "cost": {}},
        ("reader", 10): {"scores": {"dense": [-1.5, -0.8, -2.6, -2.0], "oracle": [-0.2, -0.3, -0.5, -0.1], "no_retrieval": [-4.4, -3.5, -3.9, -3.8]}, "cost": {}},
    }
    return base, points


def test_gains_are_against_each_learners_own_start_and_the_reader_gap_is_gold_minus_none(params):
    P = params.model_copy(update={"seam_curve": params.seam_curve.model_copy(update={"sizes": [5, 10], "learners": ["reranker", "gainrag", "reader"]})})
    base, points = _points(P)
    rows = {(r["learner"], r["n"]): r for r in (stage.point_row(P, m, n, p, base) for (m, n), p in points.items())}
    assert rows[("reranker", 5)]["gain"]["verdict"] == "did not move"  # dense's own contexts
    assert rows[("reranker", 10)]["gain"]["mean"] == pytest.approx(0.125)
    assert rows[("gainrag", 10)]["cost_per_question"] == {"evaluations": 12.0, "forward_tokens": 1200.0}
    assert stage.merge({"evaluations": 2}, {"evaluations": 3, "forward_tokens": 7}) == {"evaluations": 5, "forward_tokens": 7}
    reader = rows[("reader", 10)]
    assert reader["gain"]["mean"] == pytest.approx(1.4) and reader["gold_gain"]["mean"] == pytest.approx(1.15)
    assert reader["gap_change"]["mean"] == pytest.approx(reader["gold_gain"]["mean"] - reader["none_gain"]["mean"])
    sides = stage.side_gaps(P, points)
    assert list(zip(sides.n, sides.learner, strict=True)) == [(5, "reranker"), (5, "gainrag"), (10, "reranker"), (10, "gainrag")]
    assert sides.reader_minus_learner[3]["mean"] == pytest.approx(1.4 - (-0.3))
    curve = {"test_questions": 4, "k": 5, "margin": 0.1, "sizes": [5, 10], "points": list(rows.values()), "sides": sides.to_dict(orient="records")}
    table = seam_curve_markdown(curve)
    assert "| relevance reranker (retriever) | 5 | +0.000 [+0.000, +0.000] did not move | 0.000 | 0 |" in table and "| GainRAG selector (retriever) | 10 |" in table
    assert "| 10 | +1.150" in table  # the reader's gain with the gold passages
    lead = seam_curve_lead(curve)
    assert "on 4 test questions" in lead and "at n = 5, the reader's gain" in lead and "the GainRAG selector's" in lead

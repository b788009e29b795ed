"""Stage 12's question sets and findings: held-out questions apart from every training set, nested sets."""

import pandas as pd
import pytest

from ragalign.core.benchmarks import read_benchmark
from ragalign.core.params import validate
from ragalign.core.question_sets import curve_questions
from ragalign.report.control import findings
from ragalign.smoke import write_benchmark
from ragalign.stages import learning_curve as stage


@pytest.fixture
def params(tmp_path):
    write_benchmark(tmp_path, "hotpotqa", n=40)
    return validate({"data": {"path": str(tmp_path / "data"), "n_train": 10, "n_test": 6},
                     "reader": {"n_questions": 10}, "curve": {"sizes": [5, 10, 20], "eval_questions": 4, "answer_sizes": [20]}})


def test_held_out_questions_never_train_and_the_sets_are_nested(params):
    every, _ = read_benchmark("hotpotqa", params.data.path)
    study = every.head(16)  # the study's train and test questions
    held, pool = curve_questions(params, every, study)
    assert len(held) == 4 and len(pool) == 40 - 16 - 4
    assert not set(held.qid) & set(pool.qid) and not (set(held.qid) | set(pool.qid)) & set(study.qid)
    sets = [set(pool.iloc[:n].qid) for n in params.curve.sizes]
    assert sets[0] < sets[1] < sets[2]  # each point's questions include the smaller point's
    again, _ = curve_questions(params, every, study)
    assert list(again.qid) == list(held.qid)  # seeded
    assert stage.largest_size(params, 40) == 20


def test_findings_follow_the_verdicts():
    diff = {"mean": 0.02, "lo": 0.01, "hi": 0.03, "n": 200, "mde": 0.01, "identical": False, "verdict": "beats"}
    same = {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 200, "mde": 0.0, "identical": True, "verdict": "did not move"}
    points = pd.DataFrame([{"trainer": "project", "n": 50, "rr": same, "gold_at_1": same}, {"trainer": "project", "n": 400, "rr": diff, "gold_at_1": diff},
                           {"trainer": "reference", "n": 50, "rr": {**diff, "lo": -0.01, "verdict": "not told apart"}, "gold_at_1": diff}])
    text = findings(points, {"n": 200, "gold_at_1": 0.8, "mrr": 0.85, "headroom": 0.2}, {})
    assert "beats dense only at the largest size, n = 400" in text and "did not move from dense" in text
    assert "beats dense at none of the sizes up to 50" in text  # the reference, whose interval holds 0


def test_first_place_counts_the_moves_a_flat_curve_can_hide():
    """Two questions fixed and two lost: gold@1 does not move on average, the decomposition says why."""
    base = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    moved = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert stage.first_place(moved, base) == {"misses": 3, "fixed": 2, "hits": 3, "lost": 2}
    assert stage.first_place(base, base) == {"misses": 3, "fixed": 0, "hits": 3, "lost": 0}
    same = {"mean": 0.0, "lo": -0.1, "hi": 0.1, "n": 6, "mde": 0.1, "identical": False, "verdict": "not told apart"}
    points = pd.DataFrame([{"trainer": "project", "n": n, "rr": same, "gold_at_1": same, "first_place": stage.first_place(m, base)}
                           for n, m in ((5, base), (10, moved))])
    text = findings(points, {"n": 6, "gold_at_1": 0.5, "mrr": 0.7, "headroom": 0.5}, {})
    assert "At n = 10 it puts a gold passage first for 2 of the 3 held-out questions dense gets wrong, and loses it for 2 of the 3" in text


def test_the_readme_control_block_says_what_stage_12_found():
    """Stage 11's control block: stage 12's own findings, then one table row per point with the study's trainer's loss gain."""
    from ragalign.report.control import control_block

    worse = {"mean": -0.05, "lo": -0.08, "hi": -0.02, "n": 200, "mde": 0.03, "identical": False, "verdict": "worse"}
    flat = {"mean": 0.0, "lo": -0.02, "hi": 0.02, "n": 200, "mde": 0.03, "identical": False, "verdict": "not told apart"}
    moves = {"misses": 40, "fixed": 5, "hits": 160, "lost": 20}
    curve = {"held_out_questions": 200, "dense": {"n": 200, "gold_at_1": 0.8, "mrr": 0.87, "headroom": 0.2}, "answers": {},
             "points": [{"trainer": "project", "n": 800, "rr": worse, "gold_at_1": worse | {"mean": -0.075, "lo": -0.12, "hi": -0.03}, "first_place": moves,
                         "loss_reduction": {"mean": 0.1, "lo": 0.08, "hi": 0.12, "n": 160}},
                        {"trainer": "reference", "n": 800, "rr": flat, "gold_at_1": flat, "first_place": moves}]}
    block = control_block(curve)
    assert block.startswith("On 200 held-out questions dense retrieval puts a gold passage first for 80%")
    assert "n = 800: it is worse than dense (-0.050 [-0.080, -0.020])" in block
    assert "| the study's trainer (core.training.fit) | 800 | +0.1000 [+0.0800, +0.1200] | -0.050 [-0.080, -0.020] worse | -0.075 [-0.120, -0.030] worse | 5 / 20 |" in block
    assert "| sentence-transformers (MNRL bi-encoder) | 800 | – | +0.000 [-0.020, +0.020] not told apart (inconclusive) |" in block
    assert block.count("beats dense at none of the sizes up to 800") == 2


def test_one_size_that_beats_is_not_called_the_start_of_a_gain():
    """A trainer that beats dense at one size and not at the larger ones is said so; one that keeps beating, from where."""
    from ragalign.report.control import beats_from

    def curve(verdicts):
        return pd.DataFrame([{"n": n, "rr": {"verdict": v}} for n, v in zip((50, 100, 200, 400, 800), verdicts, strict=True)])

    flat = "not told apart"
    said = beats_from(curve(["worse", flat, "beats", flat, flat]))
    assert said == ("Of its 5 sizes it beats dense only at n = 200, not at the larger n = 400, 800: "
                    "there is no size from which it keeps beating dense.")
    assert beats_from(curve([flat, flat, "beats", "beats", "beats"])) == "It beats dense from n = 200 on, at every larger size."
    assert beats_from(curve([flat] * 5)) == "It beats dense at none of the sizes up to 800."

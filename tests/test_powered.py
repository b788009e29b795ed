"""Stage 13: fresh questions outside every training set, the learner it confirms, scoring without decoding,
and a report that says which comparisons had the power to be called equivalent."""

import pandas as pd
import pytest

from ragalign.core.artifacts import seam_variant
from ragalign.core.benchmarks import read_benchmark
from ragalign.core.params import validate
from ragalign.core.question_sets import powered_questions
from ragalign.core.rag import PassageStore, answer_questions, score_questions
from ragalign.report.seam import powered_lead, powered_markdown
from ragalign.smoke import write_benchmark
from ragalign.stages import powered_seam as stage


@pytest.fixture
def params(tmp_path):
    write_benchmark(tmp_path, "hotpotqa", n=40)
    return validate({"data": {"path": str(tmp_path / "data"), "n_train": 10, "n_test": 6}, "reader": {"n_questions": 10}, "powered": {"n_questions": 8}})


def test_fresh_questions_lie_outside_the_study_and_the_readers_training_sets(params):
    every, _ = read_benchmark("hotpotqa", params.data.path)
    study, reader = every.head(16), set(every.qid[16:26])
    fresh = powered_questions(params, every, study, reader)
    assert len(fresh) == 8 and not set(fresh.qid) & (set(study.qid) | reader)
    assert list(powered_questions(params, every, study, reader).qid) == list(fresh.qid)  # seeded
    too_many = params.model_copy(update={"powered": params.powered.model_copy(update={"n_questions": 15})})
    with pytest.raises(ValueError, match=r"powered.n_questions = 15 .*largest allowed value: 14"):
        powered_questions(too_many, every, study, reader)


def _seam(means: dict[str, float], identical: tuple[str, ...] = ()) -> dict:
    """Stage 09's metrics as far as the learner choice reads them: each learner minus dense at k = 5, tuned reader."""
    return {"paired": {seam_variant(m, 5): {"minus_dense_tuned": {"mean": x, "identical": m in identical}} for m, x in means.items()}}


def test_auto_confirms_the_learner_stage_09_found_best_and_skips_those_that_stayed_dense(params):
    means = {"reranker": 0.0, "gainrag": -0.6, "radio": 0.0, "figret": 0.05}
    assert stage.chosen_learner(params, _seam(means)) == "figret"
    assert stage.chosen_learner(params, _seam(means | {"figret": -0.1}, identical=("reranker", "radio"))) == "figret"  # dense's own contexts are no learner
    assert stage.chosen_learner(params, _seam(means, identical=tuple(means))) is None
    fixed = params.model_copy(update={"powered": params.powered.model_copy(update={"learner": "radio"})})
    assert stage.chosen_learner(fixed, _seam(means)) == "radio"


def test_key_contexts_are_none_gold_and_each_ranking_cut_at_every_k(params):
    questions = pd.DataFrame({"qid": ["a", "b"], "gold_pids": [["g1", "g2"], ["g3"]]})
    ranking = pd.DataFrame({"qid": ["a"] * 6 + ["b"] * 6, "rank": list(range(6)) * 2, "pid": [f"p{i}" for i in range(12)], "score": 0.0, "method": "x"})
    ctx = stage.key_contexts(params, questions, ranking, "radio", ranking.assign(pid=ranking.pid[::-1].to_numpy()))
    assert list(ctx) == ["no_retrieval", "oracle", "dense@1", "radio@1", "dense@5", "radio@5"]
    assert ctx["oracle"] == {"a": ["g1", "g2"], "b": ["g3"]} and ctx["no_retrieval"] == {}
    assert ctx["dense@5"]["b"] == ["p6", "p7", "p8", "p9", "p10"] and ctx["radio@1"]["a"] == ["p11"]
    assert list(stage.key_contexts(params, questions, ranking, None, None)) == ["no_retrieval", "oracle", "dense@1", "dense@5"]


def test_scoring_without_decoding_gives_answerings_gold_logprob(tmp_path):
    """The same value as the answering path (float32: within 1e-4 nats), from one forward per gold answer."""
    from ragalign.core.lm import LM

    lm = LM("smollm2-135m-instruct", "float32", cache_root=str(tmp_path), show_progress=False)
    passages = pd.DataFrame({"pid": ["p1", "p2"], "title": ["Paris", "Rome"], "text": ["Paris is the capital of France.", "Rome is the capital of Italy."]})
    questions = pd.DataFrame({"qid": ["a", "b"], "question": ["What is the capital of France?", "Which country is Rome in?"], "answers": [["Paris", "Paris, France"], ["Italy"]]})
    store, ctx = PassageStore(passages, lm, 64), {"a": ["p1", "p2"], "b": ["p2"]}
    scored = score_questions(lm, questions, ctx, store, "dense@2")
    answered = answer_questions(lm, questions, ctx, store, "dense@2", 4)
    assert list(scored.columns) == ["qid", "variant", "context_pids", "gold_logprob"] and list(scored.context_pids) == [["p1", "p2"], ["p2"]]
    assert scored.gold_logprob.to_numpy() == pytest.approx(answered.gold_logprob.to_numpy(), abs=1e-4)
    before = lm.evaluations
    score_questions(lm, questions, {}, store, "none")
    assert lm.evaluations - before == 3  # one forward per gold answer, no decoding


def _diff(mean: float, half: float, mde: float) -> dict:
    verdict = "beats" if mean - half > 0 else "equivalent" if abs(mean) + half <= 0.1 else "not told apart"
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "mde": mde, "n": 400, "identical": False, "verdict": verdict}


def test_the_report_says_which_comparisons_could_be_called_equivalent():
    reader = {"tuned_minus_untuned": {"gold_logprob": _diff(0.9, 0.2, 0.2)}}
    learner = {"tuned_minus_untuned": {"gold_logprob": _diff(0.8, 0.2, 0.2)}, "minus_dense_untuned": _diff(0.01, 0.05, 0.07),
               "minus_dense_tuned": _diff(0.02, 0.12, 0.15), "both": _diff(0.85, 0.2, 0.21), "interaction": _diff(0.01, 0.04, 0.06)}
    paired = {"no_retrieval": reader, "oracle": reader, "dense@5": reader, "figret@5": learner}
    powered = {"questions": 400, "learner": "figret", "ks": [5], "margin": 0.1, "paired": paired, "powered": stage.powered_share(paired, 0.1)}
    assert powered["powered"] == {"comparisons": 8, "within_margin": 2, "largest_mde": 0.21}
    table = powered_markdown(powered)
    assert table.count("| yes |") == 2 and "| FiGRet top-5 − dense top-5, untuned reader | +0.010 [-0.040, +0.060] equivalent | 0.070 | yes |" in table
    lead = powered_lead(powered)
    assert lead.startswith("On 400 fresh questions") and "the tuned reader beats the untuned generator" in lead
    assert "FiGRet top-5 and dense top-5 are not told apart" in lead and "2 of 8 comparisons could be called equivalent" in lead

"""The audit's games: plans and estimates, two values per coalition from one scoring call, one-document games, gain vs Shapley."""

import math

import numpy as np
import pandas as pd
import pytest

from ragalign.audit import games as audit
from ragalign.audit import shapley as S
from ragalign.core.rag import build_prompt


def fake_score(helpful: dict[str, float]):
    """Token log-probs of an answer: -1 per token, raised by each helpful passage in the prompt."""
    calls = []

    def score(prompts, answers):
        calls.append(len(prompts))
        out = []
        for p, answers_p in zip(prompts, answers, strict=True):
            bonus = sum(v for text, v in helpful.items() if text in p)
            out.append([[-1.0 + bonus / (1 + (a == "own"))] * 2 for a in answers_p])
        return out

    return score, calls


def games(k: int, variant: str = "dense", order: str = "original"):
    texts = tuple(f"doc{i}" for i in range(k))
    return [audit.AuditGame(variant, "q1", order, "Q?", tuple(f"p{i}" for i in range(k)), texts, "own", ("gold",))]


def toy(k=6, seed=3):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=k)

    def v(s):
        return w[s].sum() + 0.3 * (len(s) >= 3) + 0.2 * (0 in s and 1 in s)

    return {m: float(v(S.members(m, k))) for m in range(1 << k)}, k


def test_plan_masks_and_estimate():
    v, k = toy()
    method, masks, plan = audit.plan_masks(k, 64, 20, seed=0)
    assert method == "exact" and masks == S.all_masks(k) and plan.k == k
    np.testing.assert_allclose(audit.estimate(method, v, k, plan, 0), S.exact_shapley(v, k))
    method, masks, plan = audit.plan_masks(k, 32, 20, seed=0)
    assert method == "pmcshap" and masks == S.pmcshap_masks(k, 20, np.random.default_rng(0)) and list(plan.masks) == masks
    np.testing.assert_array_equal(audit.estimate(method, v, k, plan, 0), S.pmcshap(v, k, masks, np.random.default_rng(1)))
    method, masks, plan = audit.plan_masks(k, 32, 20, seed=0, estimator="kernelshap")
    assert method == "kernelshap" and len(masks) == 20
    phi = audit.estimate(method, v, k, plan, 0)
    assert phi.sum() == pytest.approx(v[S.full_mask(k)] - v[0])
    with pytest.raises(ValueError, match="players"):
        audit.estimate(method, v, k + 1, plan, 0)


def test_subset_value():
    assert audit.subset_value([np.log(0.5), np.log(0.25)], "prob") == pytest.approx(0.375)
    assert audit.subset_value([-1.0, -2.0], "logprob") == -1.5
    with pytest.raises(ValueError, match="unknown value"):
        audit.subset_value([-1.0], "rank")


def test_per_answer_flattens_one_call_and_regroups():
    calls = []

    def flat(prompts, answers):
        calls.append(list(zip(prompts, answers, strict=True)))
        return [[-float(len(p)), -float(len(a))] for p, a in zip(prompts, answers, strict=True)]

    score = audit.per_answer(flat)
    out = score(["P1", "P22"], [["a"], ["bb", "ccc"]])
    assert calls == [[("P1", "a"), ("P22", "bb"), ("P22", "ccc")]]
    assert out == [[[-2.0, -1.0]], [[-3.0, -2.0], [-3.0, -3.0]]]


def test_game_values_over_a_flat_scorer_one_answer_per_game():
    # the benches' games: one answer, scored as support and (as its own gold answer) utility
    calls = []

    def flat(prompts, answers):
        calls.append(len(prompts))
        return [[-float(p.count("D"))] for p in prompts]  # each passage "D" costs one nat

    gs = [audit.AuditGame("v", f"q{i}", "original", "Q?", ("p1", "p2"), ("D1", "D2"), "a", ("a",)) for i in range(2)]
    vals = audit.game_values(gs, {2: S.all_masks(2)}, audit.per_answer(flat), "logprob")
    assert calls == [4]  # one call, identical prompts scored once
    assert vals[0]["support"] == {0: 0.0, 1: -1.0, 2: -1.0, 3: -2.0} == vals[1]["support"] == vals[0]["utility"]


def test_both_values_come_from_one_call_and_exact_shapley_is_additive():
    score, calls = fake_score({"doc0": 0.5, "doc2": 0.25})
    gs = games(3) + games(3, variant="figret")  # the same coalitions: scored once
    plans = audit.plans_for([3], 64, 16, "kernelshap", 0)
    values = audit.game_values(gs, {3: plans[3][2]}, score, "logprob")
    assert calls == [8]  # 2^3 distinct prompts, one call, both variants
    rows = audit.shapley_rows(gs, values, {3: plans[3][:2]}, 0)
    assert rows.utility_shapley[0] == pytest.approx([0.5, 0.0, 0.25])  # additive game: Shapley = own effect
    assert rows.utility_single[0] == pytest.approx([0.5, 0.0, 0.25])
    assert rows.support_shapley[0] == pytest.approx([0.25, 0.0, 0.125])
    assert rows.utility_full[0] == pytest.approx(-0.25) and rows.utility_empty[0] == -1.0


def test_one_document_game_has_one_value_and_no_ranking():
    score, _ = fake_score({"doc0": 0.5})
    gs = games(1, variant="gainrag")
    plans = audit.plans_for([1], 64, 16, "kernelshap", 0)
    assert plans[1][2] == [0, 1]
    values = audit.game_values(gs, {1: plans[1][2]}, score, "prob")
    rows = audit.shapley_rows(gs, values, {1: plans[1][:2]}, 0)
    assert rows.utility_shapley[0] == pytest.approx([0.5])
    table, summary = audit.alignment_table(rows, {"gainrag": {"q1": ["p0"]}}, [0.7], 50, 0)
    assert table.empty and summary == {}


def test_sampled_plans_still_score_every_single_document():
    plans = audit.plans_for([8], 64, 32, "kernelshap", 0)
    method, _, masks = plans[8]
    assert method == "kernelshap" and {1 << i for i in range(8)} <= set(masks) and {0, 255} <= set(masks)


def test_gain_vs_shapley_and_paired_differences():
    rows = pd.DataFrame(
        {
            "k": [3, 3],
            "order": ["original"] * 2,
            "utility_single": [[0.1, 0.5, 0.2], [0.3, 0.1, 0.0]],
            "utility_shapley": [[0.1, 0.4, 0.3], [0.1, 0.2, 0.0]],
        }
    )
    link = audit.gain_vs_shapley(rows)
    assert link["games"] == 2 and link["spearman_per_game"] == pytest.approx(0.75)
    table = pd.DataFrame(
        {"variant": ["dense"] * 4 + ["radio"] * 4, "qid": list("abcd") * 2, "order": "original", "wasted": [0, 0, 1, 0, 1, 1, 1, 0]}
    )
    d = audit.paired_vs(table, "dense", ["wasted"], 200, 0)["radio"]["wasted"]
    assert d["mean"] == 0.5 and d["n"] == 4 and not math.isnan(d["mde"]) and d["identical"] is False


def test_the_position_control_is_paired_on_the_shuffled_questions():
    original = pd.DataFrame({"variant": ["dense"] * 4 + ["radio"] * 4, "qid": list("abcd") * 2, "order": "original",
                             "wasted": [0, 0, 1, 0, 1, 1, 1, 0], "noise": 0.0})
    shuffled = pd.DataFrame({"variant": ["dense"] * 2 + ["radio"] * 2, "qid": list("ab") * 2, "order": "shuffled",
                             "wasted": [1, 1, 1, 1], "noise": 0.0})
    out = audit.paired_orders(pd.concat([original, shuffled], ignore_index=True), ["wasted", "noise"], 200, 0)
    assert set(out) == {"dense", "radio", audit.ALL_VARIANTS}
    assert out["dense"]["wasted"]["mean"] == 1.0 and out["dense"]["wasted"]["n"] == 2  # only the shuffled questions a, b
    assert out["radio"]["wasted"]["identical"] and out["radio"]["wasted"]["mean"] == 0.0
    assert out[audit.ALL_VARIANTS]["wasted"]["mean"] == 0.5 and out[audit.ALL_VARIANTS]["wasted"]["n"] == 2
    assert out[audit.ALL_VARIANTS]["noise"]["identical"]
    assert audit.paired_orders(original, ["wasted"], 50, 0) == {} and audit.paired_orders(pd.DataFrame(), ["wasted"], 50, 0) == {}


def test_shuffled_order_is_seeded_and_a_permutation():
    a = audit.shuffled("q1", ["a", "b", "c", "d", "e"], 0)
    assert sorted(a) == ["a", "b", "c", "d", "e"] and a == audit.shuffled("q1", ["a", "b", "c", "d", "e"], 0)
    assert audit.subset_prompt(games(3)[0], 0b101) == build_prompt("Q?", ["doc0", "doc2"])
    assert np.isfinite(audit.paired_interval([0.0, 1.0, 0.5], 50, 0)["mde"])


class FakeLM:
    """LM.answer's shape: a reply per prompt (here: 'Answer: <first word of the prompt>.')."""

    def __init__(self):
        self.asked = []

    def answer(self, prompts, golds, max_new_tokens, desc=None):
        self.asked.append((list(prompts), [list(g) for g in golds]))
        return [(f"Answer: {p.split(':')[0].split()[0]}.", [[-1.0] for _ in g]) for p, g in zip(prompts, golds, strict=True)]


def test_build_games_scores_each_variants_own_cleaned_answer_with_a_shuffled_control():
    questions = pd.DataFrame({"qid": ["q1", "q2"], "question": ["Q1?", "Q2?"], "answers": [["a1"], ["a2", "b2"]]})
    contexts = {"dense": {"q1": ["p1", "p2", "p3"], "q2": ["p2", "p1", "p3"]}, "gainrag": {"q1": ["p3"], "q2": ["p1"]}}
    lm = FakeLM()
    gs = audit.build_games(lm, questions, contexts, lambda pid: f"{pid}: text of {pid}", 16, shuffled_questions=1, seed=0)
    assert len(lm.asked) == 1 and len(lm.asked[0][0]) == 4  # one answering call, 2 variants x 2 questions
    assert lm.asked[0][0][0] == build_prompt("Q1?", ["p1: text of p1", "p2: text of p2", "p3: text of p3"])
    assert [(g.variant, g.qid, g.order) for g in gs] == [
        ("dense", "q1", "original"), ("dense", "q1", "shuffled"), ("dense", "q2", "original"), ("gainrag", "q1", "original"), ("gainrag", "q2", "original")
    ]  # a one-document game has no other order
    assert gs[0].own_answer == "p1" and gs[2].gold_answers == ("a2", "b2")
    assert sorted(gs[1].ids) == sorted(gs[0].ids) and gs[1].ids == tuple(audit.shuffled("q1", ["p1", "p2", "p3"], 0))


def test_audit_table_has_a_row_per_variant_and_leaves_unmeasured_cells_empty():
    from types import SimpleNamespace

    from ragalign.stages.rag_e_audit import audit_table

    ci = {"mean": 0.4, "lo": 0.3, "hi": 0.5}
    block = {"warg_truncated@0.7": ci, "warg_ext@0.7": ci, "wasted": ci, "noise": {"mean": 0.6}}
    utility = {"dense": {"k": 5, "utility_full": {"mean": -1.0}}, "gainrag": {"k": 1, "utility_full": {"mean": -2.0}}}
    quality = {"dense": {"f1": {"mean": 0.3}}, "gainrag": None}
    table = audit_table([SimpleNamespace(name="dense"), SimpleNamespace(name="gainrag")], utility, quality, {("dense", "original"): block}, 0.7)
    assert list(table.index) == ["dense", "gainrag"]
    assert table.loc["dense", ["documents", "F1", "WARG@0.7", "noise"]].tolist() == [5, 0.3, 0.4, 0.6]
    assert table.loc["gainrag", ["WARG@0.7", "wasted (shuffled)", "F1"]].isna().all()

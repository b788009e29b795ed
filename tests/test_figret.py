"""FiGRet: yes/no judgements, examples from judgements, the dual curriculum, contrastive training."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ragalign.methods.figret import examples as fx
from ragalign.methods.figret import judge, rounds, training
from ragalign.methods.figret.examples import Example, build_examples, curriculum_order
from ragalign.methods.figret.judge import judge_prompt, set_plan, yes_no_scores
from ragalign.methods.figret.training import set_infonce


# ---- yes/no judgements --------------------------------------------------------------------
def test_yes_no_score_is_the_first_token_log_odds_and_cached(tiny_lm):
    prompts = [judge_prompt("relevance", "Where was Ann born?", ["Ann was born in Oslo."]), judge_prompt("purity", "Who?", ["Text."])]
    scores = yes_no_scores(tiny_lm, prompts, batch=1)
    tok = tiny_lm.tokenizer
    for prompt, score in zip(prompts, scores, strict=True):
        ids = torch.tensor([tiny_lm.prompt_ids(prompt)])
        with torch.no_grad():
            logp = torch.log_softmax(tiny_lm.model(ids).logits[0, -1].float(), -1)
        yes = sorted({tok(w, add_special_tokens=False).input_ids[0] for w in judge.YES})
        no = sorted({tok(w, add_special_tokens=False).input_ids[0] for w in judge.NO})
        assert score == pytest.approx(float(torch.logsumexp(logp[yes], 0) - torch.logsumexp(logp[no], 0)), abs=1e-4)
    assert tiny_lm.evaluations == 2  # one evaluation per judgement (both answers from one forward)
    calls = []
    tiny_lm.answer_hidden = lambda *a, **k: calls.append(a) or iter(())
    assert yes_no_scores(tiny_lm, prompts) == pytest.approx(scores)
    assert not calls  # second call: all from the cache


def test_judge_prompt_lists_passages_then_question_and_format():
    text = judge_prompt("comprehensiveness", "Q?", ["A: one", "B: two"])
    assert text.startswith("A: one\n\nB: two\n\nQuestion: Q?\n") and text.endswith("Answer Yes or No.")


def test_set_plan_replaces_the_missing_hop():
    complete, negatives = set_plan(["g2", "g1"], ["n1", "g1", "n2", "n3"], k=4, n_negatives=2)
    assert complete == ("g1", "g2")  # retrieved gold first, unretrieved (missing hop) last
    assert negatives == [("g1", "n1"), ("g1", "n2")]


def _judged(monkeypatch):
    """Judge a toy question with a fake LLM whose verdicts are written into the passages."""
    questions = pd.DataFrame({"qid": ["q"], "question": ["Where was Ann born?"], "gold_pids": [["g1", "g2"]]})
    passages = {"g1": "helpful clean", "g2": "helpful clean", "n1": "useless distracting", "n2": "helpful misleading", "n3": "useless clean"}

    class Store:
        def __getitem__(self, pid):
            return passages[pid]

        def texts(self, pids):
            return [passages[p] for p in pids]

    def fake_scores(lm, prompts, batch=16, desc=None):
        out = []
        for p in prompts:
            if "together contain" in p:
                out.append(3.0 if p.count("helpful clean") == 2 else (-1.0 if "n1" in p or "useless distracting" in p else 0.5))
            elif "misleading or distracting" in p:
                out.append(2.0 if ("distracting\n" in p or "misleading\n" in p) else -2.0)
            else:
                out.append(2.0 if "helpful" in p else -2.0)
        return np.asarray(out)

    monkeypatch.setattr(judge, "yes_no_scores", fake_scores)
    ranked = {"q": ["n1", "g1", "n2", "n3", "g2"]}
    judged, sets = judge.judge_questions(None, questions, ranked, Store(), k=4, n_negatives=3, batch=4)
    return questions, judged, sets


def test_judgements_and_examples_from_a_fake_llm(monkeypatch):
    questions, judged, sets = _judged(monkeypatch)
    assert sorted(judged.pid) == ["g1", "g2", "n1", "n2", "n3"]  # top-4 plus the unretrieved gold
    assert judged.set_index("pid").loc["n2", "purity"] < judged.set_index("pid").loc["n3", "purity"]
    assert sets.complete.sum() == 1 and len(sets) == 1 + 3
    examples = build_examples(questions, judged, sets, n_negatives=3)
    by = {(e.objective, e.positive): e for e in examples}
    # relevance: gold anchors; n2 (judged helpful) is not a trusted negative; rank order kept
    assert by[("relevance", ("g1",))].negatives == (("n1",), ("n3",))
    # purity: only passages judged more misleading than the anchor, most misleading first
    assert set(by[("purity", ("g1",))].negatives) == {("n1",), ("n2",)}
    comp = by[("comprehensiveness", ("g1", "g2"))]
    assert comp.negatives == (("g1", "n1"), ("g1", "n2"), ("g1", "n3"))
    assert comp.margin == pytest.approx(3.0 - 0.5)
    assert all(0 <= e.difficulty <= 1 for e in examples)


# ---- curriculum ---------------------------------------------------------------------------
def _toy_examples():
    out = []
    for i, (objective, margin) in enumerate([("purity", 5.0), ("relevance", 0.1), ("comprehensiveness", 2.0), ("relevance", 3.0), ("purity", 0.2), ("comprehensiveness", 0.5)]):
        out.append(Example(f"q{i}", f"query {i}", objective, (f"p{i}",), ((f"n{i}",),), margin))
    return fx.with_difficulty(out)


def test_dual_curriculum_goes_objective_by_objective_easy_to_hard():
    ordered = curriculum_order(_toy_examples(), "dual")
    assert [e.objective for e in ordered] == ["relevance", "relevance", "comprehensiveness", "comprehensiveness", "purity", "purity"]
    assert [e.margin for e in ordered] == [3.0, 0.1, 2.0, 0.5, 5.0, 0.2]  # large margin (easy) first
    assert [e.difficulty for e in ordered] == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_shuffled_order_is_seeded_permutation():
    ex = _toy_examples()
    a, b = curriculum_order(ex, "shuffled", seed=3), curriculum_order(ex, "shuffled", seed=3)
    assert a == b and sorted(a, key=lambda e: e.qid) == sorted(ex, key=lambda e: e.qid)
    with pytest.raises(ValueError):
        curriculum_order(ex, "nope")


# ---- training -----------------------------------------------------------------------------
def test_set_infonce_matches_hand_computation():
    sim = torch.tensor([0.9, 0.1, 0.5, 0.3])
    loss = set_infonce(sim, [[0, 2], [1], [3]], temperature=0.5)
    scores = torch.tensor([0.7, 0.1, 0.3]) / 0.5
    assert loss.item() == pytest.approx(-(scores[0] - torch.logsumexp(scores, 0)).item(), abs=1e-6)


@pytest.fixture
def tiny_encoder():
    from transformers import BertConfig, BertModel

    from ragalign.core.models import load_encoder_tokenizer
    from ragalign.core.retrieval import DenseEncoder

    torch.manual_seed(0)
    vocab = len(load_encoder_tokenizer("minilm-l6"))
    model = BertModel(BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    return DenseEncoder("minilm-l6", max_length=32, model=model)


TEXTS = {f"p{i}": f"passage {i} about {w}" for i, w in enumerate(["paris", "rivers", "music", "football", "volcanoes", "tea"])}
TOY = [
    Example("a", "the capital paris", "relevance", ("p0",), (("p1",), ("p2",)), 1.0),
    Example("b", "football match", "comprehensiveness", ("p3", "p5"), (("p3", "p4"),), 1.0),
    Example("c", "hot volcanoes", "purity", ("p4",), (("p5",),), 1.0),
]


def test_one_training_step_lowers_the_contrastive_loss(tiny_encoder):
    opt = torch.optim.AdamW(tiny_encoder.model.parameters(), lr=1e-3)
    before = training.batch_loss(tiny_encoder, TOY, TEXTS, temperature=0.05)
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = training.batch_loss(tiny_encoder, TOY, TEXTS, temperature=0.05).item()
    assert math.isfinite(before.item()) and after < before.item()


def test_train_retriever_returns_a_curve_and_follows_the_keep_rule(tiny_encoder):
    """FiGRet is held to the keep rule like every learner: the kept weights are the best ones only where
    they beat the start per held-out question, and their held-out losses are what ``curve.attrs`` records."""
    from ragalign.core.training import HELDOUT, split_groups

    examples = TOY * 2
    curve = training.train_retriever(tiny_encoder, examples, TEXTS, epochs=2, lr=1e-3, batch_size=2, temperature=0.05, val_fraction=0.34, seed=0)
    val = curve[curve.split == "val"].loss
    assert len(val) == 3 and np.isfinite(val).all()
    assert (curve.split == "train").sum() == 2 * 2  # 4 train examples, batch 2, 2 epochs
    _, held_out = split_groups(examples, 0.34, 0)
    held = curve.attrs[HELDOUT]
    assert held["rule"] == "beats" and held["qid"] == [e.qid for e in held_out]
    kept = curve[(curve.split == "val") & (curve.step == held["kept_step"])].loss.iloc[0]
    assert np.mean(training._eval_losses(tiny_encoder, held_out, TEXTS, 0.05, 32)) == pytest.approx(kept, abs=1e-5)
    assert held["kept"] == (held["best"] if held["kept_step"] else held["start"])



# ---- the rounds ---------------------------------------------------------------------------
def test_rounds_re_retrieve_with_the_trained_encoder_and_count_their_cost(monkeypatch):
    examined = pd.DataFrame({"qid": ["q1", "q2"], "question": ["a?", "b?"], "gold_pids": [["g1"], ["g2"]]})
    test = pd.DataFrame({"qid": ["t1"], "question": ["c?"], "gold_pids": [["g3"]]})

    class CountingLM:
        evaluations = forward_tokens = 0

    seen_rankings, trained = [], []

    def fake_collect(lm, questions, ranked, store, *, round, **judge):
        seen_rankings.append({q: list(r) for q, r in ranked.items()})
        lm.evaluations += 10 * round
        lm.forward_tokens += 100
        served = pd.DataFrame({"qid": questions.qid, "gold_in_top_k": [False, True], "em": [np.nan, 0.0], "poor": [True, True]})
        examples = [Example("q1", "a?", "relevance", ("g1",), (("x",),), 1.0)]
        return rounds.Round(round, served, pd.DataFrame(), pd.DataFrame(), examples)

    def fake_train(encoder, examples, texts, order, desc, **kwargs):
        trained.append((order, desc, kwargs))
        encoder["round"] += 1
        return pd.DataFrame({"step": [0], "split": ["val"], "loss": [1.0]})

    def fake_search(encoder, questions, pool, texts, k, method, batch_size=64, pool_emb=None):
        # after round r the trained encoder puts gold first for r questions
        rows = []
        for i, q in enumerate(questions.itertuples()):
            order = [q.gold_pids[0], "x"] if i < encoder["round"] else ["x", q.gold_pids[0]]
            rows += [{"qid": q.qid, "rank": r, "pid": p, "score": 1.0 - r, "method": method} for r, p in enumerate(order)]
        return pd.DataFrame(rows)

    monkeypatch.setattr(rounds, "collect_round", fake_collect)
    monkeypatch.setattr(rounds, "train_retriever", fake_train)
    monkeypatch.setattr(rounds, "search_pool", fake_search)
    lm, encoder = CountingLM(), {"round": 0}
    done, history = rounds.run_rounds(
        lm, encoder, examined, {"q1": ["x", "g1"], "q2": ["x", "g2"]}, None, {},
        n_rounds=2, pools={"train examined (pool)": (examined, ["x", "g1", "g2"]), "test (pool)": (test, ["x", "g3"])},
        ks=[1], search_k=2, encode_batch_size=8, judge={"top_k": 1}, train={"epochs": 1},
    )
    assert seen_rankings[1] == {"q1": ["g1", "x"], "q2": ["x", "g2"]}  # round 2 starts from round 1's retriever
    assert [rd.cost["lm_evaluations"] for rd in done] == [10, 20]
    assert [t[:2] for t in trained] == [("dual", "round 1"), ("dual", "round 2")] and trained[0][2] == {"epochs": 1}
    assert history.set_index(["round", "split"])["recall@1"].to_dict() == {
        (1, "train examined (pool)"): 0.5, (1, "test (pool)"): 1.0, (2, "train examined (pool)"): 1.0, (2, "test (pool)"): 1.0,
    }
    table = rounds.round_table(done)
    assert table.loc[0, ["examined", "poorly served", "gold missing from top-k", "answered wrong (gold in top-k)", "relevance"]].tolist() == [2, 2, 1, 1, 1]
    assert table.lm_evaluations.tolist() == [10, 20]


def test_judge_auc_counts_ties_half():
    judged = pd.DataFrame({"is_gold": [True, True, False, False], "relevance": [2.0, 0.0, 0.0, -1.0], "purity": [0.0, 0.0, 1.0, 1.0]})
    auc = judge.judge_auc(judged)
    assert auc["relevance"] == pytest.approx((1 + 1 + 0.5 + 1) / 4) and auc["purity"] == 0.0
    assert np.isnan(judge.judge_auc(judged[judged.is_gold])["relevance"])


def test_judge_auc_interval_resamples_questions_and_matches_the_point_auc():
    rng = np.random.default_rng(0)
    judged = pd.DataFrame({"qid": np.repeat([f"q{i}" for i in range(30)], 3), "is_gold": np.tile([True, False, False], 30)})
    judged["relevance"] = rng.normal(0, 1, len(judged)) + 2.0 * judged.is_gold
    judged["purity"] = rng.normal(0, 1, len(judged))
    ci = judge.judge_auc_interval(judged, 200, 0)
    point = judge.judge_auc(judged)
    assert ci["relevance"]["mean"] == pytest.approx(point["relevance"], abs=1e-4) and ci["relevance"]["n"] == 30
    assert ci["relevance"]["lo"] > 0.5 and ci["purity"]["lo"] < 0.5 < ci["purity"]["hi"]

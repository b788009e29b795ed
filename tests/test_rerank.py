import pandas as pd
import pytest
import torch

from ragalign.core.params import TrainingParams
from ragalign.core.rerank import (
    CrossEncoder,
    Group,
    kl_listwise_loss,
    kl_listwise_losses,
    relevance_groups,
    rerank,
    train_reranker,
)
from ragalign.core.training import HELDOUT, split_groups


def test_kl_loss_zero_iff_scores_match_target():
    target = torch.softmax(torch.tensor([[1.0, 0.0, -1.0]]), -1)
    assert kl_listwise_loss(torch.tensor([[1.0, 0.0, -1.0]]), target).item() == pytest.approx(0, abs=1e-6)
    assert kl_listwise_loss(torch.tensor([[5.0, 0.0, -1.0]]) + 3, target).item() > 0.1
    scores = torch.tensor([[1.0, 0.0, -1.0], [5.0, 0.0, -1.0]])
    per_group = kl_listwise_losses(scores, target.expand(2, 3))
    assert per_group.shape == (2,) and per_group[0].item() == pytest.approx(0, abs=1e-6)
    assert torch.equal(per_group.mean(), kl_listwise_loss(scores, target.expand(2, 3)))


def test_relevance_groups_put_gold_first_with_shared_target():
    questions = pd.DataFrame({"qid": ["q"], "question": ["?"], "gold_pids": [["g1", "g2"]]})
    text = {p: p.upper() for p in ["g1", "g2", "n1", "n2", "n3", "n4"]}
    (group,) = relevance_groups(questions, {"q": ["n1", "g1", "n2", "n3", "n4"]}, text, group_size=4, seed=0, target="uniform")
    assert group.passages[:2] == ("G1", "G2") and group.target == (0.5, 0.5, 0.0, 0.0)
    assert set(group.passages[2:]) <= {"N1", "N2", "N3", "N4"}


def test_per_gold_groups_never_put_one_gold_against_another():
    """The study's target: one gold per group (seeded choice, each gold chosen for some question), one-hot,
    against hard negatives only; a question without enough negatives is left out, not padded with gold."""
    qids = [f"q{i}" for i in range(40)]
    questions = pd.DataFrame({"qid": qids, "question": "?", "gold_pids": [[f"{q}-a", f"{q}-b"] for q in qids]})
    candidates = {q: [f"{q}-a", "n1", f"{q}-b", "n2", "n3", "n4"] for q in qids} | {"q0": ["q0-a", "n1", "n2"]}
    text = {p: p for q in qids for p in candidates[q] + [f"{q}-a", f"{q}-b"]}
    groups = relevance_groups(questions, candidates, text, group_size=4, seed=0)
    assert [g.qid for g in groups] == qids[1:]  # q0 has 2 negatives, the group needs 3
    assert all(g.target == (1.0, 0.0, 0.0, 0.0) and g.passages[0].startswith(g.qid) and not any(p.startswith(g.qid) for p in g.passages[1:]) for g in groups)
    chosen = {g.passages[0][-1] for g in groups}
    assert chosen == {"a", "b"}  # either gold can be the one
    assert relevance_groups(questions, candidates, text, group_size=4, seed=0) == groups  # seeded
    with pytest.raises(ValueError, match=r"allowed: \['per_gold', 'uniform'\]"):
        relevance_groups(questions, candidates, text, group_size=4, seed=0, target="both")


def test_training_learns_a_toy_relevance_task():
    facts = [("Where is the Eiffel Tower?", "The Eiffel Tower is in Paris."), ("Who wrote Hamlet?", "Hamlet was written by Shakespeare."),
             ("What do bees make?", "Bees make honey."), ("What is the capital of Japan?", "Tokyo is the capital of Japan."),
             ("How many legs has a spider?", "A spider has eight legs."), ("What colour is the sky?", "The sky is blue.")]
    noise = ["Bananas are yellow fruit.", "The stock market fell today.", "Chess is a board game."]
    groups = [Group(f"q{i}", q, (a, *noise), (1.0, 0.0, 0.0, 0.0)) for i, (q, a) in enumerate(facts)] * 2
    budget = TrainingParams(epochs=3, lr=5e-5, batch_size=2, group_size=4, max_length=64, val_fraction=0.2, seed=0, prior_temperature=0.05)  # dense fits these toy facts at its fitted temperature: nothing left to learn
    model, curve = train_reranker("minilm-l6", groups, budget, desc="toy")
    assert isinstance(model, CrossEncoder) and model.max_length == 64
    assert curve.epoch.max() == 3 and curve[curve.split == "train"].step.max() == 3 * 5  # 10 train groups, 2 a step
    train_loss = curve[curve.split == "train"].loss
    assert train_loss.iloc[-3:].mean() < train_loss.iloc[:3].mean()
    held, val = curve.attrs[HELDOUT], curve[curve.split == "val"].loss  # each held-out group's loss, start and kept
    assert len(held["qid"]) == 2 and set(held["qid"]) == {g.qid for g in groups} - {g.qid for g in split_groups(groups, 0.2, 0)[0]}
    assert sum(held["start"]) / 2 == pytest.approx(val.iloc[0], rel=1e-5) and sum(held["best"]) / 2 == pytest.approx(val.min(), rel=1e-5)
    assert held["kept"] == (held["best"] if held["kept_step"] else held["start"])  # the best weights only where they beat the start
    questions = pd.DataFrame({"qid": ["x"], "question": ["Where is the Eiffel Tower?"]})
    text = {"a": facts[0][1], "b": noise[0], "c": noise[1]}
    ranking = rerank(model, questions, {"x": ["b", "c", "a"]}, text, "toy")
    assert ranking.pid.iloc[0] == "a" and ranking["rank"].tolist() == [0, 1, 2]


def test_untrained_reranker_reproduces_the_dense_ranking_exactly():
    """Before training a reranker is its start: the ranking it re-ranks, order and ties included."""
    import numpy as np

    from ragalign.core.retrieval import DenseEncoder

    texts = {f"p{i}": t for i, t in enumerate(["Paris is in France.", "Cats purr.", "France's capital is Paris.", "Rome is old.", "Lyon is French.", "Bananas."])}
    questions = pd.DataFrame({"qid": ["a", "b"], "question": ["capital of France", "Where is Lyon"]})
    enc = DenseEncoder("minilm-l6", 64)
    q_emb, p_emb = enc.embed(list(questions.question)), enc.embed(list(texts.values()))
    rows = []
    for qi, qid in enumerate(questions.qid):
        sims = p_emb @ q_emb[qi]
        for rank, j in enumerate(np.argsort(-sims, kind="stable")):
            rows.append({"qid": qid, "rank": rank, "pid": f"p{j}", "score": float(sims[j]), "method": "dense"})
    dense = pd.DataFrame(rows)
    candidates = {q: list(df.sort_values("rank").pid) for q, df in dense.groupby("qid")}
    model = CrossEncoder("minilm-l6", 64, prior_max_length=64)
    assert np.all(model.score(["x", "y"], ["a", "b"], priors=[0.0, 0.0]) == 0.0)  # correction is exactly 0
    out = rerank(model, questions, candidates, texts, "reranker", priors=dense)
    for qid in questions.qid:
        assert list(out[out.qid == qid].pid) == candidates[qid]
    computed = rerank(model, questions, candidates, texts, "reranker")  # prior from the frozen bi-encoder
    for qid in questions.qid:
        assert list(computed[computed.qid == qid].pid) == candidates[qid]


def test_the_fitted_prior_temperature_minimises_the_priors_loss_and_keeps_its_order():
    """``prior_temperature: fit`` picks the grid temperature with the lowest listwise KL of the dense prior
    alone on the training groups (the held-out ones never count), and the untrained reranker still ranks as dense."""
    import numpy as np
    import torch

    from ragalign.core.rerank import PRIOR_TEMPERATURES, fit_prior_temperature, kl_listwise_losses

    facts = [("Where is the Eiffel Tower?", "The Eiffel Tower is in Paris."), ("Who wrote Hamlet?", "Hamlet was written by Shakespeare."),
             ("What do bees make?", "Bees make honey."), ("What is the capital of Japan?", "Tokyo is the capital of Japan.")]
    noise = ("Bananas are yellow fruit.", "Paris has many museums.", "Japan is an island country.")
    groups = [Group(f"q{i}", q, (a, *noise), (1.0, 0.0, 0.0, 0.0)) for i, (q, a) in enumerate(facts)]
    model = CrossEncoder("minilm-l6", 64, prior_max_length=64)
    fitted = fit_prior_temperature(model, groups)
    prior = torch.stack([model.prior([g.query] * 4, list(g.passages)) for g in groups]).double()
    target = torch.tensor([g.target for g in groups], dtype=torch.float64)
    losses = [kl_listwise_losses(prior / float(t), target).mean().item() for t in PRIOR_TEMPERATURES]
    assert fitted == pytest.approx(PRIOR_TEMPERATURES[int(np.argmin(losses))], rel=1e-3)
    assert min(losses) < kl_listwise_losses(prior / 0.05, target).mean().item()  # 0.05 is not the best fit here
    budget = TrainingParams(epochs=1, lr=1e-9, batch_size=2, group_size=4, max_length=64, val_fraction=0.25, seed=0, prior_temperature="fit")
    trained, _ = train_reranker("minilm-l6", groups, budget, desc="fit", prior_max_length=64)
    assert trained.prior_temperature == fit_prior_temperature(model, split_groups(groups, 0.25, 0)[0])
    scores = trained.score([facts[0][0]] * 4, list(groups[0].passages))
    assert list(np.argsort(-scores)) == list(np.argsort(-prior[0].numpy()))  # still dense's order

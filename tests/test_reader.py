"""Generator alignment: the reader's training set never holds a test question, its examples show what the
retriever returns (RAFT's P without gold), the loss is the answer's, and a tuned reader is a generator."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ragalign.core.benchmarks import read_benchmark, split_questions
from ragalign.core.params import validate
from ragalign.methods import reader


def test_training_contexts_drop_the_gold_passages_of_a_seeded_share():
    ranked = {f"q{i}": [f"g{i}", f"d{i}a", f"d{i}b", f"d{i}c"] for i in range(20)}
    gold = {q: [f"g{q[1:]}"] for q in ranked}
    contexts = reader.training_contexts(ranked, gold, k=2, p_no_gold=0.25, seed=3)
    without = [q for q, pids in contexts.items() if not set(pids) & set(gold[q])]
    assert len(without) == 5  # a quarter of the questions, the next dense passages filling in
    assert all(contexts[q] == ranked[q][1:3] for q in without)
    assert all(contexts[q] == ranked[q][:2] for q in contexts if q not in without)
    assert reader.training_contexts(ranked, gold, 2, 0.25, 3) == contexts  # seeded
    assert reader.training_contexts(ranked, gold, 2, 0.0, 3) == {q: p[:2] for q, p in ranked.items()}


def test_the_readers_training_questions_never_include_a_test_question(hotpot_file):
    from ragalign.core.question_sets import reader_questions

    P = validate({"data": {"path": str(hotpot_file), "n_train": 6, "n_test": 5}, "reader": {"n_questions": 8}})
    every, _ = read_benchmark("hotpotqa", hotpot_file)
    sample = split_questions(every, 6, 5, P.data.seed)
    train, test = sample[sample.split == "train"], sample[sample.split == "test"]
    questions = reader_questions(P, every, train, test)
    assert not set(questions.qid) & set(test.qid)
    tuned, fair = questions[questions.set == "tuned"], questions[questions.set == "fair budget"]
    assert len(tuned) == 8 and (tuned.source == "benchmark").all() and not set(tuned.qid) & set(train.qid)  # the coupled teacher never saw them
    assert fair.qid.tolist() == train.qid.tolist() and (fair.source == "study train").all()  # the retriever-side methods' budget
    big = validate({"data": {"path": str(hotpot_file), "n_train": 6, "n_test": 5}, "reader": {"n_questions": 1000, "fair_budget": False}})
    assert len(reader_questions(big, every, train, test)) == len(every) - len(test) - len(train)  # every other question, and no more


def test_an_extra_benchmarks_questions_show_their_gold_among_same_article_distractors():
    passages = pd.DataFrame({"pid": [f"{t}{i}" for t in "ab" for i in range(4)], "title": ["A"] * 4 + ["B"] * 4, "text": "x"})
    questions = pd.DataFrame({"qid": [f"q{i}" for i in range(10)], "gold_pids": [["a0"], ["b1"]] * 5})
    contexts = reader.distractor_contexts(questions, passages, k=3, p_no_gold=0.2, seed=1)
    without = [q for q, g in zip(questions.qid, questions.gold_pids, strict=True) if g[0] not in contexts[q]]
    assert len(without) == 2 and all(len(set(c)) == 3 for c in contexts.values())
    assert all(p[0] == g[0][0] for q, g in zip(questions.qid, questions.gold_pids, strict=True) for p in contexts[q])  # same article
    assert reader.distractor_contexts(questions, passages, 3, 0.2, 1) == contexts
    assert len(reader.distractor_contexts(questions, passages, k=6, p_no_gold=0.0, seed=1)["q0"]) == 6  # short articles: others fill in
    with pytest.raises(ValueError, match="extra_dataset"):
        validate({"reader": {"extra_dataset": "hotpotqa", "extra_questions": 5}})


def test_example_loss_is_the_mean_nll_of_the_target_tokens(tiny_lm):
    prompt, answer = "Passage: Paris is in France.\n\nQuestion: Where is Paris?", "France"
    questions = pd.DataFrame({"qid": ["q"], "question": ["Where is Paris?"], "answers": [["France"]], "gold_pids": [["p"]]})
    [ex] = reader.reader_examples(tiny_lm, questions, {"q": ["p"]}, lambda pid: "Paris is in France.")
    assert ex.target[-1] == tiny_lm.tokenizer.eos_token_id and ex.has_gold  # the reader learns to stop after the answer
    assert list(ex.target[:-1]) == tiny_lm.answer_ids(answer)
    ex = reader.Example("q", tuple(tiny_lm.prompt_ids(prompt)), tuple(tiny_lm.answer_ids(answer)), True)
    with torch.no_grad():
        loss = reader.example_losses(tiny_lm.model, [ex, ex])
    expected = -sum(tiny_lm.token_logprobs([prompt], [answer])[0]) / len(ex.target)
    assert loss.tolist() == pytest.approx([expected, expected], abs=1e-5)


@pytest.fixture
def tiny_generator(tiny_model, smol_tokenizer, tmp_path):
    """The tiny model saved as a generator directory (safetensors and tokenizer)."""
    return str(reader.save_reader(tiny_model, smol_tokenizer, tmp_path / "tiny_generator"))


def test_what_each_tuning_trains(tiny_generator):
    top = reader.load_trainable(tiny_generator, "top_half")
    assert not any(p.requires_grad for p in top.model.layers[0].parameters())
    assert all(p.requires_grad for p in top.model.layers[1].parameters()) and not top.model.embed_tokens.weight.requires_grad
    lora = reader.load_trainable(tiny_generator, "lora", lora_r=2)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    full = reader.load_trainable(tiny_generator, "full")
    assert all(p.requires_grad for p in full.parameters())
    with pytest.raises(ValueError, match="reader.tune"):
        reader.load_trainable(tiny_generator, "bottom_half")


def test_a_tuned_reader_is_kept_only_where_it_beats_its_start_and_loads_as_a_generator(tiny_generator, smol_tokenizer, tmp_path):
    """Train the tiny model to answer "Yes" after any prompt: the held-out loss must fall, the kept weights
    differ from the start, and the saved reader loads by path with its own (weights-keyed) signature."""
    from ragalign.core.lm import LM
    from ragalign.core.training import HELDOUT

    start = LM(tiny_generator, "float32", cache_root=str(tmp_path / "c"))
    target = (*start.answer_ids("Yes"), smol_tokenizer.eos_token_id)
    examples = [reader.Example(f"q{i}", tuple(start.prompt_ids(f"question number {i}?")), target, True) for i in range(30)]
    model, curve = reader.train_reader(tiny_generator, examples, tune="full", lr=3e-3, epochs=3, batch_size=4, val_fraction=0.2, seed=0, autocast=False)
    held = curve.attrs[HELDOUT]
    assert held["kept_step"] > 0 and sum(held["kept"]) < sum(held["start"])
    path = reader.save_reader(model, smol_tokenizer, tmp_path / "tuned")
    tuned = LM(str(path), "float32", cache_root=str(tmp_path / "c"))
    assert tuned.signature != start.signature
    lp = tuned.token_logprobs(["question number 99?"], ["Yes"])[0]
    assert sum(lp) > sum(start.token_logprobs(["question number 99?"], ["Yes"])[0])


def test_a_reader_that_does_not_beat_its_start_is_restored_to_it(tiny_generator, smol_tokenizer, monkeypatch, tmp_path):
    """The same run as above (its held-out loss falls), judged not to beat its start: the kept weights
    must be the start's, bit for bit, though a later step had the lowest held-out loss."""
    from ragalign.core import training
    from ragalign.core.lm import LM

    monkeypatch.setattr(training, "verdict", lambda interval: "not told apart (inconclusive)")
    start = LM(tiny_generator, "float32", cache_root=str(tmp_path / "c"), show_progress=False)
    target = (*start.answer_ids("Yes"), smol_tokenizer.eos_token_id)
    examples = [reader.Example(f"q{i}", tuple(start.prompt_ids(f"question number {i}?")), target, True) for i in range(30)]
    model, curve = reader.train_reader(tiny_generator, examples, tune="full", lr=3e-3, epochs=3, batch_size=4, val_fraction=0.2, seed=0, autocast=False)
    held = curve.attrs[training.HELDOUT]
    assert held["best_step"] > 0 and sum(held["best"]) < sum(held["start"])  # training did move it
    assert held["kept_step"] == 0 and held["kept"] == held["start"]
    initial = reader.load_trainable(tiny_generator, "full").state_dict()
    assert all(torch.equal(v, initial[k]) for k, v in model.state_dict().items())


def test_raft_p_is_drawn_within_each_training_set(monkeypatch):
    """Toggling ``reader.fair_budget`` must not change which tuned questions lose their gold passages."""
    from types import SimpleNamespace

    from ragalign.stages import reader_tuning as stage

    qids = [f"t{i}" for i in range(20)] + [f"f{i}" for i in range(10)]
    questions = pd.DataFrame({"qid": qids, "question": "q", "answers": [["a"]] * 30, "gold_pids": [[f"g-{q}"] for q in qids],
                              "source": "benchmark", "set": ["tuned"] * 20 + ["fair budget"] * 10})
    monkeypatch.setattr(stage, "dense_contexts", lambda qs: {q: [f"g-{q}", "x", "y", "z"] for q in qs.qid})
    monkeypatch.setattr(stage, "PassageStore", lambda *a, **k: SimpleNamespace(__getitem__=lambda pid: pid))
    monkeypatch.setattr(stage.reader, "reader_examples", lambda lm, qs, contexts, text: contexts)
    P = validate({"reader": {"p_no_gold": 0.2, "extra_questions": 0}})
    both = stage.training_examples(P, None, questions, None)
    alone = stage.training_examples(P, None, questions[questions.set == "tuned"], None)
    assert {q: both[q] for q in alone} == alone
    assert sum(f"g-{q}" not in c for q, c in alone.items()) == 4  # 20% of the tuned questions, drawn among them


def test_the_readers_contexts_are_stage_02s_ranking(tmp_path):
    """Stage 08 trains on the dense ranking stage 02 wrote, never on one of its own: a ranking no encoder
    would produce comes back as written, and a question stage 02 did not rank is an error that names it."""
    import numpy as np

    from ragalign.core import artifacts
    from ragalign.core.retrieval import to_ranking
    from ragalign.stages.reader_tuning import dense_contexts

    written = to_ranking(["q1", "q2"], np.array([[2, 0, 1], [1, 2, 0]]), np.zeros((2, 3)), ["p0", "p1", "p2"], "dense")
    artifacts.DENSE.write(written, tmp_path)
    assert dense_contexts(pd.DataFrame({"qid": ["q2"]}), root=tmp_path) == {"q2": ["p1", "p2", "p0"]}
    with pytest.raises(KeyError, match=r"1 questions have no stage-02 ranking \(e.g. \['q3'\]\)"):
        dense_contexts(pd.DataFrame({"qid": ["q2", "q3"]}), root=tmp_path)

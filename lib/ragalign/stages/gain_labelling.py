"""Stage 04: GainRAG's pseudo-passages and gain labels of (train question, passage) pairs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.params import Params
from ragalign.core.rag import PassageStore
from ragalign.core.seed import seed_everything
from ragalign.methods.gainrag.labels import (
    best_gain_summary,
    build_pairs,
    label_table,
    planned_cost,
    score_pairs,
    spearman_per_question,
)
from ragalign.methods.gainrag.pseudo import generate_pseudo, is_pseudo, planned_generate_cost, pseudo_prompt


@dataclass
class Result:
    questions: pd.DataFrame
    pseudo: pd.DataFrame  # qid, text, is_na, split, words, mentions_gold
    labels: pd.DataFrame  # one row per pair, with dense rank/score, is_gold and kind
    best: pd.DataFrame  # the best-gain passage per question
    spearman_per_question: pd.Series
    spearman_pooled: float
    stats: dict
    cost: dict  # what a cold run puts through the generator
    pseudo_by_split: pd.DataFrame  # per split: questions, N/A rate, mean words, share mentioning the gold answer
    labels_by_kind: pd.DataFrame  # count, mean and median of each label column per kind of passage
    best_source: pd.Series  # share of questions whose best-gain passage is dense rank r (or the pseudo-passage)
    examples: pd.DataFrame  # a few questions with their pseudo-passages


def mentions_gold(pseudo: pd.DataFrame, questions: pd.DataFrame) -> list[bool]:
    """Whether each pseudo-passage contains one of its question's gold answers (case-insensitive)."""
    gold = dict(zip(questions.qid, questions.answers, strict=True))
    return [any(str(a).lower() in t.lower() for a in gold[q]) for q, t in zip(pseudo.qid, pseudo.text, strict=True)]


def run(P: Params) -> Result:
    seed_everything(P.data.seed)
    questions, passages = load_questions(), load_passages()
    dense = artifacts.DENSE.read()
    train = questions[questions.split == "train"]
    train = train.head(P.gain.n_questions) if P.gain.n_questions else train
    test = questions[questions.split == "test"]
    lm = LM.from_params(P.models)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)

    pseudo_questions = pd.concat([train, test], ignore_index=True)  # stage 05 offers the test ones to the selector
    pseudo = generate_pseudo(lm, pseudo_questions, P.gain.pseudo_max_new_tokens, P.rag.max_passage_tokens)
    shown = pseudo.assign(split=pseudo_questions.split.to_numpy(), words=pseudo.text.str.split().str.len())
    shown["mentions_gold"] = mentions_gold(shown, questions)

    pairs = build_pairs(train, dense, P.gain.k, store, pseudo)
    labels = label_table(pairs, score_pairs(lm, pairs, P.gain.alpha), dense, train)
    retrieved = labels[~labels.pid.map(is_pseudo)]
    rho_q = spearman_per_question(retrieved, "score", "label")
    rho_pooled = float(retrieved[["score", "label"]].corr(method="spearman").iloc[0, 1])
    best = best_gain_summary(labels)
    stats = {
        "questions": len(best),
        "pairs": len(labels),
        "pseudo_na_rate_train": round(float(shown[shown.split == "train"].is_na.mean()), 4),
        "pseudo_na_rate_test": round(float(shown[shown.split == "test"].is_na.mean()), 4),
        "best_is_gold": round(float(best.is_gold.mean()), 4),
        "best_is_pseudo": round(float(best.is_pseudo.mean()), 4),
        "best_is_dense_top1": round(float((best["rank"] == 0).mean()), 4),
        "gold_in_candidates": round(float(labels.groupby("qid").is_gold.any().mean()), 4),
        "spearman_score_label_per_question": round(float(rho_q.mean()), 4),
        "spearman_score_label_pooled": round(rho_pooled, 4),
        "label_mean": round(float(labels.label.mean()), 4),
        "label_std": round(float(labels.label.std()), 4),
        "alpha0_best_agrees": round(float((best.pid.to_numpy() == best_gain_summary(labels, "label_ppl").pid.to_numpy()).mean()), 4),
        "pseudo_mentions_gold_train": round(float(shown[shown.split == "train"].mentions_gold.mean()), 4),
    }
    # LLM cost of a cold run, from the batch plan: it does not depend on what the on-disk cache held.
    cost = {
        "pseudo_generation": planned_generate_cost(lm, [pseudo_prompt(q) for q in pseudo_questions.question], P.gain.pseudo_max_new_tokens),
        "labelling": planned_cost(lm, pairs),
        "labelling_naive": {"evaluations": 2 * len(pairs)},
    }
    artifacts.PSEUDO.write(pseudo)
    artifacts.GAIN_LABELS.write(labels.drop(columns=["kind"]))
    artifacts.LABELLING_STATS.write({"alpha": P.gain.alpha, "k": P.gain.k, "stats": stats, "cost": cost})
    return Result(questions, shown, labels, best, rho_q, rho_pooled, stats, cost, *report_tables(shown, labels, best, questions, P.gain.k))


def report_tables(shown: pd.DataFrame, labels: pd.DataFrame, best: pd.DataFrame, questions: pd.DataFrame, k: int) -> tuple:
    """The report's tables: pseudo-passages per split, labels per kind, where the best passage comes from, examples."""
    by_split = shown.groupby("split").agg(
        questions=("qid", "size"), na_rate=("is_na", "mean"), mean_words=("words", "mean"), mentions_gold_answer=("mentions_gold", "mean")
    ).round(3)
    columns = ["label", "label_ppl", "ppl_cd", "ppl", "logprob_ctx", "logprob_noctx"]
    by_kind = labels.groupby("kind")[columns].agg(["count", "mean", "median"]).round(3).T
    source = best["rank"].fillna(-1).astype(int).map(lambda r: "pseudo" if r < 0 else str(r)).value_counts()
    best_source = pd.Series({o: source.get(o, 0) / len(best) for o in [*map(str, range(k)), "pseudo"]}, name="share of questions")
    examples = shown.merge(questions[["qid", "question"]], on="qid").head(4)[["question", "text", "is_na"]]
    return by_split, by_kind, best_source, examples

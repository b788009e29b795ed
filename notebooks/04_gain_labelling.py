# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · GainRAG gain labelling
#
# GainRAG (arXiv 2505.18710) labels a passage by how much it helps the generator produce the gold
# answer, not by whether it is "relevant". For each train question we take its dense top
# `gain.k` passages plus one **pseudo-passage** (background the generator writes itself) and read
# the gold answer's tokens under the contrastive distribution
# `log_softmax((1+α)·logits(a_t | passage, q, a_<t) − α·logits(a_t | q, a_<t))` with α = `gain.alpha`:
# `ppl_cd` is the answer's perplexity under it and the label is `−log(ppl_cd + 1)` (higher = more
# gain). The no-passage logits are computed once per question and reused for all its passages.
# A pseudo-passage the model answers with "N/A" is no candidate: it gets no label and the selector
# never sees it.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
rag: dict = {}
gain: dict = {}

# %%
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown

from ragalign.core import artifacts, params, plots
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.rag import PassageStore
from ragalign.core.seed import seed_everything
from ragalign.methods.gain import (
    best_gain_summary,
    build_pairs,
    gain_labels,
    generate_pseudo,
    is_pseudo,
    planned_cost,
    planned_generate_cost,
    pseudo_prompt,
    score_pairs,
    spearman_per_question,
)

P = params.from_namespace(globals())
seed_everything(P.data.seed)
plots.setup()
questions, passages = load_questions(), load_passages()
dense = artifacts.DENSE.read()
train = questions[questions.split == "train"]
train = train.head(P.gain.n_questions) if P.gain.n_questions else train
test = questions[questions.split == "test"]
lm = LM.from_params(P.models)
store = PassageStore(passages, lm, P.rag.max_passage_tokens)

# %% [markdown]
# ## Pseudo-passages
# The generator gets the paper's instruction ("provide background for the question below in 100
# words … if you do not know or are unsure, generate 'N/A'") for every labelled train question and
# every test question (stage 05 offers the test ones to the selector). Greedy decoding, at most
# `gain.pseudo_max_new_tokens` new tokens, cut to the passage budget `rag.max_passage_tokens`.

# %%
pseudo_questions = pd.concat([train, test], ignore_index=True)
pseudo = generate_pseudo(lm, pseudo_questions, P.gain.pseudo_max_new_tokens, P.rag.max_passage_tokens)
pseudo_split = pseudo.assign(split=pseudo_questions.split.to_numpy(), words=pseudo.text.str.split().str.len())
pseudo_split.groupby("split").agg(questions=("qid", "size"), na_rate=("is_na", "mean"), mean_words=("words", "mean")).round(3)

# %% [markdown]
# A 135M model writes fluent background whether or not it knows the facts: read these as
# *plausible* text, often hallucinated. Whether the pseudo-passage helps is measured, not assumed:
# it competes with the retrieved passages on its gain label, and `mentions gold answer` says how
# often it even contains the gold answer string.

# %%
pd.set_option("display.max_colwidth", 300)
gold_answers = dict(zip(questions.qid, questions.answers, strict=True))
pseudo_split["mentions_gold"] = [any(str(a).lower() in t.lower() for a in gold_answers[q]) for q, t in zip(pseudo_split.qid, pseudo_split.text, strict=True)]
pseudo_split.groupby("split").mentions_gold.mean().round(3).rename("mentions gold answer")

# %%
pseudo.merge(questions[["qid", "question"]], on="qid").head(4)[["question", "text", "is_na"]]

# %% [markdown]
# ## Gain labels

# %%
pairs = build_pairs(train, dense, P.gain.k, store, pseudo)
scores = score_pairs(lm, pairs, P.gain.alpha)
gold = {(q.qid, p) for q in train.itertuples() for p in q.gold_pids}
labels = (
    gain_labels(pairs, scores)
    .merge(dense[["qid", "pid", "rank", "score"]], on=["qid", "pid"], how="left")
    .assign(is_gold=lambda d: [(q, p) in gold for q, p in zip(d.qid, d.pid, strict=True)])
    .assign(kind=lambda d: np.where(d.pid.map(is_pseudo), "pseudo", np.where(d.is_gold, "retrieved, gold", "retrieved, not gold")))
    .sort_values(["qid", "rank"], na_position="last", kind="stable")
    .reset_index(drop=True)
)
labels.groupby("kind")[["label", "label_ppl", "ppl_cd", "ppl", "logprob_ctx", "logprob_noctx"]].agg(["count", "mean", "median"]).round(3).T

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.histplot(labels, x="label", hue="kind", bins=40, element="step", stat="density", common_norm=False, ax=ax)
ax.set(title=f"Gain labels −log(ppl_cd + 1), α = {P.gain.alpha}", xlabel="label (higher = more helpful)")
plots.save(fig, "figures/gain_labels.png")

# %%
retrieved = labels[~labels.pid.map(is_pseudo)]
rho_q = spearman_per_question(retrieved, "score", "label")
rho_pooled = float(retrieved[["score", "label"]].corr(method="spearman").iloc[0, 1])
fig, ax = plt.subplots(figsize=(6.5, 4))
sns.scatterplot(retrieved, x="score", y="label", hue="is_gold", s=12, alpha=0.6, ax=ax)
ax.set(
    title=f"Gain vs dense score (Spearman pooled {rho_pooled:.2f}, per question {rho_q.mean():.2f})",
    xlabel="dense retrieval score (cosine)",
    ylabel="gain label",
)
plots.save(fig, "figures/gain_vs_retrieval.png")

# %%
best = best_gain_summary(labels)
n_q = len(best)
best_rank = best["rank"].fillna(-1).astype(int).map(lambda r: "pseudo" if r < 0 else str(r)).value_counts()
order = [str(r) for r in range(P.gain.k)] + ["pseudo"]
fig, ax = plt.subplots(figsize=(6.5, 3.5))
sns.barplot(x=order, y=[best_rank.get(o, 0) / n_q for o in order], color="C0", ax=ax)
ax.set(title="Where the best-gain passage comes from", xlabel="dense rank (or pseudo-passage)", ylabel="share of questions")
plots.save(fig, "figures/gain_best_source.png")

stats = {
    "questions": n_q,
    "pairs": len(labels),
    "pseudo_na_rate_train": round(float(pseudo_split[pseudo_split.split == "train"].is_na.mean()), 4),
    "pseudo_na_rate_test": round(float(pseudo_split[pseudo_split.split == "test"].is_na.mean()), 4),
    "best_is_gold": round(float(best.is_gold.mean()), 4),
    "best_is_pseudo": round(float(best.is_pseudo.mean()), 4),
    "best_is_dense_top1": round(float((best["rank"] == 0).mean()), 4),
    "gold_in_candidates": round(float(labels.groupby("qid").is_gold.any().mean()), 4),
    "spearman_score_label_per_question": round(float(rho_q.mean()), 4),
    "spearman_score_label_pooled": round(rho_pooled, 4),
    "label_mean": round(float(labels.label.mean()), 4),
    "label_std": round(float(labels.label.std()), 4),
    "alpha0_best_agrees": round(float((best.pid.to_numpy() == best_gain_summary(labels, "label_ppl").pid.to_numpy()).mean()), 4),
}
pd.Series(stats)

# %% [markdown]
# ## Cost
# LLM cost of a cold run (sequences and padded tokens through the generator, as `lm.evaluations` /
# `lm.forward_tokens` count them), computed from the batch plan so that it does not depend on what
# the on-disk cache already held.

# %%
cost = {
    "pseudo_generation": planned_generate_cost(lm, [pseudo_prompt(q) for q in pseudo_questions.question], P.gain.pseudo_max_new_tokens),
    "labelling": planned_cost(lm, pairs),
    "labelling_naive": {"evaluations": 2 * len(pairs)},
}
print(f"this run (cache misses only): evaluations={lm.evaluations} forward_tokens={lm.forward_tokens}", file=sys.stderr)
pd.DataFrame(cost).T

# %% [markdown]
# Throughput (wall time) is measured in `bench/gain_throughput.py`, not here: wall times change
# from run to run and this report is byte-identical across runs.

# %% tags=["findings"]
Markdown(
    f"{n_q} train questions × up to {P.gain.k + 1} candidates give {len(labels)} gain labels "
    f"(mean {labels.label.mean():.2f}, sd {labels.label.std():.2f}). Gain agrees only loosely with the retriever: "
    f"Spearman between dense score and gain is {rho_q.mean():.2f} within a question on average ({rho_pooled:.2f} pooled). "
    f"The best-gain passage is a gold passage for {stats['best_is_gold']:.0%} of questions (a gold passage is among the "
    f"candidates for {stats['gold_in_candidates']:.0%}), the dense top-1 for {stats['best_is_dense_top1']:.0%}, and the "
    f"pseudo-passage for {stats['best_is_pseudo']:.0%}. The generator declined ('N/A') for "
    f"{stats['pseudo_na_rate_train']:.1%} of train and {stats['pseudo_na_rate_test']:.1%} of test questions; its pseudo-passages "
    f"contain the gold answer for {pseudo_split[pseudo_split.split == 'train'].mentions_gold.mean():.0%} of train questions (the rest is "
    "background that may be hallucinated). "
    f"With α = 0 (plain perplexity) the best passage is the same one for {stats['alpha0_best_agrees']:.0%} of questions. "
    f"A cold run puts {cost['labelling']['evaluations']} sequences ({cost['labelling']['forward_tokens']:,} padded tokens) "
    f"through the generator for labelling, against {cost['labelling_naive']['evaluations']} for the naive per-passage way."
)

# %%
artifacts.PSEUDO.write(pseudo)
artifacts.GAIN_LABELS.write(labels.drop(columns=["kind"]))
artifacts.LABELLING_STATS.write({"alpha": P.gain.alpha, "k": P.gain.k, "stats": stats, "cost": cost})

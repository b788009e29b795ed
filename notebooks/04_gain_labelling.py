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
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.methods.gainrag.pseudo import is_pseudo
from ragalign.stages import gain_labelling as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)
labels, stats, cost = r.labels, r.stats, r.cost

# %% [markdown]
# ## Pseudo-passages
# The generator gets the paper's instruction ("provide background for the question below in 100
# words … if you do not know or are unsure, generate 'N/A'") for every labelled train question and
# every test question (stage 05 offers the test ones to the selector). Greedy decoding, at most
# `gain.pseudo_max_new_tokens` new tokens, cut to the passage budget `rag.max_passage_tokens`.

# %%
r.pseudo_by_split

# %% [markdown]
# A 135M model writes fluent background whether or not it knows the facts: read these as
# *plausible* text, often hallucinated. Whether the pseudo-passage helps is measured, not assumed:
# it competes with the retrieved passages on its gain label, and `mentions gold answer` says how
# often it even contains the gold answer string.

# %%
pd.set_option("display.max_colwidth", 300)
r.examples

# %% [markdown]
# ## Gain labels

# %%
r.labels_by_kind

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.histplot(labels, x="label", hue="kind", bins=40, element="step", stat="density", common_norm=False, ax=ax)
ax.set(title=f"Gain labels −log(ppl_cd + 1), α = {P.gain.alpha}", xlabel="label (higher = more helpful)")
plots.save(fig, "figures/gain_labels.png")

# %%
retrieved = labels[~labels.pid.map(is_pseudo)]
fig, ax = plt.subplots(figsize=(6.5, 4))
sns.scatterplot(retrieved, x="score", y="label", hue="is_gold", s=12, alpha=0.6, ax=ax)
ax.set(
    title=f"Gain vs dense score (Spearman pooled {stats['spearman_score_label_pooled']:.2f}, per question {stats['spearman_score_label_per_question']:.2f})",
    xlabel="dense retrieval score (cosine)",
    ylabel="gain label",
)
plots.save(fig, "figures/gain_vs_retrieval.png")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.5))
sns.barplot(x=list(r.best_source.index), y=list(r.best_source), color="C0", ax=ax)
ax.set(title="Where the best-gain passage comes from", xlabel="dense rank (or pseudo-passage)", ylabel="share of questions")
plots.save(fig, "figures/gain_best_source.png")
pd.Series(stats)

# %% [markdown]
# ## Cost
# LLM cost of a cold run (sequences and tokens through the generator, as `lm.evaluations` /
# `lm.forward_tokens` count them), computed from the batch plan so that it does not depend on what
# the on-disk cache already held. Throughput (wall time) is measured in `bench/gain_throughput.py`,
# not here: wall times change from run to run and this report is byte-identical across runs.

# %%
pd.DataFrame(cost).T

# %% tags=["findings"]
Markdown(
    f"{stats['questions']} train questions × up to {P.gain.k + 1} candidates give {len(labels)} gain labels "
    f"(mean {stats['label_mean']:.2f}, sd {stats['label_std']:.2f}). Gain agrees only loosely with the retriever: "
    f"Spearman between dense score and gain is {stats['spearman_score_label_per_question']:.2f} within a question on average ({stats['spearman_score_label_pooled']:.2f} pooled). "
    f"The best-gain passage is a gold passage for {stats['best_is_gold']:.0%} of questions (a gold passage is among the "
    f"candidates for {stats['gold_in_candidates']:.0%}), the dense top-1 for {stats['best_is_dense_top1']:.0%}, and the "
    f"pseudo-passage for {stats['best_is_pseudo']:.0%}. The generator declined ('N/A') for "
    f"{stats['pseudo_na_rate_train']:.1%} of train and {stats['pseudo_na_rate_test']:.1%} of test questions; its pseudo-passages "
    f"contain the gold answer for {stats['pseudo_mentions_gold_train']:.0%} of train questions (the rest is "
    "background that may be hallucinated). "
    f"With α = 0 (plain perplexity) the best passage is the same one for {stats['alpha0_best_agrees']:.0%} of questions. "
    f"A cold run puts {cost['labelling']['evaluations']} sequences ({cost['labelling']['forward_tokens']:,} tokens) "
    f"through the generator for labelling, against {cost['labelling_naive']['evaluations']} for the naive per-passage way."
)

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · RAG baselines
#
# What does the generator get out of retrieval at all, and how far is it from the best case? Five
# variants answer the test questions with the same generator and prompt: **no retrieval**,
# **oracle** (the gold passages), **BM25** and **dense** top-k, and a **relevance reranker**: a
# reranker trained on the train split to put gold passages above retrieved non-gold ones,
# reranking the dense candidates. It starts from the dense ranking (score = dense cosine /
# `training.prior_temperature` + a MiniLM cross-encoder correction that is 0 before training) and
# keeps its training only where it beats that start on held-out questions (a paired interval of the held-out
# loss above 0; otherwise it is dense). The reranker is the baseline every
# alignment method must beat: it gets exactly the training budget (`training`) they get.
#
# The headline outcome is the **gold-answer likelihood**: the generator's mean token log-probability
# of the gold answer after the variant's prompt. It moves with the context where a 135M model's
# greedy F1 barely does; EM and F1 stay beside it.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}

# %%
import pandas as pd
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.core.rag import em_f1_table
from ragalign.core.validity import describe_failures, describe_loss, describe_ranker
from ragalign.core.verdicts import describe
from ragalign.stages import rag_baselines as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)
test, summary, differences, rank_quality, validity = r.test, r.summary, r.differences, r.rank_quality, r.validity

# %% [markdown]
# ## The relevance reranker
# Each train question gives one group of `training.group_size` passages: one of its gold passages
# (`training.relevance_target: per_gold`, one-hot; `uniform` puts every gold passage in, sharing the
# target) and hard negatives sampled from its dense candidates. A held-out share of the train questions
# (`training.val_fraction`) picks the best checkpoint, kept only if it beats the untrained start there. Below, its training curve, then the ranking
# quality of the test candidates: BM25, dense, and the reranker that starts from dense.

# %%
_ = plots.training_curve(r.curve, "Relevance reranker: listwise KL loss", "KL(target ‖ softmax(scores))", "figures/baselines_reranker_curve.png")

# %%
rank_quality

# %% [markdown]
# ## Answers on the test split

# %%
em_f1_table(summary)

# %% [markdown]
# ## Validity: does retrieval help, and does the reranker beat its start?
# Paired over the test questions, on the gold-answer likelihood; `mde` is the smallest difference
# this many questions detect (two-sided 5% test, 80% power).

# %%
pd.DataFrame(differences).T

# %%
long = pd.DataFrame([{"variant": v, "metric": m.upper(), **s[m]} for v, s in summary.items() for m in ("em", "f1")])
_ = plots.interval_bars(long, f"RAG baselines on {len(test)} test questions (95% bootstrap CI)", "figures/baselines_em_f1.png")

# %%
r.examples

# %% tags=["findings"]
lp = {v: summary[v]["gold_logprob"]["mean"] for v in summary}
m, k = P.rag.equivalence_margin, P.rag.top_k
Markdown(
    describe_failures(validity, "baselines")
    + f"Gold-answer log-likelihood, paired over the {len(test)} test questions: {describe(differences['oracle - no_retrieval'], 'the oracle (gold passages)', 'no retrieval')}; "
    f"{describe(differences['dense - no_retrieval'], f'dense top-{k}', 'no retrieval')}; "
    f"{describe(differences['reranker - dense'], 'the relevance reranker', f'dense top-{k}', m)} "
    f"(means: {lp['no_retrieval']:.3f} with no passages, {lp['dense']:.3f} dense, {lp['reranker']:.3f} reranker, {lp['oracle']:.3f} gold). "
    f"The relevance reranker, trained on {r.n_groups} train questions and starting from dense, on the test candidates: "
    f"{describe_ranker(validity['reranker_vs_dense_ranking'], 'the relevance reranker')}; "
    f"{describe_loss(validity['reranker_heldout_loss'], 'the relevance reranker')}. "
    f"Secondary: F1 moves less: {summary['no_retrieval']['f1']['mean']:.3f} without passages, {summary['oracle']['f1']['mean']:.3f} with the "
    f"gold ones, {summary['dense']['f1']['mean']:.3f} with dense."
)

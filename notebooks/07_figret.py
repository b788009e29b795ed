# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · FiGRet: fine-grained LLM guidance for the retriever
#
# FiGRet (arXiv 2411.03957) asks the generator what the retriever gets wrong, from three sides:
# **relevance** (does a passage help?), **comprehensiveness** (do the passages together cover
# every hop?) and **purity** (is a passage misleading?). It turns that feedback into fine-grained
# training examples for the *retriever* and trains on them with a **dual curriculum**: relevance
# before comprehensiveness before purity, easy before hard. After each round the updated
# retriever re-retrieves, the new failures are collected and judged again (*reciprocal feedback*).
#
# The paper has no public code. This study's reading, sized for a 135M generator (see
# `ragalign.methods.figret` for the details): the LLM only answers constrained yes/no judgements, scored
# as log p(yes) − log p(no) of its first reply token; gold passages are the anchors (the only
# positives); the LLM picks and orders the hard negatives, scores passage *sets* for
# comprehensiveness, and its margin sets each example's difficulty. The MiniLM bi-encoder of
# stage 02 is fine-tuned with a set-level InfoNCE loss.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}
figret: dict = {}

# %%
import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Markdown, display

from ragalign.core import params, plots
from ragalign.core.rag import em_f1_table
from ragalign.core.validity import describe_failures, describe_ranker
from ragalign.core.verdicts import describe, label
from ragalign.methods.figret.examples import OBJECTIVES
from ragalign.stages import figret as stage

P = params.from_namespace(globals())
F = P.figret
plots.setup()
r = stage.run(P)
test, history, examples, judged, auc, quality, summary, diff, validity, abl, q0 = (
    r.test, r.history, r.examples, r.judged, r.auc, r.quality, r.summary, r.diff, r.validity, r.ablations, r.q0
)
r.sizes

# %% [markdown]
# ## Rounds of feedback and training
# Round 1 starts from the stage-02 dense rankings (in the train pool they are identical to the
# full-index ones: the pool holds every question's own top-k). Each round: poorly served
# questions → yes/no judgements → examples → curriculum training → re-retrieval.

# %%
r.per_round

# %% [markdown]
# What the judgements look like: the LLM's relevance log-odds for gold passages against the
# retrieved non-gold ones (a usable judge separates them), and the examples' margins.

# %%
display(r.separation)
r.examples_by_objective

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sns.lineplot(history, x="round", y=f"recall@{P.rag.top_k}", hue="split", marker="o", ax=axes[0])
axes[0].set(xlabel="round (0: stage-02 dense)", ylabel=f"gold recall@{P.rag.top_k}", title="Recall after each FiGRet round", xticks=range(F.rounds + 1))
sns.lineplot(r.curves[r.curves.split == "val"], x="step", y="loss", hue="round", marker="o", palette="colorblind", ax=axes[1])
axes[1].set(title="Held-out set-level InfoNCE per round", ylabel="validation loss")
plots.save(fig, "figures/figret_rounds.png")

# %% [markdown]
# ## The final retriever on the whole corpus
# The corpus is re-embedded once with the final retriever; the test questions' top
# `retrieval.k` is compared with the stage-02 dense retriever, and the generator answers from the
# top `rag.top_k`.

# %%
compared = {**r.baselines, "figret": summary}
em_f1_table(compared, {f"R@{k}": {v: q[f"recall@{k}"] for v, q in quality.items()} for k in r.ks})

# %% [markdown]
# ## Ablations (one round, same round-1 examples, test pool)
# No curriculum (a seeded shuffle) and one objective at a time, each trained from the stage-02
# weights for one round on the round-1 examples and evaluated in the test pool; "dual, all
# objectives" is the round-1 FiGRet retriever itself.

# %%
if F.ablations:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.barplot(abl, y="variant", x=f"recall@{P.rag.top_k}", ax=ax, color=sns.color_palette()[0])
    ax.axvline(q0[f"recall@{P.rag.top_k}"], color="grey", ls="--", lw=1)
    ax.set(title="One-round ablations: per-objective effect (test pool)", xlabel=f"gold recall@{P.rag.top_k}", ylabel="")
    plots.save(fig, "figures/figret_objectives.png")
abl

# %% tags=["findings"]
t, d = quality["figret"], quality["dense"]
kk = P.rag.top_k
m = P.rag.equivalence_margin
dense_em, reranker_em = r.baselines["dense"]["em"]["mean"], r.baselines["reranker"]["em"]["mean"]
judge = {c: validity[f"judge_{c}_vs_chance"] for c in ("relevance", "purity")}
Markdown(
    describe_failures(validity, "figret")
    + f"Gold-answer log-likelihood, paired over the {len(test)} test questions with {kk} passages on both sides: "
    f"{describe(diff['gold_logprob'], 'FiGRet', f'dense top-{kk}', m)}; {describe(r.diff_reranker, 'FiGRet', 'the relevance reranker', m)}. "
    f"On the whole corpus, against dense, its start, {describe_ranker(validity['retriever_vs_dense_ranking'], 'the FiGRet retriever')}. "
    + f"Over {F.rounds} round(s), FiGRet examined {int(r.sizes['train questions examined'])} train questions per round and found "
    f"{', '.join(str(n) for n in r.per_round['poorly served'])} poorly served; the judgements gave "
    f"{len(examples)} examples ({', '.join(f'{o}: {r.objective_counts.get(o, 0)}' for o in OBJECTIVES)}) "
    f"for {r.evaluations} LLM evaluations ({r.forward_tokens} tokens, answers included). "
    f"As a judge, the 135M generator ranks a gold passage above a retrieved non-gold one with probability "
    + "; ".join(f"{g['auc']:.2f} [{g['lo']:.2f}, {g['hi']:.2f}] on {c} (against chance, 0.5: {label(g['verdict'])})" for c, g in judge.items())
    + " (95% intervals over the judged questions). "
    f"Secondary: the fine-tuned retriever's test recall@{kk} is {t[f'recall@{kk}']:.3f} vs {d[f'recall@{kk}']:.3f} "
    f"for the stage-02 dense retriever (MRR {t['mrr']:.3f} vs {d['mrr']:.3f}); with its top {kk} the generator's "
    f"EM is {summary['em']['mean']:.3f} [{summary['em']['lo']:.3f}, {summary['em']['hi']:.3f}] vs "
    f"{dense_em:.3f} with dense and {reranker_em:.3f} with the relevance reranker "
    f"(paired EM: {describe(diff['em'], 'FiGRet', 'dense')}; F1 {summary['f1']['mean']:.3f} vs {r.baselines['dense']['f1']['mean']:.3f})."
    + (
        f" In the one-round ablations (test pool, recall@{kk}) the dual curriculum reaches "
        f"{abl.set_index('variant').loc['dual curriculum, all objectives', f'recall@{kk}']:.3f}, the shuffled order "
        f"{abl.set_index('variant').loc['no curriculum (shuffled)', f'recall@{kk}']:.3f}, and single objectives "
        + ", ".join(f"{o} {abl.set_index('variant').loc[f'{o} only', f'recall@{kk}']:.3f}" for o in OBJECTIVES)
        + f" (stage-02 dense {q0[f'recall@{kk}']:.3f})."
        if F.ablations
        else ""
    )
)

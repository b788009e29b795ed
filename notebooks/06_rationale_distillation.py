# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · RADIO: rationale distillation for the reranker
#
# RADIO (arXiv 2412.08519) aligns the reranker with the generator's *reasoning*: for every train
# question the generator writes a **rationale** (why the gold answer is correct, given the
# question and the answer); passages that read like that rationale are taken to be the ones the
# generator needs. Here:
#
# 1. the rationale text (question + answer + rationale) is embedded with the dense MiniLM encoder
#    and scored against the question's top `radio.k` dense candidates; the **rationale ranking** is
#    `radio.mix`·minmax(rationale score) + (1 − `radio.mix`)·minmax(retrieval score);
# 2. a MiniLM cross-encoder (same backbone and `training` budget as the stage-03 relevance
#    reranker) is fine-tuned contrastively on groups of one positive (top of the rationale
#    ranking) and negatives at the ranks the paper samples (`radio.neg_ranks`);
# 3. on the test split it reranks the dense top `radio.k`, and its top `radio.top_k` go to the
#    generator; EM/F1 are compared with the stage-03 variants and GainRAG.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}
radio: dict = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.core.validity import describe_failures, describe_loss, describe_ranker
from ragalign.core.verdicts import describe
from ragalign.methods.rationale import comparison_table
from ragalign.stages import rationale_distillation as stage

P = params.from_namespace(globals())
plots.setup()
pd.set_option("display.max_colwidth", 200)
r = stage.run(P)
train, test, rationales, train_agreement, validity = r.train, r.test, r.rationales, r.train_agreement, r.validity

# %% [markdown]
# ## Rationales
# The generator gets the paper's instruction (a QA assistant that, given a question and its
# ground-truth answer, explains why the answer is correct), the question and the gold answer,
# and writes at most `radio.rationale_max_new_tokens` tokens (greedy).

# %%
rationales[["question", "answer", "rationale"]].head(6)

# %% [markdown]
# ## Rationale-based ranking of the train candidates
# How well does each ranking of the dense top `radio.k` agree with the gold passages? `dense` is
# the retriever's order, `rationale` the mixed ranking RADIO trains on (mix `radio.mix`), and
# `rationale only` the similarity to the rationale alone (mix 1, the public RADIO code's ranking).

# %%
train_agreement

# %%
long = train_agreement[["recall@1", "hit@1"]].reset_index().melt(id_vars="ranking", var_name="metric", value_name="value")
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.barplot(long, x="metric", y="value", hue="ranking", ax=ax)
ax.set(title=f"Gold passages at the top, {len(train)} train questions", xlabel="", ylabel="fraction", ylim=(0, 1))
plots.save(fig, "figures/radio_gold_agreement.png")

# %% [markdown]
# ## Fine-tuning the reranker
# One group per train question: the top of the rationale ranking as the positive
# and the passages at the negative ranks `radio.neg_ranks` below it (one-hot target: KL to it is the
# contrastive loss).

# %%
_ = plots.training_curve(r.curve, "RADIO reranker: contrastive loss", "KL(one-hot ‖ softmax(scores))", "figures/radio_training_curve.png")

# %% [markdown]
# ## Answers on the test split
# RADIO against the stage-03 variants (and GainRAG), with RADIO minus each stage-03 variant paired by question.

# %%
table = comparison_table(r.variants).pivot(index="variant", columns="metric", values="mean").loc[list(r.variants)]
table["radio − variant, F1 (paired 95% CI)"] = ["{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]".format(**r.paired[v]["f1"]) if v in r.paired else "" for v in table.index]
table["radio − variant, gold log-prob (paired 95% CI; detectable)"] = [
    "{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]; {mde:.3f}".format(**r.paired[v]["gold_logprob"]) if v in r.paired else "" for v in table.index
]
table

# %%
r.test_agreement

# %%
plot = comparison_table(r.variants).assign(metric=lambda d: d.metric.str.upper())
_ = plots.interval_bars(plot, f"RADIO vs other variants, {len(test)} test questions (95% bootstrap CI)", "figures/radio_em_f1.png", order=list(r.variants))

# %%
r.examples

# %% tags=["findings"]
s, ref, m = r.summary["radio"], r.variants.get("reranker"), P.rag.equivalence_margin
same_k = "the same number of passages" if P.radio.top_k == P.rag.top_k else f"{P.radio.top_k} passages against {P.rag.top_k}"
Markdown(
    describe_failures(validity, "radio")
    + f"Gold-answer log-likelihood, paired over the {len(test)} test questions ({same_k}): "
    f"{describe(r.paired['dense']['gold_logprob'], 'RADIO', f'dense top-{P.rag.top_k}', m)}; "
    f"{describe(r.paired['reranker']['gold_logprob'], 'RADIO', 'the relevance reranker', m)}. "
    f"The RADIO reranker starts from dense; on the test candidates {describe_ranker(validity['reranker_vs_dense_ranking'], 'the RADIO reranker')}; "
    f"{describe_loss(validity['reranker_heldout_loss'], 'the RADIO reranker')}. "
    + f"The generator wrote {r.rationale_stats['n']} rationales (mean {r.rationale_stats['mean_words']:.0f} words; "
    f"{r.rationale_stats['mentions_answer']:.0%} repeat the gold answer). On the train questions the rationale ranking puts a gold "
    f"passage first for {train_agreement.loc['rationale', 'hit@1']:.0%} of questions, against "
    f"{train_agreement.loc['dense', 'hit@1']:.0%} for the dense retriever and {train_agreement.loc['rationale only', 'hit@1']:.0%} "
    f"for the rationale similarity alone, so {train_agreement.loc['rationale', 'hit@1']:.0%} of the training positives are gold passages. "
    f"Secondary: with its top {P.radio.top_k} passages the generator scores EM {s['em']['mean']:.3f} "
    f"[{s['em']['lo']:.3f}, {s['em']['hi']:.3f}] and F1 {s['f1']['mean']:.3f} [{s['f1']['lo']:.3f}, {s['f1']['hi']:.3f}]"
    + (f"; the relevance reranker, trained on the same budget, EM {ref['em']['mean']:.3f} / F1 {ref['f1']['mean']:.3f} (paired F1: "
       f"{describe(r.paired['reranker']['f1'], 'RADIO', 'it')}). " if ref else ". ")
    + f"RADIO cost {r.total_cost['evaluations']} generator calls ({r.total_cost['forward_tokens']:,} tokens), "
    f"{r.rationale_cost['evaluations']} of them for the rationales."
)

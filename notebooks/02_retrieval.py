# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Retrieval
#
# Two first-stage retrievers over the whole corpus: **BM25** (lexical, `bm25s`) and a **dense**
# MiniLM bi-encoder (mean-pooled, L2-normalised, exact inner-product search with faiss). Each
# returns the top `retrieval.k` passages for every question of the benchmark; recall@k and MRR
# measure, on the study's questions, how often the gold passages are among them. Every later variant
# starts from these candidates, and every later stage that ranks a question outside the study's
# splits (the readers' training questions, the learning curves', the powered rows') reads its ranking
# here: one dense ranking per question in the whole study.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.core.verdicts import describe
from ragalign.stages import retrieval as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)
questions, quality, ks = r.questions, r.quality, r.ks

# %%
pd.DataFrame({(s, m): v for s, d in quality.items() if s != "paired" for m, v in d.items()}).T

# %%
curve = pd.DataFrame([{"method": m, "k": k, "recall": quality["test"][m][f"recall@{k}"]} for m in ("bm25", "dense") for k in ks])
fig, ax = plt.subplots(figsize=(6, 4))
sns.lineplot(curve, x="k", y="recall", hue="method", marker="o", ax=ax)
ax.set(xscale="log", xticks=ks, xticklabels=ks, ylim=(0, 1), ylabel="recall of gold passages", title="Gold recall@k on the test split")
plots.save(fig, "figures/retrieval_recall.png")

# %% tags=["findings"]
t = quality["test"]
Markdown(
    f"Recall@1 is at most {r.max_recall_at_1:.2f} here: recall counts every gold passage of a question. "
    f"On the {r.n_test} test questions, BM25 finds {t['bm25']['recall@5']:.0%} of the gold passages "
    f"in its top 5 and dense retrieval {t['dense']['recall@5']:.0%} (MRR {t['bm25']['mrr']:.2f} vs {t['dense']['mrr']:.2f}; "
    f"paired per test question, {describe(quality['paired']['dense - bm25'], 'dense', 'BM25')} on the reciprocal rank); "
    f"at k={P.retrieval.k} recall is {t['bm25'][f'recall@{P.retrieval.k}']:.0%} vs {t['dense'][f'recall@{P.retrieval.k}']:.0%}."
)

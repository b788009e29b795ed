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
# returns the top `retrieval.k` passages for every question; recall@k and MRR measure how often
# the gold passages are among them. Every later variant starts from these candidates.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown

from ragalign.core import artifacts, params, plots
from ragalign.core.data import load_passages, load_questions
from ragalign.core.retrieval import (
    DenseEncoder,
    bm25_search,
    corpus_strings,
    dense_search,
    retrieval_quality,
    to_ranking,
)
from ragalign.core.seed import seed_everything

P = params.from_namespace(globals())
seed_everything(P.data.seed)
plots.setup()
questions, passages = load_questions(), load_passages()
if P.retrieval.k > len(passages):
    raise params.ParamsError(f"retrieval.k={P.retrieval.k} exceeds the corpus size ({len(passages)} passages)")
corpus = corpus_strings(passages)

# %%
idx, scores = bm25_search(corpus, questions.question.tolist(), P.retrieval.k)
bm25 = to_ranking(questions.qid, idx, scores, passages.pid, "bm25")

encoder = DenseEncoder(P.models.encoder, P.retrieval.max_length, autocast=P.retrieval.bf16_autocast)
passage_emb = encoder.embed(corpus, P.retrieval.encode_batch_size, desc="embed corpus")
query_emb = encoder.embed(questions.question.tolist(), P.retrieval.encode_batch_size)
idx, scores = dense_search(passage_emb, query_emb, P.retrieval.k)
dense = to_ranking(questions.qid, idx, scores, passages.pid, "dense")

# %%
ks = sorted({1, 2, 5, 10, P.retrieval.k} & set(range(1, P.retrieval.k + 1)))
quality = {
    split: {name: retrieval_quality(r, questions[questions.split == split], ks) for name, r in (("bm25", bm25), ("dense", dense))}
    for split in ("train", "test")
}
table = pd.DataFrame({(s, m): v for s, d in quality.items() for m, v in d.items()}).T
table

# %%
curve = pd.DataFrame(
    [{"method": m, "k": k, "recall": quality["test"][m][f"recall@{k}"]} for m in ("bm25", "dense") for k in ks]
)
fig, ax = plt.subplots(figsize=(6, 4))
sns.lineplot(curve, x="k", y="recall", hue="method", marker="o", ax=ax)
ax.set(xscale="log", xticks=ks, xticklabels=ks, ylim=(0, 1), ylabel="recall of gold passages", title="Gold recall@k on the test split")
plots.save(fig, "figures/retrieval_recall.png")

# %% tags=["findings"]
t = quality["test"]
Markdown(
    f"Recall@1 is at most {(1 / questions.gold_pids.map(len)).mean():.2f} here: recall counts every gold passage of a question. "
    f"On the {int((questions.split == 'test').sum())} test questions, BM25 finds {t['bm25']['recall@5']:.0%} of the gold passages "
    f"in its top 5 and dense retrieval {t['dense']['recall@5']:.0%} (MRR {t['bm25']['mrr']:.2f} vs {t['dense']['mrr']:.2f}); "
    f"at k={P.retrieval.k} recall is {t['bm25'][f'recall@{P.retrieval.k}']:.0%} vs {t['dense'][f'recall@{P.retrieval.k}']:.0%}."
)

# %%
artifacts.BM25.write(bm25)
artifacts.DENSE.write(dense)
artifacts.PASSAGE_EMB.write(passage_emb)
artifacts.RETRIEVAL_METRICS.write(quality)

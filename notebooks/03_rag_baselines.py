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
# MiniLM cross-encoder trained on the train split to put gold passages above retrieved non-gold
# ones, reranking the dense candidates. The reranker is the baseline every alignment method must
# beat: it gets exactly the training budget (`training`) the alignment methods get.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown

from ragalign import params, plots
from ragalign.data import load_passages, load_questions
from ragalign.io import write_json, write_parquet
from ragalign.lm import LM
from ragalign.rag import PassageStore, answer_questions, em_f1_table, summarise
from ragalign.rerank import relevance_groups, rerank, train_reranker
from ragalign.retrieval import corpus_strings, retrieval_quality, top_pids
from ragalign.seed import seed_everything

P = params.from_namespace(globals())
seed_everything(P.training.seed)
plots.setup()
questions, passages = load_questions(), load_passages()
train, test = questions[questions.split == "train"], questions[questions.split == "test"]
passage_text = dict(zip(passages.pid, corpus_strings(passages), strict=True))
dense = pd.read_parquet("results/retrieval/dense.parquet")
bm25 = pd.read_parquet("results/retrieval/bm25.parquet")
dense_candidates = top_pids(dense)

# %% [markdown]
# ## The relevance reranker
# Each train question gives one group: its gold passages (sharing the target mass) and hard
# negatives sampled from its dense candidates. A held-out share of the train questions
# (`training.val_fraction`) picks the best epoch.

# %%
groups = relevance_groups(train, dense_candidates, passage_text, P.training.group_size, P.training.seed)
reranker, curve = train_reranker(P.models.encoder, groups, P.training, desc="relevance reranker")
plots.training_curve(curve, "Relevance reranker: listwise KL loss", "KL(target ‖ softmax(scores))", "figures/baselines_reranker_curve.png")

# %%
reranked = rerank(reranker, test, dense_candidates, passage_text, "reranker", desc="rerank")
ks = [1, 2, P.rag.top_k]
rank_quality = pd.DataFrame(
    {name: retrieval_quality(r, test, ks) for name, r in (("bm25", bm25), ("dense", dense), ("reranker", reranked))}
).T
rank_quality

# %% [markdown]
# ## Answers on the test split

# %%
lm = LM(P.models.generator, P.models.dtype, P.models.batch_tokens)
store = PassageStore(passages, lm, P.rag.max_passage_tokens)
contexts = {
    "no_retrieval": {},
    "oracle": dict(zip(test.qid, test.gold_pids, strict=True)),
    "bm25": top_pids(bm25, P.rag.top_k),
    "dense": top_pids(dense, P.rag.top_k),
    "reranker": top_pids(reranked, P.rag.top_k),
}
answers = pd.concat(
    [answer_questions(lm, test, ctx, store, name, P.rag.max_new_tokens) for name, ctx in contexts.items()], ignore_index=True
)
summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)
em_f1_table(summary)

# %%
long = pd.DataFrame([{"variant": v, "metric": m.upper(), **s[m]} for v, s in summary.items() for m in ("em", "f1")])
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.barplot(long, x="variant", y="mean", hue="metric", ax=ax)
for bar, (_, row) in zip(ax.patches, long.sort_values(["metric"], kind="stable").iterrows(), strict=False):
    ax.errorbar(bar.get_x() + bar.get_width() / 2, row["mean"], yerr=[[row["mean"] - row["lo"]], [row["hi"] - row["mean"]]], color="black", capsize=3, lw=1)
ax.set(title=f"RAG baselines on {len(test)} test questions (95% bootstrap CI)", xlabel="", ylabel="score")
plots.save(fig, "figures/baselines_em_f1.png")

# %%
examples = answers[answers.variant.isin(["oracle", "reranker"])].merge(test[["qid", "question", "answers"]], on="qid").head(8)
examples[["variant", "question", "answers", "answer", "f1"]]

# %% tags=["findings"]
best = max(summary, key=lambda v: summary[v]["f1"]["mean"] if v != "oracle" else -1)
Markdown(
    f"With no passages the generator reaches F1 {summary['no_retrieval']['f1']['mean']:.3f}; with the gold passages "
    f"{summary['oracle']['f1']['mean']:.3f}. Among retrieval variants the best is **{best}** "
    f"(F1 {summary[best]['f1']['mean']:.3f}, EM {summary[best]['em']['mean']:.3f}). The relevance reranker lifts recall@1 of gold "
    f"passages from {rank_quality.loc['dense', 'recall@1']:.2f} (dense) to {rank_quality.loc['reranker', 'recall@1']:.2f}; its answers "
    f"score F1 {summary['reranker']['f1']['mean']:.3f} vs {summary['dense']['f1']['mean']:.3f} for dense top-{P.rag.top_k}."
)

# %%
reranker.save("results/baselines/reranker")
curve[curve.split == "train"][["step", "loss"]].to_csv("results/plots/baselines_reranker_curve.csv", index=False, float_format="%.6g")
write_parquet(reranked, "results/baselines/rankings.parquet")
write_parquet(answers, "results/baselines/answers.parquet")
write_json(
    "results/metrics/baselines.json",
    {
        **summary,
        "ranking_quality": rank_quality.to_dict(orient="index"),
        "reranker_training": {"groups": len(groups), "final_val_loss": round(float(curve[curve.split == "val"].loss.iloc[-1]), 4)},
        "cost": {"llm_evaluations": lm.evaluations, "llm_forward_tokens": lm.forward_tokens},
    },
)

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
# keeps the training only where it lowered the held-out loss. The reranker is the baseline every
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
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown

from ragalign.core import artifacts, params, plots
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.metrics import format_difference, paired_difference
from ragalign.core.rag import PassageStore, answer_questions, build_cost, em_f1_table, summarise
from ragalign.core.rerank import relevance_groups, rerank, train_reranker
from ragalign.core.retrieval import corpus_strings, retrieval_quality, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.validity import describe_failures, difference_gate, loss_gate, ranker_gate

P = params.from_namespace(globals())
seed_everything(P.training.seed)
plots.setup()
questions, passages = load_questions(), load_passages()
train, test = questions[questions.split == "train"], questions[questions.split == "test"]
passage_text = dict(zip(passages.pid, corpus_strings(passages), strict=True))
dense = artifacts.DENSE.read()
bm25 = artifacts.BM25.read()
dense_candidates = top_pids(dense)

# %% [markdown]
# ## The relevance reranker
# Each train question gives one group: its gold passages (sharing the target mass) and hard
# negatives sampled from its dense candidates. A held-out share of the train questions
# (`training.val_fraction`) picks the best epoch.

# %%
groups = relevance_groups(train, dense_candidates, passage_text, P.training.group_size, P.training.seed)
reranker, curve = train_reranker(P.models.encoder, groups, P.training, desc="relevance reranker", prior_max_length=P.retrieval.max_length)
plots.training_curve(curve, "Relevance reranker: listwise KL loss", "KL(target ‖ softmax(scores))", "figures/baselines_reranker_curve.png")

# %%
reranked = rerank(reranker, test, dense_candidates, passage_text, "reranker", desc="rerank", priors=dense)
ks = [1, 2, P.rag.top_k]
rank_quality = pd.DataFrame(
    {name: retrieval_quality(r, test, ks) for name, r in (("bm25", bm25), ("dense", dense), ("reranker", reranked))}
).T
kept = loss_gate(curve)
rank_quality

# %% [markdown]
# ## Answers on the test split

# %%
lm = LM.from_params(P.models)
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

# %% [markdown]
# ## Validity: does retrieval help, and does the reranker beat its start?
# Paired over the test questions, on the gold-answer likelihood; `mde` is the smallest difference
# this many questions detect (two-sided 5% test, 80% power).

# %%
def by(variant: str) -> pd.DataFrame:
    return answers[answers.variant == variant]


differences = {
    f"{a} - {b}": paired_difference(by(a), by(b), "gold_logprob", P.rag.n_bootstrap, P.data.seed)
    for a, b in (("oracle", "no_retrieval"), ("dense", "no_retrieval"), ("bm25", "no_retrieval"), ("reranker", "dense"))
}
validity = {
    "oracle_vs_no_retrieval": difference_gate(differences["oracle - no_retrieval"]),
    "dense_vs_no_retrieval": difference_gate(differences["dense - no_retrieval"]),
    "reranker_vs_dense_ranking": ranker_gate(reranked, dense, test),
    "reranker_heldout_loss": kept,
}
pd.DataFrame(differences).T

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
def moves(name: str, new: float, old: float) -> str:
    if new == old:
        return f"leaves the {name} at {old:.3f}"
    return f"{'raises' if new > old else 'lowers'} the {name} from {old:.3f} to {new:.3f}"


lp = {v: summary[v]["gold_logprob"]["mean"] for v in summary}
Markdown(
    describe_failures(validity, "baselines")
    + f"Gold-answer log-likelihood: {lp['no_retrieval']:.3f} with no passages, {lp['oracle']:.3f} with the gold passages "
    f"(oracle − none {format_difference(differences['oracle - no_retrieval'])}); dense top-{P.rag.top_k} {lp['dense']:.3f} "
    f"(dense − none {format_difference(differences['dense - no_retrieval'])}). F1 moves less: {summary['no_retrieval']['f1']['mean']:.3f} "
    f"without passages, {summary['oracle']['f1']['mean']:.3f} with the gold ones, {summary['dense']['f1']['mean']:.3f} with dense. "
    f"The relevance reranker, trained on {len(groups)} train questions, "
    f"{moves('MRR of gold passages', rank_quality.loc['reranker', 'mrr'], rank_quality.loc['dense', 'mrr'])} (dense is its start) and "
    f"{moves('recall@1', rank_quality.loc['reranker', 'recall@1'], rank_quality.loc['dense', 'recall@1'])}; "
    + ("training never lowered its held-out loss, so it kept its start: the dense ranking. " if kept["kept_step"] == 0 else f"it kept the weights of step {kept['kept_step']} (held-out loss {kept['start']} → {kept['best']}). ")
    + f"Its answers' gold log-likelihood minus dense top-{P.rag.top_k}: {format_difference(differences['reranker - dense'])}."
)

# %%
reranker.save(artifacts.RELEVANCE_RERANKER.path)
artifacts.RERANKER_CURVE.write(curve[curve.split == "train"][["step", "loss"]].to_csv(index=False, float_format="%.6g"))
artifacts.RERANKER_RANKINGS.write(reranked)
artifacts.BASELINE_ANSWERS.write(answers)
artifacts.BASELINE_METRICS.write(
    {
        **summary,
        "ranking_quality": rank_quality.to_dict(orient="index"),
        "reranker_training": {"groups": len(groups), "train_questions": int(len(train)), "final_val_loss": round(float(curve[curve.split == "val"].loss.iloc[-1]), 4)},
        "paired_gold_logprob": differences,
        "validity": validity,
        "build_cost": {v: build_cost() for v in contexts},  # no generator call builds a baseline
        "cost": {"llm_evaluations": lm.evaluations, "llm_forward_tokens": lm.forward_tokens},
    },
)

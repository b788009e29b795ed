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
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from ragalign.core import artifacts, params, plots
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_difference
from ragalign.core.rag import PassageStore, answer_questions, build_cost, em_f1_table, summarise
from ragalign.core.retrieval import DenseEncoder, corpus_strings, dense_search, retrieval_quality, to_ranking, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.validity import chance_gate, describe_failures, ranker_gate
from ragalign.methods import figret as fg

P = params.from_namespace(globals())
F = P.figret
seed_everything(P.training.seed)
plots.setup()
questions, passages = load_questions(), load_passages()
train, test = questions[questions.split == "train"], questions[questions.split == "test"]
corpus = corpus_strings(passages)
passage_text = dict(zip(passages.pid, corpus, strict=True))
row_of = {p: i for i, p in enumerate(passages.pid)}
dense = artifacts.DENSE.read()
passage_emb = artifacts.PASSAGE_EMB.read()
dense_ranked = top_pids(dense)
lm = LM.from_params(P.models)
store = PassageStore(passages, lm, P.rag.max_passage_tokens)

# the train questions FiGRet examines each round (a seeded sample, the same in every round)
examined = train.sample(n=min(F.n_questions, len(train)), random_state=P.training.seed).sort_values("qid")
# Re-embedding the 15k-passage corpus costs minutes, so between rounds and for the ablations the
# retriever searches candidate pools; only the final retriever re-indexes the whole corpus.
# train pool: the examined questions' stage-02 dense top-k and their gold passages (labels are
# legitimately available in train); test pool: the test questions' stage-02 dense top `figret.pool_k`
# (no labels; in it, recall@k of the stage-02 retriever equals its full-index recall for k <= pool_k).
train_pool = sorted({p for q in examined.qid for p in dense_ranked[q]} | {p for g in examined.gold_pids for p in g})
test_pool = sorted({p for q in test.qid for p in dense_ranked[q][: F.pool_k]})
ks = sorted({1, 2, P.rag.top_k, 10} & set(range(1, P.retrieval.k + 1)))
train_kwargs = dict(
    epochs=P.training.epochs, lr=F.lr, batch_size=P.training.batch_size, temperature=F.temperature, val_fraction=P.training.val_fraction, seed=P.training.seed
)


def fresh_encoder() -> DenseEncoder:
    return DenseEncoder(P.models.encoder, P.retrieval.max_length, autocast=P.retrieval.bf16_autocast)


def pool_quality(encoder, qs, pool, base=False):
    emb = passage_emb[[row_of[p] for p in pool]] if base else None
    ranking = fg.search_pool(encoder, qs, pool, passage_text, P.retrieval.k, "figret", P.retrieval.encode_batch_size, pool_emb=emb)
    return ranking, retrieval_quality(ranking, qs, ks)


pd.Series({"train questions examined": len(examined), "train pool": len(train_pool), "test pool": len(test_pool), "corpus": len(passages)})

# %% [markdown]
# ## Rounds of feedback and training
# Round 1 starts from the stage-02 dense rankings (in the train pool they are identical to the
# full-index ones: the pool holds every question's own top-k). Each round: poorly served
# questions → yes/no judgements → examples → curriculum training → re-retrieval.

# %%
encoder = fresh_encoder()
_, q0 = pool_quality(encoder, test, test_pool, base=True)
ranked_train = {q: dense_ranked[q] for q in examined.qid}
history = [{"round": 0, "split": "test (pool)", **q0}]
history.append({"round": 0, "split": "train examined (pool)", **retrieval_quality(dense[dense.qid.isin(examined.qid)], examined, ks)})
rounds, later = fg.run_rounds(
    lm,
    encoder,
    examined,
    ranked_train,
    store,
    passage_text,
    n_rounds=F.rounds,
    pools={"train examined (pool)": (examined, train_pool), "test (pool)": (test, test_pool)},
    ks=ks,
    search_k=P.retrieval.k,
    encode_batch_size=P.retrieval.encode_batch_size,
    judge=dict(top_k=P.rag.top_k, k=F.k, n_negatives=F.n_negatives, judge_batch=F.judge_batch, max_new_tokens=P.rag.max_new_tokens),
    train=train_kwargs,
)
history = pd.concat([pd.DataFrame(history), later], ignore_index=True)
examples = pd.concat([fg.examples_table(rd.examples) for rd in rounds], ignore_index=True)
per_round = fg.round_table(rounds)
per_round

# %% [markdown]
# What the judgements look like: the LLM's relevance log-odds for gold passages against the
# retrieved non-gold ones (a usable judge separates them), and the examples' margins.

# %%
judged = pd.concat([rd.passages.assign(round=rd.round) for rd in rounds], ignore_index=True)
sets = pd.concat([rd.sets.assign(round=rd.round) for rd in rounds], ignore_index=True)
separation = pd.DataFrame(
    {
        "relevance": judged.groupby("is_gold").relevance.mean(),
        "purity": judged.groupby("is_gold").purity.mean(),
    }
).rename(index={True: "gold", False: "non-gold"})
separation.loc["complete set / incomplete set", "comprehensiveness"] = sets[sets.complete].comprehensiveness.mean() - sets[~sets.complete].comprehensiveness.mean()
auc = fg.judge_auc(judged)
display(separation.round(3))
examples.groupby(["round", "objective"]).agg(n=("qid", "size"), questions=("qid", "nunique"), mean_margin=("margin", "mean"), negatives=("n_negatives", "mean")).round(3)

# %%
curves = pd.concat([rd.curve.assign(round=rd.round) for rd in rounds], ignore_index=True)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
test_hist = history[history.split == "test (pool)"]
for split, df in history.groupby("split", sort=False):
    axes[0].plot(df["round"], df[f"recall@{P.rag.top_k}"], marker="o", label=split)
axes[0].set(xlabel="round (0: stage-02 dense)", ylabel=f"gold recall@{P.rag.top_k}", title="Recall after each FiGRet round", xticks=range(F.rounds + 1))
axes[0].legend()
sns.lineplot(curves[curves.split == "val"], x="step", y="loss", hue="round", marker="o", palette="colorblind", ax=axes[1])
axes[1].set(title="Held-out set-level InfoNCE per round", ylabel="validation loss")
plots.save(fig, "figures/figret_rounds.png")

# %% [markdown]
# ## The final retriever on the whole corpus
# The corpus is re-embedded once with the final retriever; the test questions' top
# `retrieval.k` is compared with the stage-02 dense retriever, and the generator answers from the
# top `rag.top_k`.

# %%
new_emb = encoder.embed(corpus, P.retrieval.encode_batch_size, desc="re-embed corpus")
idx, scores = dense_search(new_emb, encoder.embed(test.question.tolist(), P.retrieval.encode_batch_size), P.retrieval.k)
ranking = to_ranking(test.qid, idx, scores, passages.pid, "figret")
quality = {"figret": retrieval_quality(ranking, test, ks), "dense": retrieval_quality(dense[dense.qid.isin(test.qid)], test, ks)}
built = build_cost(lm.evaluations, lm.forward_tokens)  # rounds, judgements and curves: what building FiGRet cost
answers = answer_questions(lm, test, top_pids(ranking, P.rag.top_k), store, "figret", P.rag.max_new_tokens)
summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)["figret"]
baselines = artifacts.BASELINE_METRICS.read()
base_answers = artifacts.BASELINE_ANSWERS.read()
diff = {m: paired_difference(answers, base_answers[base_answers.variant == "dense"], m, P.rag.n_bootstrap, P.data.seed) for m in ("em", "f1", "gold_logprob")}
diff_reranker = paired_difference(answers, base_answers[base_answers.variant == "reranker"], "gold_logprob", P.rag.n_bootstrap, P.data.seed)
validity = {
    "retriever_vs_dense_ranking": ranker_gate(ranking, dense[dense.qid.isin(test.qid)], test),
    "judge_relevance_vs_chance": chance_gate(auc["relevance"]),
    "judge_purity_vs_chance": chance_gate(auc["purity"]),
}
compared = {"dense": baselines["dense"], "reranker": baselines["reranker"], "figret": summary}
em_f1_table(compared, {f"R@{k}": {v: q[f"recall@{k}"] for v, q in quality.items()} for k in ks})

# %% [markdown]
# ## Ablations (one round, same round-1 examples, test pool)
# No curriculum (a seeded shuffle) and one objective at a time, each trained from the stage-02
# weights for one round on the round-1 examples and evaluated in the test pool; "dual, all
# objectives" is the round-1 FiGRet retriever itself.

# %%
if F.ablations:
    abl, abl_curves = fg.run_ablations(
        fresh_encoder, rounds[0].examples, passage_text, test, test_pool, k=P.retrieval.k, ks=ks, encode_batch_size=P.retrieval.encode_batch_size, **train_kwargs
    )
    q1 = history[(history["round"] == 1) & (history.split == "test (pool)")].drop(columns=["round", "split"]).iloc[0].to_dict()
    ref = [
        {"variant": "stage-02 dense", **q0, "n_examples": 0},
        {"variant": "dual curriculum, all objectives", **q1, "n_examples": len(rounds[0].examples)},
    ]
    abl = pd.concat([pd.DataFrame(ref), abl], ignore_index=True)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.barplot(abl, y="variant", x=f"recall@{P.rag.top_k}", ax=ax, color=sns.color_palette()[0])
    ax.axvline(q0[f"recall@{P.rag.top_k}"], color="grey", ls="--", lw=1)
    ax.set(title="One-round ablations: per-objective effect (test pool)", xlabel=f"gold recall@{P.rag.top_k}", ylabel="")
    plots.save(fig, "figures/figret_objectives.png")
else:
    abl = pd.DataFrame(columns=["variant", *[f"recall@{k}" for k in ks], "mrr", "n_examples"])
abl

# %% tags=["findings"]
t, d = quality["figret"], quality["dense"]
kk = P.rag.top_k
dl = diff["gold_logprob"]
Markdown(
    describe_failures(validity, "figret")
    + f"Gold-answer log-likelihood, paired: FiGRet − dense top-{kk} {dl['mean']:+.3f} [{dl['lo']:+.3f}, {dl['hi']:+.3f}] "
    f"(detectable at 80% power: {dl['mde']:.3f}); FiGRet − relevance reranker {diff_reranker['mean']:+.3f} "
    f"[{diff_reranker['lo']:+.3f}, {diff_reranker['hi']:+.3f}]. "
    + f"Over {F.rounds} round(s), FiGRet examined {len(examined)} train questions per round and found "
    f"{', '.join(str(n) for n in per_round['poorly served'])} poorly served; the judgements gave "
    f"{len(examples)} examples ({', '.join(f'{o}: {int((examples.objective == o).sum())}' for o in fg.OBJECTIVES)}) "
    f"for {lm.evaluations} LLM evaluations ({lm.forward_tokens} tokens, answers included). "
    f"As a judge, the 135M generator ranks a gold passage above a retrieved non-gold one with probability "
    f"{auc['relevance']:.2f} on relevance and {auc['purity']:.2f} on purity (0.5 is chance). "
    f"On the whole corpus the fine-tuned retriever's test recall@{kk} is {t[f'recall@{kk}']:.3f} vs {d[f'recall@{kk}']:.3f} "
    f"for the stage-02 dense retriever (MRR {t['mrr']:.3f} vs {d['mrr']:.3f}); with its top {kk} the generator's "
    f"EM is {summary['em']['mean']:.3f} [{summary['em']['lo']:.3f}, {summary['em']['hi']:.3f}] vs "
    f"{baselines['dense']['em']['mean']:.3f} with dense and {baselines['reranker']['em']['mean']:.3f} with the relevance reranker "
    f"(paired EM difference vs dense {diff['em']['mean']:+.3f} [{diff['em']['lo']:+.3f}, {diff['em']['hi']:+.3f}]; "
    f"F1 {summary['f1']['mean']:.3f} vs {baselines['dense']['f1']['mean']:.3f})."
    + (
        f" In the one-round ablations (test pool, recall@{kk}) the dual curriculum reaches "
        f"{abl.set_index('variant').loc['dual curriculum, all objectives', f'recall@{kk}']:.3f}, the shuffled order "
        f"{abl.set_index('variant').loc['no curriculum (shuffled)', f'recall@{kk}']:.3f}, and single objectives "
        + ", ".join(f"{o} {abl.set_index('variant').loc[f'{o} only', f'recall@{kk}']:.3f}" for o in fg.OBJECTIVES)
        + f" (stage-02 dense {q0[f'recall@{kk}']:.3f})."
        if F.ablations
        else ""
    )
)

# %%
encoder.save(artifacts.FIGRET_RETRIEVER.path)
artifacts.FIGRET_RANKINGS.write(ranking)
artifacts.FIGRET_ANSWERS.write(answers)
artifacts.FIGRET_EXAMPLES.write(examples)
artifacts.FIGRET_METRICS.write(
    {
        "test": {
            "retrieval": quality,
            "answers": {"figret": summary, "dense": baselines["dense"], "reranker": baselines["reranker"]},
            "paired_difference_vs_dense": diff,
            "paired_gold_logprob_vs_reranker": diff_reranker,
        },
        "validity": validity,
        "build_cost": {"figret": built},
        "rounds": history.to_dict(orient="records"),
        "per_round": per_round.to_dict(orient="records"),
        "judge_auc_gold_vs_nongold": auc,
        "ablations_one_round_test_pool": abl.to_dict(orient="records"),
        "pools": {"train": len(train_pool), "test": len(test_pool)},
        "cost": {"llm_evaluations": lm.evaluations, "llm_forward_tokens": lm.forward_tokens},
    },
)

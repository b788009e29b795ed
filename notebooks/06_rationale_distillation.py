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
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown
from matplotlib.container import BarContainer

from ragalign.core import artifacts, params, plots
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_difference
from ragalign.core.rag import PassageStore, answer_questions, build_cost, summarise
from ragalign.core.rerank import rerank, train_reranker
from ragalign.core.retrieval import DenseEncoder, corpus_strings, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.validity import describe_failures, loss_gate, ranker_gate
from ragalign.methods import rationale as radio_lib

P = params.from_namespace(globals())
seed_everything(P.training.seed)
plots.setup()
pd.set_option("display.max_colwidth", 200)
questions, passages = load_questions(), load_passages()
train, test = questions[questions.split == "train"], questions[questions.split == "test"]
passage_text = dict(zip(passages.pid, corpus_strings(passages), strict=True))
pid_row = {pid: i for i, pid in enumerate(passages.pid)}
passage_emb = artifacts.PASSAGE_EMB.read()
dense = artifacts.DENSE.read()
dense_k = dense[dense["rank"] < P.radio.k]

# %% [markdown]
# ## Rationales
# The generator gets the paper's instruction (a QA assistant that, given a question and its
# ground-truth answer, explains why the answer is correct), the question and the gold answer,
# and writes at most `radio.rationale_max_new_tokens` tokens (greedy).

# %%
lm = LM.from_params(P.models)
rationales = radio_lib.generate_rationales(lm, train, P.radio.rationale_max_new_tokens)
rationale_cost = {"evaluations": lm.evaluations, "forward_tokens": lm.forward_tokens}
rationale_words = rationales.rationale.str.split().map(len)
mentions_answer = [a.lower() in r.lower() for a, r in zip(rationales.answer, rationales.rationale, strict=True)]
rationales[["question", "answer", "rationale"]].head(6)

# %% [markdown]
# ## Rationale-based ranking of the train candidates
# How well does each ranking of the dense top `radio.k` agree with the gold passages? `dense` is
# the retriever's order, `rationale` the mixed ranking RADIO trains on (mix `radio.mix`), and
# `rationale only` the similarity to the rationale alone (mix 1, the public RADIO code's ranking).

# %%
encoder = DenseEncoder(P.models.encoder, P.retrieval.max_length, autocast=P.retrieval.bf16_autocast)
rationale_emb = dict(zip(rationales.qid, encoder.embed(rationales.text.tolist(), P.retrieval.encode_batch_size), strict=True))
ranked = radio_lib.rationale_ranking(dense_k, rationale_emb, passage_emb, pid_row, P.radio.mix, P.radio.k)
ranked_only = radio_lib.rationale_ranking(dense_k, rationale_emb, passage_emb, pid_row, 1.0, P.radio.k)
train_agreement = radio_lib.gold_agreement(
    {"dense": dense_k[dense_k.qid.isin(train.qid)], "rationale": ranked, "rationale only": ranked_only}, train, ks=(1, 5)
)
train_agreement

# %%
long = train_agreement[["recall@1", "hit@1"]].reset_index().melt(id_vars="ranking", var_name="metric", value_name="value")
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.barplot(long, x="metric", y="value", hue="ranking", ax=ax)
ax.set(title=f"Gold passages at the top, {len(train)} train questions", xlabel="", ylabel="fraction", ylim=(0, 1))
plots.save(fig, "figures/radio_gold_agreement.png")

# %% [markdown]
# ## Fine-tuning the reranker
# One group per train question: the top of the rationale ranking as the positive and the
# passages at the negative ranks below (one-hot target: KL to it is the contrastive loss).

# %%
neg_ranks = radio_lib.negative_ranks(P.radio.neg_ranks, P.training.group_size, P.radio.k)
groups = radio_lib.build_groups(train, ranked, passage_text, neg_ranks)
positive_is_gold = float(train_agreement.loc["rationale", "hit@1"])  # the positive is rank 0 of that ranking
print(f"{len(groups)} groups of {P.training.group_size}: positive = rank 0, negatives = ranks {neg_ranks} of the rationale ranking")
reranker, curve = train_reranker(P.models.encoder, groups, P.training, desc="radio reranker", prior_max_length=P.retrieval.max_length)
val_curve = curve[curve.split == "val"]
plots.training_curve(curve, "RADIO reranker: contrastive loss", "KL(one-hot ‖ softmax(scores))", "figures/radio_training_curve.png")

# %% [markdown]
# ## Answers on the test split

# %%
dense_candidates = top_pids(dense_k)
radio_ranking = rerank(reranker, test, dense_candidates, passage_text, "radio", desc="rerank test", priors=dense)
store = PassageStore(passages, lm, P.rag.max_passage_tokens)
answers = answer_questions(lm, test, top_pids(radio_ranking, P.radio.top_k), store, "radio", P.rag.max_new_tokens)
total_cost = {"evaluations": lm.evaluations, "forward_tokens": lm.forward_tokens}
answer_cost = {k: total_cost[k] - rationale_cost[k] for k in total_cost}
summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)

baseline_answers = artifacts.BASELINE_ANSWERS.read()
variants = radio_lib.metric_variants(artifacts.BASELINE_METRICS.read())
if artifacts.GAIN_METRICS.exists():
    variants |= radio_lib.metric_variants(artifacts.GAIN_METRICS.read(), keep=["gainrag"])
variants["radio"] = summary["radio"]
comparison = radio_lib.comparison_table(variants)
paired = {
    v: {m: paired_difference(answers, df, m, P.rag.n_bootstrap, P.data.seed) for m in ("em", "f1", "gold_logprob")}
    for v, df in baseline_answers.groupby("variant", sort=False)
}
table = comparison.pivot(index="variant", columns="metric", values="mean").loc[list(variants)]
table["radio − variant, F1 (paired 95% CI)"] = [
    "{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]".format(**paired[v]["f1"]) if v in paired else "" for v in table.index
]
table["radio − variant, gold log-prob (paired 95% CI; detectable)"] = [
    "{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]; {mde:.3f}".format(**paired[v]["gold_logprob"]) if v in paired else "" for v in table.index
]
validity = {
    "reranker_heldout_loss": loss_gate(curve),
    "reranker_vs_dense_ranking": ranker_gate(radio_ranking, dense_k[dense_k.qid.isin(test.qid)], test),
}
table

# %%
baseline_rankings = artifacts.RERANKER_RANKINGS.read()
test_agreement = radio_lib.gold_agreement(
    {
        "dense": dense_k[dense_k.qid.isin(test.qid)],
        "reranker": baseline_rankings[baseline_rankings.qid.isin(test.qid)],
        "radio": radio_ranking,
    },
    test,
    ks=(1, P.radio.top_k),
)
test_agreement

# %%
plot = comparison.assign(metric=comparison.metric.str.upper())
fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(variants)), 3.8))
sns.barplot(plot, x="variant", y="mean", hue="metric", ax=ax, order=list(variants), errorbar=None)
bar_groups = [c for c in ax.containers if isinstance(c, BarContainer)]
for metric, bars in zip(plot.metric.unique(), bar_groups, strict=True):
    rows = plot[plot.metric == metric].set_index("variant").loc[list(variants)]
    centres = [b.get_x() + b.get_width() / 2 for b in bars]
    ax.errorbar(centres, rows["mean"], yerr=[rows["mean"] - rows["lo"], rows["hi"] - rows["mean"]], fmt="none", color="black", capsize=3, lw=1)
ax.set(title=f"RADIO vs other variants, {len(test)} test questions (95% bootstrap CI)", xlabel="", ylabel="score")
ax.tick_params(axis="x", rotation=30)
plots.save(fig, "figures/radio_em_f1.png")

# %%
examples = answers.merge(test[["qid", "question", "answers"]], on="qid").head(6)
examples[["question", "answers", "answer", "f1"]]

# %% tags=["findings"]
r, ref = summary["radio"], variants.get("reranker")
versus = (
    f"The stage-03 relevance reranker, trained on the same budget, reaches EM {ref['em']['mean']:.3f} / F1 {ref['f1']['mean']:.3f}"
    f" (recall@1 of gold on test {test_agreement.loc['reranker', 'recall@1']:.2f} vs {test_agreement.loc['radio', 'recall@1']:.2f} for RADIO)."
    if ref
    else ""
)
d = paired.get("reranker", {}).get("gold_logprob")
paired_note = (
    f" Paired by question, RADIO − reranker gold-answer log-likelihood is {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
    + (f"; the interval contains zero, so this sample does not resolve a difference (detectable at 80% power: {d['mde']:.3f})." if d["lo"] <= 0 <= d["hi"] else ".")
    if d
    else ""
)
gate = validity["reranker_vs_dense_ranking"]
Markdown(
    describe_failures(validity, "radio")
    + f"On the test candidates the RADIO reranker's MRR of gold passages is {gate['ranker']['mrr']:.3f} against {gate['start']['mrr']:.3f} "
    f"for dense, its start (recall@1 {gate['ranker']['recall@1']:.3f} vs {gate['start']['recall@1']:.3f}). "
    + f"The generator wrote {len(rationales)} rationales (mean {rationale_words.mean():.0f} words; "
    f"{np.mean(mentions_answer):.0%} repeat the gold answer). On the train questions the rationale ranking puts a gold "
    f"passage first for {train_agreement.loc['rationale', 'hit@1']:.0%} of questions, against "
    f"{train_agreement.loc['dense', 'hit@1']:.0%} for the dense retriever and {train_agreement.loc['rationale only', 'hit@1']:.0%} "
    f"for the rationale similarity alone, so {positive_is_gold:.0%} of the training positives are gold passages. "
    f"The RADIO reranker's best validation loss is {val_curve.loss.min():.3f} (initial {val_curve.loss.iloc[0]:.3f}). "
    f"With its top {P.radio.top_k} passages the generator scores EM {r['em']['mean']:.3f} "
    f"[{r['em']['lo']:.3f}, {r['em']['hi']:.3f}] and F1 {r['f1']['mean']:.3f} [{r['f1']['lo']:.3f}, {r['f1']['hi']:.3f}]. "
    + versus
    + paired_note
    + f" RADIO cost {total_cost['evaluations']} generator calls ({total_cost['forward_tokens']:,} tokens), "
    f"{rationale_cost['evaluations']} of them for the rationales."
)

# %%
artifacts.RATIONALES.write(rationales)
artifacts.RADIO_CURVE.write(curve)
reranker.save(artifacts.RADIO_RERANKER.path)
artifacts.RATIONALE_RANKING.write(ranked)
artifacts.RADIO_RANKINGS.write(radio_ranking)
artifacts.RADIO_ANSWERS.write(answers)
artifacts.RADIO_METRICS.write(
    {
        **summary,
        "build_cost": {"radio": build_cost(rationale_cost["evaluations"], rationale_cost["forward_tokens"])},
        "gold_agreement_train": train_agreement.to_dict(orient="index"),
        "gold_agreement_test": test_agreement.to_dict(orient="index"),
        "rationales": {
            "n": len(rationales),
            "mean_words": round(float(rationale_words.mean()), 2),
            "mentions_answer": round(float(np.mean(mentions_answer)), 4),
            "positive_is_gold": round(positive_is_gold, 4),
        },
        "training": {
            "groups": len(groups),
            "group_size": P.training.group_size,
            "neg_ranks": neg_ranks,
            "initial_val_loss": round(float(val_curve.loss.iloc[0]), 4),
            "best_val_loss": round(float(val_curve.loss.min()), 4),
            "final_val_loss": round(float(val_curve.loss.iloc[-1]), 4),
        },
        "cost": {
            "llm_evaluations": total_cost["evaluations"],
            "llm_forward_tokens": total_cost["forward_tokens"],
            "rationale_evaluations": rationale_cost["evaluations"],
            "rationale_forward_tokens": rationale_cost["forward_tokens"],
            "answer_evaluations": answer_cost["evaluations"],
            "answer_forward_tokens": answer_cost["forward_tokens"],
        },
        "radio_minus_variant": paired,
        "validity": validity,
    },
)

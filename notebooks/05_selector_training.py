# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · GainRAG selector
#
# The gain labels of stage 04 are distilled into a **selector**: a MiniLM cross-encoder trained, with
# exactly the budget of the stage-03 relevance reranker (`training`), to match the distribution
# softmax(label / `selector.temperature`) over groups of `training.group_size` labelled passages
# (KL(target ‖ softmax(scores)), as the paper's FlagEmbedding knowledge-distillation loss; the
# paper uses no temperature, i.e. 1). Each group holds the question's best-gain passage, its
# pseudo-passage when it has one, and a seeded sample of the rest. On the test questions the selector
# scores the dense top `selector.top_n` plus the pseudo-passage and the generator answers from its
# top `selector.top_k`.
#
# Ablations in the same setting: **α = 0** (labels −log(ppl + 1) without the contrastive term; a
# second selector, retrained), **no pseudo-passage** (the same selector, candidates without it),
# **no distillation** (the stage-03 relevance reranker choosing among the same candidates), and
# plain **dense** top-`selector.top_k` as the no-selection reference.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
rag: dict = {}
training: dict = {}
gain: dict = {}
selector: dict = {}

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
from ragalign.core.rerank import CrossEncoder, rerank, train_reranker
from ragalign.core.retrieval import corpus_strings
from ragalign.core.seed import seed_everything
from ragalign.core.validity import describe_failures, loss_gate, ranker_gate
from ragalign.methods.gain import (
    context_texts,
    drop_pseudo,
    pseudo_selection_rate,
    pseudo_texts,
    selector_candidates,
    selector_groups,
    top_contexts,
)

P = params.from_namespace(globals())
seed_everything(P.training.seed)
plots.setup()
questions, passages = load_questions(), load_passages()
test = questions[questions.split == "test"]
labels = artifacts.GAIN_LABELS.read()
pseudo = artifacts.PSEUDO.read()
dense = artifacts.DENSE.read()
train = questions[questions.qid.isin(set(labels.qid))]
# the selector reads passages as the stage-03 reranker does; pseudo-passages as generated
selector_text = dict(zip(passages.pid, corpus_strings(passages), strict=True))
pseudo_text = pseudo_texts(pseudo)
selector_text.update(pseudo_text)

# %% [markdown]
# ## Training: GainRAG selector (α = `gain.alpha`) and the α = 0 ablation

# %%
def train_selector(label_col: str, desc: str):
    groups = selector_groups(
        labels, train, selector_text, P.training.group_size, P.training.seed, label_col=label_col, temperature=P.selector.temperature
    )
    model, curve = train_reranker(P.models.encoder, groups, P.training, desc=desc, prior_max_length=P.retrieval.max_length)
    return model, curve.assign(selector=desc), groups


selector, curve, groups = train_selector("label", "gainrag")
selector_a0, curve_a0, _ = train_selector("label_ppl", "gainrag_alpha0")
curves = pd.concat([curve, curve_a0], ignore_index=True)
plots.training_curve(
    curves, "Selector distillation: KL loss", "KL(softmax(labels) ‖ softmax(scores))", "figures/gain_selector_curve.png", hue="selector", window=8
)
val = curves[curves.split == "val"].groupby("selector").loss.agg(initial="first", best="min").round(4)
val

# %% [markdown]
# ## Selection on the test questions

# %%
candidates = selector_candidates(dense, P.selector.top_n, pseudo)
rankings = {
    "gainrag": rerank(selector, test, candidates, selector_text, "gainrag", desc="selector", priors=dense),
    "gainrag_alpha0": rerank(selector_a0, test, candidates, selector_text, "gainrag_alpha0", desc="selector α=0", priors=dense),
}
rankings["gainrag_no_pseudo"] = drop_pseudo(rankings["gainrag"], "gainrag_no_pseudo")
relevance = CrossEncoder.load(P.models.encoder, artifacts.RELEVANCE_RERANKER.at(), P.training.max_length)
rankings["no_distillation"] = rerank(relevance, test, candidates, selector_text, "no_distillation", desc="relevance reranker", priors=dense)
dense_top = dense[dense.qid.isin(set(test.qid))]
selection = pd.DataFrame(
    {
        name: {
            "pseudo_selection_rate": pseudo_selection_rate(r, P.selector.top_k),
            "gold_at_top_k": float(
                pd.Series({q.qid: bool(set(top_contexts(r, P.selector.top_k).get(q.qid, [])) & set(q.gold_pids)) for q in test.itertuples()}).mean()
            ),
        }
        for name, r in {**rankings, f"dense_top{P.selector.top_k}": dense_top}.items()
    }
).T.round(4)
selection

# %% [markdown]
# ## Answers

# %%
lm = LM.from_params(P.models)
store = PassageStore(passages, lm, P.rag.max_passage_tokens)


class _Texts(dict):
    def __missing__(self, pid):
        return store[pid]


gen_text = _Texts(pseudo_text)
contexts = {name: top_contexts(r, P.selector.top_k) for name, r in rankings.items()}
contexts[f"dense_top{P.selector.top_k}"] = top_contexts(dense_top, P.selector.top_k)
answers = pd.concat(
    [
        answer_questions(lm, test, ctx, store, name, P.rag.max_new_tokens, context_texts=context_texts(ctx, gen_text))
        for name, ctx in contexts.items()
    ],
    ignore_index=True,
)
summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)
em_f1_table(summary, {"pseudo chosen": selection.pseudo_selection_rate.to_dict()})

# %% [markdown]
# ## Against the stage-03 baselines
# Paired by question: the bootstrap interval of the per-question F1 difference, GainRAG minus each
# other variant (the stage-03 variants show the generator `rag.top_k` passages, GainRAG `selector.top_k`).

# %%
baselines = artifacts.BASELINE_METRICS.read()
base_answers = artifacts.BASELINE_ANSWERS.read()
others = {v: answers[answers.variant == v] for v in summary if v != "gainrag"}
others.update({f"baseline:{v}": df for v, df in base_answers.groupby("variant", sort=False)})
diffs = {
    name: {m: paired_difference(answers[answers.variant == "gainrag"], df, m, P.rag.n_bootstrap, P.data.seed) for m in ("em", "f1", "gold_logprob")}
    for name, df in others.items()
}
compare = pd.DataFrame(
    {
        n: {
            "Δ gold log-prob": d["gold_logprob"]["mean"],
            "95% CI": f"[{d['gold_logprob']['lo']:.3f}, {d['gold_logprob']['hi']:.3f}]",
            "detectable (80% power)": d["gold_logprob"]["mde"],
            "ΔF1": d["f1"]["mean"],
            "ΔF1 95% CI": f"[{d['f1']['lo']:.3f}, {d['f1']['hi']:.3f}]",
        }
        for n, d in diffs.items()
    }
).T
top = f"dense_top{P.selector.top_k}"
validity = {
    "selector_heldout_loss": loss_gate(curve),
    "selector_alpha0_heldout_loss": loss_gate(curve_a0),
    "selector_vs_dense_ranking": ranker_gate(drop_pseudo(rankings["gainrag"]), dense_top, test),
    "gold_at_top_k_vs_dense": {
        "passed": bool(selection.loc["gainrag", "gold_at_top_k"] >= selection.loc[top, "gold_at_top_k"]),
        "selector": float(selection.loc["gainrag", "gold_at_top_k"]),
        "dense": float(selection.loc[top, "gold_at_top_k"]),
    },
}
compare

# %%
long = pd.DataFrame(
    [{"variant": v, "F1": s["f1"]["mean"], "lo": s["f1"]["lo"], "hi": s["f1"]["hi"], "source": "stage 05"} for v, s in summary.items()]
    + [
        {"variant": f"03:{v}", "F1": s["f1"]["mean"], "lo": s["f1"]["lo"], "hi": s["f1"]["hi"], "source": "stage 03"}
        for v, s in baselines.items()
        if isinstance(s, dict) and "f1" in s
    ]
)
fig, ax = plt.subplots(figsize=(8, 4))
sns.barplot(long, x="variant", y="F1", hue="source", dodge=False, ax=ax)
ax.errorbar(range(len(long)), long.F1, yerr=[long.F1 - long.lo, long.hi - long.F1], fmt="none", color="black", capsize=3, lw=1)
ax.set(title=f"GainRAG and ablations vs stage-03 baselines ({len(test)} test questions, 95% CI)", xlabel="")
ax.tick_params(axis="x", rotation=35)
plots.save(fig, "figures/gain_em_f1.png")

# %% tags=["findings"]
stats04 = artifacts.LABELLING_STATS.read()
g, a0, npd, nd = (summary[v]["f1"]["mean"] for v in ("gainrag", "gainrag_alpha0", "gainrag_no_pseudo", "no_distillation"))
rr = baselines.get("reranker", {}).get("f1", {}).get("mean", float("nan"))
vt = validity
Markdown(
    describe_failures(vt, "gainrag")
    + f"The selector's held-out KL went {vt['selector_heldout_loss']['start']} → {vt['selector_heldout_loss']['best']} "
    f"(kept step {vt['selector_heldout_loss']['kept_step']}; step 0 is the dense ranking). It puts a gold passage first for "
    f"{vt['gold_at_top_k_vs_dense']['selector']:.0%} of test questions against {vt['gold_at_top_k_vs_dense']['dense']:.0%} for dense. "
    f"Gold-answer log-likelihood, paired: GainRAG − dense top-{P.selector.top_k} {format_difference(diffs[top]['gold_logprob'])}; "
    f"GainRAG − relevance reranker on the same candidates (no distillation) {format_difference(diffs['no_distillation']['gold_logprob'])}. "
    + f"The GainRAG selector, trained on {len(groups)} labelled questions, answers the {len(test)} test questions with "
    f"F1 {g:.3f} (EM {summary['gainrag']['em']['mean']:.3f}) from its top {P.selector.top_k} passage(s); it picks the "
    f"pseudo-passage for {selection.loc['gainrag', 'pseudo_selection_rate']:.0%} of questions. Ablations: α = 0 gives F1 {a0:.3f}, "
    f"no pseudo-passage {npd:.3f}, no distillation (relevance reranker on the same candidates) {nd:.3f}, dense "
    f"top-{P.selector.top_k} {summary[f'dense_top{P.selector.top_k}']['f1']['mean']:.3f}. The stage-03 relevance reranker "
    f"with top-{P.rag.top_k} passages scored F1 {rr:.3f}; GainRAG minus it is "
    f"{diffs['baseline:reranker']['f1']['mean']:+.3f} [{diffs['baseline:reranker']['f1']['lo']:+.3f}, "
    f"{diffs['baseline:reranker']['f1']['hi']:+.3f}] F1 per question. Labelling cost "
    f"{stats04['cost']['labelling']['evaluations']} generator sequences "
    f"({stats04['cost']['labelling']['forward_tokens']:,} tokens) plus "
    f"{stats04['cost']['pseudo_generation']['evaluations']} pseudo-passage generations."
    if "baseline:reranker" in diffs
    else "stage-03 reranker answers missing"
)

# %%
selector.save(artifacts.SELECTOR.path)
artifacts.SELECTOR_CURVE.write(curves.round(6).to_dict(orient="records"))
artifacts.SELECTOR_RANKINGS.write(rankings["gainrag"])
artifacts.GAIN_ANSWERS.write(answers)
artifacts.GAIN_METRICS.write(
    {
        **summary,
        "selection": selection.to_dict(orient="index"),
        "pseudo_selection_rate": float(selection.loc["gainrag", "pseudo_selection_rate"]),
        "vs_variants": diffs,
        "validity": validity,
        "selector_training": {
            "groups": len(groups),
            "val_loss": val.to_dict(orient="index"),
            "temperature": P.selector.temperature,
        },
        "labels": stats04["stats"],
        # every GainRAG variant pays for the gain labels and pseudo-passages; "no distillation" for the pseudo-passages only
        "build_cost": {
            v: build_cost(
                stats04["cost"]["pseudo_generation"]["evaluations"] + (v != "no_distillation") * stats04["cost"]["labelling"]["evaluations"],
                stats04["cost"]["pseudo_generation"]["forward_tokens"] + (v != "no_distillation") * stats04["cost"]["labelling"]["forward_tokens"],
            )
            if v != top
            else build_cost()
            for v in summary
        },
        "cost": {
            "labelling": stats04["cost"]["labelling"],
            "pseudo_generation": stats04["cost"]["pseudo_generation"],
            "labelling_naive_evaluations": stats04["cost"]["labelling_naive"]["evaluations"],
            "answer_llm_evaluations_this_stage": len(answers),
        },
    },
)

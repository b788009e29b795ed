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
import pandas as pd
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.core.rag import em_f1_table
from ragalign.core.validity import describe_failures, describe_loss, describe_ranker
from ragalign.core.verdicts import describe, label
from ragalign.stages import selector_training as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)
test, summary, diffs, selection, validity, top = r.test, r.summary, r.diffs, r.selection, r.validity, r.top

# %% [markdown]
# ## Training: GainRAG selector (α = `gain.alpha`) and the α = 0 ablation

# %%
_ = plots.training_curve(r.curves, "Selector distillation: KL loss", "KL(softmax(labels) ‖ softmax(scores))", "figures/gain_selector_curve.png", hue="selector", window=8)
r.val

# %% [markdown]
# ## Selection on the test questions

# %%
selection

# %% [markdown]
# ## Answers

# %%
em_f1_table(summary, {"pseudo chosen": selection.pseudo_selection_rate.to_dict()})

# %% [markdown]
# ## Against its ablations and the stage-03 baselines
# Paired by question: the bootstrap interval of the per-question difference, GainRAG minus each
# other variant (the stage-03 variants show the generator `rag.top_k` passages, GainRAG `selector.top_k`),
# and its verdict on the gold-answer log-prob (equivalence within `rag.equivalence_margin` nats).

# %%
pd.DataFrame(
    {
        n: {
            "Δ gold log-prob": d["gold_logprob"]["mean"],
            "95% CI": f"[{d['gold_logprob']['lo']:.3f}, {d['gold_logprob']['hi']:.3f}]",
            "verdict": label(d["gold_logprob"]["verdict"], P.rag.equivalence_margin),
            "detectable (80% power)": d["gold_logprob"]["mde"],
            "ΔF1": d["f1"]["mean"],
            "ΔF1 95% CI": f"[{d['f1']['lo']:.3f}, {d['f1']['hi']:.3f}]",
        }
        for n, d in diffs.items()
    }
).T

# %%
long = pd.DataFrame(
    [{"variant": v, "metric": "F1 (stage 05)", **s["f1"]} for v, s in summary.items()]
    + [{"variant": f"03:{v}", "metric": "F1 (stage 03)", **s["f1"]} for v, s in r.baseline_summary.items()]
)
_ = plots.interval_bars(long, f"GainRAG and ablations vs stage-03 baselines ({len(test)} test questions, 95% CI)", "figures/gain_em_f1.png", ylabel="F1")

# %% tags=["findings"]
g, a0, npd, nd = (summary[v]["f1"]["mean"] for v in ("gainrag", "gainrag_alpha0", "gainrag_no_pseudo", "no_distillation"))
rr = r.baseline_summary["reranker"]["f1"]["mean"]
vt, cost04, m, k = validity, r.labelling_cost, P.rag.equivalence_margin, P.selector.top_k


def lp(name: str, other: str) -> str:
    return describe(diffs[name]["gold_logprob"], "GainRAG", other, m)


Markdown(
    describe_failures(vt, "gainrag")
    + f"Gold-answer log-likelihood, paired over the {len(test)} test questions, with {k} passage(s) on both sides: "
    f"{lp(top, f'dense top-{k}')}; {lp('no_distillation', 'the relevance reranker on the same candidates (no distillation)')}. "
    f"Ablations, on the same questions: {lp('gainrag_alpha0', 'its α = 0 ablation')}; {lp('gainrag_no_pseudo', 'its no-pseudo-passage ablation')}. "
    f"Against the stage-03 relevance reranker with its top {P.rag.top_k} passages (a larger context): {lp('baseline:reranker', f'the stage-03 reranker (top {P.rag.top_k})')}. "
    f"The selector, trained on {r.n_groups} labelled questions: {describe_loss(vt['selector_heldout_loss'], 'the GainRAG selector')}; "
    f"on the test candidates without the pseudo-passage {describe_ranker(vt['selector_vs_dense_ranking'], 'the selector')}. "
    f"It puts a gold passage in its top {k} for {vt['gold_at_top_k_vs_dense']['selector']:.0%} of test questions against "
    f"{vt['gold_at_top_k_vs_dense']['dense']:.0%} for dense ({label(vt['gold_at_top_k_vs_dense']['verdict'])}), and picks the pseudo-passage "
    f"for {selection.loc['gainrag', 'pseudo_selection_rate']:.0%} of questions. "
    f"Secondary: F1 {g:.3f} (EM {summary['gainrag']['em']['mean']:.3f}); α = 0 {a0:.3f}, no pseudo-passage {npd:.3f}, no distillation "
    f"{nd:.3f}, dense top-{k} {summary[top]['f1']['mean']:.3f}; the stage-03 relevance reranker with top-{P.rag.top_k} passages {rr:.3f} "
    f"(paired F1: {describe(diffs['baseline:reranker']['f1'], 'GainRAG', 'it')}). Labelling cost "
    f"{cost04['labelling']['evaluations']} generator sequences ({cost04['labelling']['forward_tokens']:,} tokens) plus "
    f"{cost04['pseudo_generation']['evaluations']} pseudo-passage generations."
)

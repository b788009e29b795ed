# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Summary: does aligning the retriever to the generator pay off?
#
# Every variant of the study answered the same test questions with the same generator. This
# notebook puts them side by side: the headline outcome, the generator's log-likelihood of the gold
# answer under each variant's context, with paired differences against the relevance reranker and
# dense retrieval at the same number of passages; answer quality (EM/F1, 95% bootstrap intervals); how many
# gold passages the generator was shown, how misaligned retriever and generator are by RAG-E's
# measures (WARG, wasted retrieval, noise distraction; stage 08), and what each variant cost to
# build in generator evaluations. It writes `results/metrics/summary.json`, the figures, and the
# headline table into the README.

# %% tags=["parameters"]
data: dict = {}
rag: dict = {}
selector: dict = {}
radio: dict = {}
rag_e: dict = {}

# %%

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown

from ragalign.core import artifacts, params, plots
from ragalign.core.data import load_questions
from ragalign.report.summary import (
    AUDITED,
    VARIANT_SOURCES,
    alignment_columns,
    build_costs,
    failed_gates_text,
    inject_readme,
    markdown_table,
    paired_table,
    timings_table,
    validity_gates,
    variant_rows,
    verdict,
)

P = params.from_namespace(globals())
plots.setup()
test = load_questions(split="test")
metrics = {name: a.read() for name, a in artifacts.METHOD_METRICS.items()} | {"rag_e": artifacts.AUDIT_METRICS.read()}
answers = pd.concat([a.read() for a in artifacts.ANSWER_TABLES], ignore_index=True)
answers = answers[answers.variant.isin(VARIANT_SOURCES)]

# %%
p_warg = P.rag_e.warg_p[len(P.rag_e.warg_p) // 2]
table = variant_rows(answers, test, P.rag.n_bootstrap, seed=P.data.seed)
paired = paired_table(answers, "gold_logprob", P.rag.n_bootstrap, P.data.seed)
for kind in ("reranker", "dense"):
    d = paired[paired.kind == kind].set_index("variant")[["mean", "lo", "hi"]]
    table = table.join(d.rename(columns={"mean": f"d_{kind}", "lo": f"d_{kind}_lo", "hi": f"d_{kind}_hi"}))
gates = validity_gates({name: metrics[name] for name in ("baselines", "gainrag", "radio", "figret")})
costs = pd.DataFrame(build_costs({name: metrics[name] for name in artifacts.METHOD_METRICS})).T
table = table.join(costs)
align = pd.DataFrame(alignment_columns(metrics["rag_e"], p_warg)).T
align.index = [next(v for v, a in AUDITED.items() if a == name) for name in align.index]
table = table.join(align)
table["stage"] = [VARIANT_SOURCES[v][0] for v in table.index]
table.index = [VARIANT_SOURCES[v][1] for v in table.index]
table.index.name = "variant"
table.drop(columns=["stage"]).round(3)

# %% [markdown]
# ## The headline outcome per variant
# Left: the generator's mean token log-probability of the gold answer under each variant's context
# (higher = the context helps the correct answer more). Right: the paired difference of each method
# against dense retrieval with the same number of passages; a bar whose interval crosses 0 shows no
# difference at this sample size.

# %%
colors = sns.color_palette(plots.PALETTE, 5)
stage_color = {s: colors[i] for i, s in enumerate(["03_rag_baselines", "05_selector_training", "06_rationale_distillation", "07_figret"])}
order = table.sort_values("gold_logprob").index
fig, axes = plt.subplots(1, 2, figsize=(12, 0.42 * len(table) + 1.6), gridspec_kw={"width_ratios": [1.1, 1]})
for y, name in enumerate(order):
    row = table.loc[name]
    axes[0].errorbar(row.gold_logprob, y, xerr=[[row.gold_logprob - row.gold_logprob_lo], [row.gold_logprob_hi - row.gold_logprob]], fmt="o", color=stage_color[row.stage], capsize=3)
axes[0].set(yticks=range(len(order)), yticklabels=order, xlabel="gold-answer mean token log-prob (95% CI)", title="How much each context supports the gold answer")
for ref, ls in (("no retrieval", ":"), ("oracle (gold passages)", "--")):
    axes[0].axvline(table.loc[ref, "gold_logprob"], color="grey", ls=ls, lw=1, label=ref)
handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=s.split("_", 1)[1].replace("_", " ")) for s, c in stage_color.items()]
axes[0].legend(handles=handles + axes[0].get_legend_handles_labels()[0], title="built by", loc="lower right", fontsize=7)
vs_dense = paired[paired.kind == "dense"].copy()
vs_dense["label"] = [f"{VARIANT_SOURCES[v][1]} − {VARIANT_SOURCES[r][1]}" for v, r in zip(vs_dense.variant, vs_dense.reference, strict=True)]
for y, row in enumerate(vs_dense.itertuples()):
    color = "tab:green" if row.lo > 0 else "tab:red" if row.hi < 0 else "grey"
    axes[1].errorbar(row.mean, y, xerr=[[row.mean - row.lo], [row.hi - row.mean]], fmt="o", color=color, capsize=3)
axes[1].axvline(0, color="black", lw=0.8)
axes[1].set(yticks=range(len(vs_dense)), yticklabels=vs_dense.label, xlabel="paired difference in gold-answer log-prob (95% CI)", title="Each method minus dense at the same k")
plots.save(fig, "figures/summary_variants.png")

# %% [markdown]
# ## What the alignment bought, and what it cost

# %%
audited = table.dropna(subset=["warg"])
same_context = audited  # the audit explains each variant's own context (GainRAG's one document has no WARG)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
sns.scatterplot(table, x="llm_evaluations", y="gold_logprob", hue="stage", style="stage", s=90, ax=axes[0], legend=False, palette=stage_color)
for name, row in table.iterrows():
    axes[0].annotate(name, (row.llm_evaluations, row.gold_logprob), fontsize=7, xytext=(4, 3), textcoords="offset points")
axes[0].set(xlabel="generator evaluations to build the variant (symlog)", ylabel="gold-answer log-prob", title="What each variant buys, and what it cost", xscale="symlog")
axes[0].set_xlim(-0.5, table.llm_evaluations.max() * 4)
sns.scatterplot(same_context, x="warg", y="gold_logprob", hue="stage", style="stage", s=90, ax=axes[1], legend=False, palette=stage_color)
for name, row in same_context.iterrows():
    axes[1].annotate(name, (row.warg, row.gold_logprob), fontsize=7, xytext=(4, 3), textcoords="offset points")
axes[1].set(
    xlabel=f"WARG@{p_warg:g} (RAG-E, higher = more misaligned)", ylabel="gold-answer log-prob",
    title="Misalignment vs outcome (audited contexts of two or more documents)",
)
plots.save(fig, "figures/summary_cost_alignment.png")

# %%
columns = [
    ("gold_logprob", "gold-answer log-prob [95% CI]"),
    ("d_reranker", "− relevance reranker, same k [95% CI]"),
    ("d_dense", "− dense, same k [95% CI]"),
    ("em", "EM [95% CI]"),
    ("f1", "F1 [95% CI]"),
    ("gold_recall", "gold passages shown"),
    ("warg", f"WARG@{p_warg:g}"),
    ("wasted_retrieval", "wasted retrieval"),
    ("noise_distraction", "noise distraction"),
    ("llm_evaluations", "LLM evals to build"),
]
headline = markdown_table(table.drop(columns=["stage"]), columns)
n_audit = metrics["rag_e"]["config"]["n_questions"]
caption = (
    f"{len(test)} test questions ({P.data.dataset}); the generator sees {P.selector.top_k} passage(s) in the GainRAG variants and "
    f"dense top-1, {P.radio.top_k} in RADIO and {P.rag.top_k} elsewhere; gold passages shown = mean share of a question's gold passages in the "
    f"generator's context; WARG and failure rates from the RAG-E audit of {n_audit} questions per variant (each variant's own "
    "context; – = not audited or one document); build cost excludes answering the test split. Gold-answer log-prob = the generator's mean token "
    "log-probability of the gold answer after the variant's prompt (best over gold answers); the two difference columns pair "
    "each method with the relevance reranker and with dense retrieval showing the same number of passages (GainRAG: the "
    "relevance reranker on the same candidates, and dense top-1). Generated by stage 09_summary."
)
gate_line = failed_gates_text(gates)
Markdown(gate_line + "\n\n" + headline + "\n" + caption)

# %% tags=["findings"]
d = paired.set_index(["variant", "reference"])


def says(v: str, ref: str) -> str:
    return verdict(d.loc[(v, ref)].to_dict(), VARIANT_SOURCES[v][1], VARIANT_SOURCES[ref][1])


aligned = audited.loc[audited.index.isin(["GainRAG", "RADIO", "FiGRet"])]
relevance_only = audited.loc[audited.index.isin(["BM25 top-k", "dense top-k", "relevance reranker"])]
mde = paired[(paired.kind != "retrieval") & (paired.mde > 0)].mde  # identical contexts (mde 0) say nothing about power
Markdown(
    gate_line
    + " **The study's answer**, on the gold-answer log-likelihood, paired over the same questions: "
    + f"{says('oracle', 'no_retrieval')}; {says('dense', 'no_retrieval')}. "
    + f"Against dense retrieval at the same number of passages: {says('reranker', 'dense')}; {says('gainrag', 'dense_top1')}; "
    f"{says('radio', 'dense')}; {says('figret', 'dense')}. Against the relevance reranker: {says('gainrag', 'no_distillation')}; "
    f"{says('radio', 'reranker')}; {says('figret', 'reranker')}. With {len(test)} test questions the smallest difference these paired "
    f"comparisons detect with 80% power is {mde.min():.3f}–{mde.max():.3f} nats per token, against an oracle − no-retrieval gap of "
    f"{d.loc[('oracle', 'no_retrieval'), 'mean']:+.3f}. Token F1 is {table.loc['no retrieval', 'f1']:.3f} without passages and "
    f"{table.loc['oracle (gold passages)', 'f1']:.3f} with the gold ones. "
    f"Across the audited variants the retriever's top document is not among the generator's two most used in "
    f"{audited.wasted_retrieval.min():.0%}–{audited.wasted_retrieval.max():.0%} of questions (wasted retrieval), and the generator's "
    f"most used document sits below the retriever's top two in {audited.noise_distraction.min():.0%}–{audited.noise_distraction.max():.0%} "
    "(noise distraction); the RAG-E paper reports 47–67% and 48–66%. "
    f"The aligned variants' mean WARG@{p_warg:g} is {aligned.warg.mean():.3f} against {relevance_only.warg.mean():.3f} for the "
    f"relevance-only ones (means of variant means; {n_audit} audited questions per variant; paired per-variant intervals in the stage-08 "
    "report). Building the aligned "
    f"variants cost {int(table.loc['GainRAG', 'llm_evaluations']):,} (GainRAG), {int(table.loc['RADIO', 'llm_evaluations']):,} "
    f"(RADIO) and {int(table.loc['FiGRet', 'llm_evaluations']):,} (FiGRet) generator evaluations; the relevance reranker needs none."
)

# %%
summary = {
    "variants": {
        name: {k: (None if pd.isna(v) else (int(v) if k in ("n", "llm_evaluations", "llm_tokens") else round(float(v), 4))) for k, v in row.drop("stage").items()}
        | {"stage": row.stage}
        for name, row in table.iterrows()
    },
    "paired_gold_logprob": paired.round(4).to_dict(orient="records"),
    "validity": {"gates": gates, "failed": [g for g, v in gates.items() if not v.get("passed", False)]},
    "warg_p": p_warg,
    "n_test": len(test),
    "n_audited": n_audit,
}
artifacts.SUMMARY_METRICS.write(summary)
artifacts.HEADLINE.write(headline + "\n" + caption + "\n")
# wall times go to the README only, never into the report: they change from run to run
_ = inject_readme("README.md", timings_table(), name="timings")
_ = inject_readme("README.md", gate_line + "\n\n" + headline + "\n" + caption + "\n\n![variants](figures/summary_variants.png)\n![cost and alignment](figures/summary_cost_alignment.png)\n")

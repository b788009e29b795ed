# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · Summary: does aligning the retriever to the generator pay off?
#
# Every variant of the study answered the same test questions with the same generator. This
# notebook puts them side by side: the headline outcome, the generator's log-likelihood of the gold
# answer under each variant's context, with paired differences against the relevance reranker and
# dense retrieval at the same number of passages; answer quality (EM/F1, 95% bootstrap intervals); how many
# gold passages the generator was shown, how misaligned retriever and generator are by RAG-E's
# measures (WARG, wasted retrieval, noise distraction; stage 10), and what each variant cost to
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
import seaborn as sns
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.core.verdicts import describe
from ragalign.report import figures
from ragalign.report.seam import powered_block, seam_curve_block
from ragalign.report.summary import says
from ragalign.stages import summary as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)
table, paired, p_warg, test = r.table, r.paired, r.p_warg, r.test
table.drop(columns=["stage"]).round(3)

# %% [markdown]
# ## Which side of the seam gains more from the same questions (stage 14)
# Every learner, retriever side and reader side, trained on the same n questions and measured by its gain
# over its own start on the test questions.

# %%
Markdown(seam_curve_block(r.seam_curve))

# %% [markdown]
# ## Which side of the seam: the key rows on fresh questions (stage 13)
# No retrieval, the gold passages, dense and the best retriever-side learner, under the untuned generator
# and the tuned reader, on questions no model of the study trained, tuned or was selected on; each
# comparison with its paired interval and whether this sample could have called it equivalent.

# %%
Markdown(powered_block(r.powered))

# %% [markdown]
# ## The headline outcome per variant
# Left: the generator's mean token log-probability of the gold answer under each variant's context
# (higher = the context helps the correct answer more). Right: the paired difference of each method
# against dense retrieval with the same number of passages; a bar whose interval crosses 0 shows no
# difference at this sample size.

# %%
_ = figures.headline_figure(table, paired, "figures/summary_variants.png")

# %% [markdown]
# ## What the alignment bought, and what it cost

# %%
audited = table.dropna(subset=["warg"])  # the audit explains each variant's own context (GainRAG's one document has no WARG)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
sns.scatterplot(table, x="llm_evaluations", y="gold_logprob", hue="stage", style="stage", s=90, ax=axes[0], legend=False, palette=figures.stage_colors())
plots.annotate_points(axes[0], table, "llm_evaluations", "gold_logprob")
axes[0].set(xlabel="generator evaluations to build the variant (symlog)", ylabel="gold-answer log-prob", title="What each variant buys, and what it cost", xscale="symlog")
axes[0].set_xlim(-0.5, table.llm_evaluations.max() * 4)
sns.scatterplot(audited, x="warg", y="gold_logprob", hue="stage", style="stage", s=90, ax=axes[1], legend=False, palette=figures.stage_colors())
plots.annotate_points(axes[1], audited, "warg", "gold_logprob")
axes[1].set(
    xlabel=f"WARG@{p_warg:g} (RAG-E, higher = more misaligned)", ylabel="gold-answer log-prob",
    title="Misalignment vs outcome (audited contexts of two or more documents)",
)
plots.save(fig, "figures/summary_cost_alignment.png")

# %%
Markdown(r.gate_line + "\n\n" + r.headline + "\n" + r.caption)

# %% tags=["findings"]
m = r.margin
mde_lo, mde_hi = r.mde_range
ranges = r.failure_ranges  # stage 10's, the ranges its report quotes
warg_key = f"warg_ext@{p_warg:g}"
Markdown(
    r.gate_line
    + " **The study's answer**, on the gold-answer log-likelihood, paired over the same questions (equivalence margin "
    + f"±{m:g} nats). Against dense retrieval at the same number of passages: {says(paired, 'reranker', 'dense', m)}; "
    f"{says(paired, 'gainrag', 'dense_top1', m)}; {says(paired, 'radio', 'dense', m)}; {says(paired, 'figret', 'dense', m)}. "
    f"Against the relevance reranker at the same k: {says(paired, 'gainrag', 'no_distillation', m)}; {says(paired, 'radio', 'reranker', m)}; "
    f"{says(paired, 'figret', 'reranker', m)}. With {len(test)} test questions the smallest difference these paired comparisons "
    f"detect with 80% power is {mde_lo:.3f}–{mde_hi:.3f} nats per token. For scale: {says(paired, 'oracle', 'no_retrieval')}; "
    f"{says(paired, 'dense', 'no_retrieval')}. "
    f"Secondary measures: token F1 is {table.loc['no retrieval', 'f1']:.3f} without passages and "
    f"{table.loc['oracle (gold passages)', 'f1']:.3f} with the gold ones. "
    + (f"Across the {len(ranges['variants'])} audited variants the retriever's top document is not among the generator's two most used in "
       f"{ranges['wasted']['lo']:.0%}–{ranges['wasted']['hi']:.0%} of questions (wasted retrieval), and the generator's "
       f"most used document sits below the retriever's top two in {ranges['noise']['lo']:.0%}–{ranges['noise']['hi']:.0%} "
       "(noise distraction; stage 10); the RAG-E paper reports 47–67% and 48–66%. " if ranges.get("wasted") else "")
    + (f"Extrapolated WARG@{p_warg:g}, paired with dense top-k on the same {r.n_audit} audited questions (stage 10): "
       + "; ".join(describe(block[warg_key], v, "dense top-k", digits=2) for v, block in r.audit_paired.items() if warg_key in block) + ". "
       if r.audit_paired else "")
    + "Building the aligned "
    f"variants cost {int(table.loc['GainRAG', 'llm_evaluations']):,} (GainRAG), {int(table.loc['RADIO', 'llm_evaluations']):,} "
    f"(RADIO) and {int(table.loc['FiGRet', 'llm_evaluations']):,} (FiGRet) generator evaluations; the relevance reranker needs none."
)

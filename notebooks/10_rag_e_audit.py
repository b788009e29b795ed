# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · RAG-E audit: does the generator use what the retriever ranks high?
#
# RAG-E (arXiv 2601.21803) audits a RAG pipeline from both ends. For the **retriever** it explains
# the query-document score with Integrated Gradients (IG) over the word embeddings. For the
# **generator** it treats the documents a variant shows it as players. Each coalition gets two
# values, read from one pass over its prompt: **support**, how strongly the generator still
# supports *its own answer* (the cleaned answer it gave with all documents; mean token probability,
# `rag_e.value`), RAG-E's value; and **utility**, the mean token log-probability of the *gold*
# answer, whose value with all documents is the study's sensitive outcome. Ordering documents by
# support-Shapley value gives the generator's ranking; **WARG** measures the rank-biased gap between
# it and the retriever's ranking, and two failure modes count how often the generator ignores the
# retriever's top document (*wasted retrieval*) or relies on one the retriever ranked low (*noise
# distraction*). Every variant is audited on the context it actually passes to the generator (top
# `rag.top_k`, RADIO's `radio.top_k`, GainRAG's `selector.top_k`), on the same `rag_e.n_questions`
# test questions; a seeded shuffle of the documents on `rag_e.shuffled_questions` of them is the
# position control. A one-document game (GainRAG) has one Shapley value, v({d}) − v(∅); its rankings
# agree trivially, so its WARG and failure modes are *not applicable*, not perfect.
#
# How many coalitions the Monte-Carlo estimators need is measured offline in
# `bench/shapley_convergence.py` (full value tables, every estimator by look-up).
# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}
selector: dict = {}
radio: dict = {}
rag_e: dict = {}

# %%
import pandas as pd
from IPython.display import Markdown

from ragalign.audit import figures, games
from ragalign.core import params, plots
from ragalign.core.verdicts import describe
from ragalign.stages import rag_e_audit as stage

P = params.from_namespace(globals())
E = P.rag_e
plots.setup()
r = stage.run(P)
test, audited, tops, summary, paired, utility, gain_link, ig, ig_table = r.test, r.audited, r.tops, r.summary, r.paired, r.utility, r.gain_link, r.ig, r.ig_table
p_mid = stage.mid_p(E.warg_p)

fmt = stage.interval_text


# %% [markdown]
# ## The variants
#
# All six variants belong to the default pipeline. A variant whose stage has not produced its
# rankings (or model) is listed here as missing, never dropped silently.

# %%
r.status

# %%
missing = r.status[~r.status.available]
Markdown(
    "All six variants are available."
    if missing.empty
    else f"**Not audited ({len(missing)} of {len(r.status)}):** "
    + "; ".join(f"`{m.variant}` (stage {m.stage} has not produced {m.missing})" for m in missing.itertuples())
)

# %% [markdown]
# ## Generator attribution
#
# First the answer each variant's generator gives with its documents (the answering stages' own
# cached call, so no new decoding), then both values of every planned coalition of every game, over
# a prefix tree, in one cached call.

# %%
Markdown(
    f"{r.n_games} games ({len(audited)} variants × {len(test)} questions, plus the shuffled control on {r.n_shuffled_questions} of them); "
    + ", ".join(f"{m} Shapley over {len(masks)} coalitions for {k}-document games" for k, (m, _, masks) in r.plans.items())
    + f": {r.n_distinct_prompts} distinct coalition prompts, each scored once for every answer asked of it "
    f"({r.evaluations} (prompt, answer) evaluations requested, cache hits included)."
)

# %%
pd.DataFrame(
    [
        {
            "variant": v,
            "order": order,
            "questions": len(r.align[(r.align.variant == v) & (r.align.order == order)]),
            f"WARG@{p_mid:g}": fmt(s[f"warg_truncated@{p_mid:g}"]),
            f"WARG_ext@{p_mid:g}": fmt(s[f"warg_ext@{p_mid:g}"]),
            "wasted retrieval": fmt(s["wasted"]),
            "noise distraction": fmt(s["noise"]),
            "Spearman": fmt(s["spearman"]),
        }
        for (v, order), s in summary.items()
    ]
)

# %% [markdown]
# Paired over the same questions: each variant minus dense retrieval (failure rates and
# extrapolated WARG; `mde` is the smallest difference detectable with 80% power).

# %%
r.paired_table

# %% [markdown]
# The position control, paired on the same (shuffled) questions: each variant's failure rates with
# its documents shuffled minus the same questions in retriever order, and the mean of those
# differences over the variants.

# %%
r.orders_table

# %% [markdown]
# ## Which documents helped the correct answer?
# Utility is the gold answer's mean token log-probability. Per variant: its value with all the
# variant's documents and with none, and how often the document with the highest utility-Shapley
# value is a gold passage. Then GainRAG's open question: does a document's gain *alone*
# (v({d}) − v(∅)) predict its Shapley value *in the combination*?

# %%
pd.DataFrame(
    {v: {"k": u["k"], "utility, all documents": fmt(u["utility_full"]), "utility, none": fmt(u["utility_empty"]), "top document is gold": fmt(u["top_utility_document_is_gold"])} for v, u in utility.items()}
).T

# %%
_ = figures.gain_vs_shapley_figure(r.rows, gain_link["spearman_pooled"], "figures/rag_e_gain_vs_shapley.png")

# %% [markdown]
# ## Rank against rank
#
# Each cell: the fraction of questions in which the document at retriever rank *i* (rows) has
# generator rank *j* (columns), documents in the original order. A diagonal means alignment.

# %%
_ = plots.rank_heatmaps({v: m for v, m in r.confusion.items() if len(m) >= 2}, "figures/rag_e_rank_heatmaps.png")

# %% [markdown]
# ## WARG as a function of p
#
# Solid: WARG as RAG-E defines it (truncated at depth `k`; identical rankings still score `p^k`,
# the grey floor). Dashed: the extrapolated form (1 − RBO_ext), which is 0 for identical and 1 for
# disjoint rankings. Lower is better aligned.

# %%
_ = figures.warg_figure(summary, E.warg_p, P.rag.top_k, "figures/rag_e_warg.png")

# %% [markdown]
# ## Retriever attribution: Integrated Gradients
#
# IG of the retriever's query-document score (bi-encoder cosine or cross-encoder logit) for the
# top document of the first `rag_e.ig_questions` questions, with `rag_e.ig_steps` steps and the
# `rag_e.ig_baseline` token at every non-special position. Completeness: the attributions should sum
# to score − baseline score. BM25 is a bag-of-words count, not a differentiable function of token
# embeddings, so it gets no IG.

# %%
ig_table.round(4) if not ig_table.empty else Markdown("No differentiable variant available.")

# %%
ig_variants = [v.name for v in audited if any(key[0] == v.name for key in ig)]
_ = figures.ig_token_figure(ig, ig_variants, test.qid.iloc[0], test.question.iloc[0], "figures/rag_e_ig_tokens.png")

# %% [markdown]
# ## The audit table
#
# WARG and failure rates (support values, original order) next to each variant's gold-answer
# log-likelihood with all its documents (utility) and the EM/F1 of its answers.

# %%
r.audit_table

# %% tags=["findings"]
ranges = r.metrics["failure_ranges"]  # stage 11 quotes the same ranges
orig, w, n = ranges["variants"], ranges["wasted"], ranges["noise"]
ig_gap = r.ig_median_gap
control = r.orders.get(games.ALL_VARIANTS)
not_applicable = [v for v in tops if v not in orig]
Markdown(
    f"Across the {len(orig)} variants with at least two documents ({len(test)} test questions each), the generator ignores the "
    f"retriever's top document (generator rank > 2) in {w['lo']:.0%}–{w['hi']:.0%} of questions and relies most on a document the "
    f"retriever ranked below 2 in {n['lo']:.0%}–{n['hi']:.0%} (RAG-E reports 47.4–66.7% and 48.1–65.9% with 7–12B generators); each rate's "
    f"95% interval is at most {max(w['widest_interval'], n['widest_interval']):.2f} wide. Paired with dense retrieval on the same questions, wasted retrieval: "
    + "; ".join(describe(paired[v]["wasted"], v, "dense", digits=2) for v in paired)
    + ". "
    + (f"With the documents shuffled, on the same {control['wasted']['n']} questions (mean over the variants of each question's "
       f"shuffled minus original rate): wasted retrieval {describe(control['wasted'], 'shuffled', 'retriever order', digits=2)}; "
       f"noise distraction {describe(control['noise'], 'shuffled', 'retriever order', digits=2)}. " if control else "")
    + (f"{', '.join(not_applicable)} show(s) the generator one document: WARG and failure modes do not apply. " if not_applicable else "")
    + f"On the gold answer, a document's gain alone and its Shapley value in context agree with Spearman "
    f"{gain_link['spearman_per_game']:.2f} per game ({gain_link['spearman_pooled']:.2f} pooled, {gain_link['games']} games): "
    + ("gain measured alone largely carries over to combinations. " if gain_link["spearman_per_game"] >= 0.7 else "gain measured alone only partly predicts a document's value in combination. ")
    + f"IG completeness: median relative gap {ig_gap:.3f} over {len(ig_table)} explained pairs."
)

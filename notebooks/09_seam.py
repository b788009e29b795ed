# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Which side of the seam to align?
#
# Every retriever-side variant (no retrieval, oracle, BM25, dense, the relevance reranker, GainRAG,
# RADIO, FiGRet) passes its own test contexts, exactly as its stage did, to two generators: the
# untuned one (the stages' own answers) and the reader tuned in stage 08. Paired per question on the
# gold-answer log-prob:
#
# - **tuned − untuned** on each retriever: does tuning the generator help, and with which retriever?
# - **each method − dense** under each reader: does retriever alignment start to matter once the reader reads?
# - **the interaction** (the method's gain over dense with the tuned reader minus the same with the untuned one).
#
# Then **both sides** (RA-DIT's "both" cell): GainRAG re-run with the tuned reader as its teacher: gain
# labels from it, a selector distilled from them, answers by it. Does a reader that reads give better
# teaching signals? The tuned reader never trained on the train questions it labels here (stage 08
# draws its questions from outside the study's train split), so its labels are not its memory.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}
gain: dict = {}
selector: dict = {}
reader: dict = {}

# %%
import pandas as pd
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.core.validity import describe_failures, describe_loss
from ragalign.core.verdicts import BEATS, describe, label
from ragalign.stages import seam as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)
paired, coupled, summary = r.paired, r.coupled, r.summary

# %% [markdown]
# ## The 2 × N table (gold-answer log-prob; differences paired per test question, with 95% intervals)

# %%
def cell(d):
    return "–" if not isinstance(d, dict) else f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] {label(d['verdict'])}"


r.table.map(lambda v: cell(v) if isinstance(v, dict) or v is None else round(v, 3))

# %%
long = pd.DataFrame(
    [{"variant": v, "reader": n, **summary[f"{n}:{v}"]["gold_logprob"]} for v in paired for n in ("untuned", "tuned")]
)
_ = plots.interval_bars(long.rename(columns={"reader": "metric"}), "Gold-answer log-prob: each retriever under both readers (95% CI)", "figures/seam_2xN.png", ylabel="mean token log-prob of the gold answer")

# %% [markdown]
# ## Both sides: GainRAG with the tuned reader as its teacher

# %%
pd.DataFrame({k: v for k, v in coupled.items() if k in ("best_gain_is_gold", "label_mean")}).T if coupled else "reader.coupled is off"

# %% tags=["findings"]
m, n = P.rag.equivalence_margin, summary["tuned:dense"]["n"]
helps = [v for v, p in paired.items() if p["tuned_minus_untuned"]["gold_logprob"]["verdict"] == BEATS]
methods = [v for v in paired if v not in ("no_retrieval", "oracle", "dense")]
under = "; ".join(describe(paired[v]["minus_dense_tuned"], v, "dense", m) for v in methods)
inter = "; ".join(f"{v} {label(paired[v]['interaction']['verdict'])} ({paired[v]['interaction']['mean']:+.3f})" for v in methods)
both = (
    f" Both sides: with the tuned reader as GainRAG's teacher, the best-gain passage is gold for {coupled['best_gain_is_gold']['tuned_teacher']:.2f} of the train "
    f"questions (untuned teacher: {coupled['best_gain_is_gold']['untuned_teacher']:.2f}; {describe(coupled['best_gain_is_gold']['difference'], 'the tuned teacher', 'the untuned one')}); "
    f"answered by the tuned reader, {describe(coupled['vs_uncoupled']['gold_logprob'], 'the coupled GainRAG', 'GainRAG labelled by the untuned generator', m)}; "
    f"{describe(coupled['vs_dense']['gold_logprob'], 'the coupled GainRAG', 'dense top-k', m)}; "
    f"{describe_loss(r.validity['coupled_selector_heldout_loss'], 'the coupled selector')}."
    if coupled else ""
)
Markdown(
    describe_failures(r.validity, "seam")
    + f"Gold-answer log-prob, paired over {n} test questions. The generator side: tuning the reader "
    f"{'raises it with ' + ', '.join(helps) if helps else 'raises it with no retriever'} (tuned minus untuned beats 0); with dense, "
    f"{describe(paired['dense']['tuned_minus_untuned']['gold_logprob'], 'the tuned reader', 'the untuned one', m)}. "
    f"The retriever side under the tuned reader, each method against dense: {under}. "
    f"Interaction (method − dense, tuned minus untuned reader): {inter}.{both}"
)

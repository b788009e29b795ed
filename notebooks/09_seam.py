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
# Every ranked retriever-side method (BM25, dense, the relevance reranker, GainRAG, RADIO, FiGRet) is
# cut at the same k, each of `seam.ks` (its own stage's ranking; at its own stage's k these are exactly
# the contexts that stage answered with), and passed with no retrieval and the oracle to two
# generators: the untuned one and the reader tuned in stage 08. No row compares one passage with five.
# Paired per question on the gold-answer log-prob:
#
# - **tuned − untuned** on each retriever: does tuning the generator help, and with which retriever?
# - **each method − dense at the same k** under each reader: does retriever alignment start to matter once the reader reads?
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
radio: dict = {}
seam: dict = {}

# %%
import pandas as pd
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.core.artifacts import seam_variant
from ragalign.core.validity import describe_failures, describe_loss
from ragalign.core.verdicts import BEATS, describe, label
from ragalign.report.seam import radit_markdown
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
# ## RA-DIT's 2 × 2 at the largest k
#
# Each learner's contexts with the untuned generator (retriever alone), dense contexts with the tuned
# reader (reader alone), the learner's contexts with the tuned reader (both), every cell paired per
# question against dense read by the untuned generator; the interaction is both minus each alone.

# %%
Markdown(radit_markdown({"ks": P.seam.ks, "paired": paired, "coupled": coupled}, max(P.seam.ks)))

# %% [markdown]
# ## Both sides: GainRAG with the tuned reader as its teacher

# %%
pd.DataFrame({k: v for k, v in coupled.items() if k in ("best_gain_is_gold", "label_mean")}).T if coupled else "reader.coupled is off"

# %% tags=["findings"]
m, n, ks = P.rag.equivalence_margin, summary[f"tuned:{seam_variant('dense', P.seam.ks[0])}"]["n"], P.seam.ks
helps = [v for v, p in paired.items() if p["tuned_minus_untuned"]["gold_logprob"]["verdict"] == BEATS]
methods = [name for name, *_ in stage.RANKED if name != stage.REFERENCE]
generator = "; ".join(f"with dense top-{k}, {describe(paired[seam_variant('dense', k)]['tuned_minus_untuned']['gold_logprob'], 'the tuned reader', 'the untuned one', m)}" for k in ks)
under = " ".join(
    f"At k = {k}: " + "; ".join(describe(paired[seam_variant(v, k)]["minus_dense_tuned"], f"{v} top-{k}", f"dense top-{k}", m) for v in methods) + "." for k in ks
)
inter = "; ".join(f"{v}@{k} {label(paired[seam_variant(v, k)]['interaction']['verdict'])} ({paired[seam_variant(v, k)]['interaction']['mean']:+.3f})" for k in ks for v in methods)
both = (
    f" Both sides: with the tuned reader as GainRAG's teacher, the best-gain passage is gold for {coupled['best_gain_is_gold']['tuned_teacher']:.2f} of the train "
    f"questions (untuned teacher: {coupled['best_gain_is_gold']['untuned_teacher']:.2f}; {describe(coupled['best_gain_is_gold']['difference'], 'the tuned teacher', 'the untuned one')}); "
    + "; ".join(
        f"at k = {k}, answered by the tuned reader, {describe(coupled['vs_uncoupled'][str(k)]['gold_logprob'], 'the coupled GainRAG', 'GainRAG labelled by the untuned generator', m)} "
        f"and {describe(coupled['vs_dense'][str(k)]['gold_logprob'], 'it', f'dense top-{k}', m)}" for k in ks
    )
    + f"; {describe_loss(r.validity['coupled_selector_heldout_loss'], 'the coupled selector')}."
    if coupled else ""
)
Markdown(
    describe_failures(r.validity, "seam")
    + f"Gold-answer log-prob, paired over {n} test questions. The generator side: tuning the reader "
    f"{'raises it with ' + ', '.join(helps) if helps else 'raises it with no retriever'} (tuned minus untuned beats 0); {generator}. "
    f"The retriever side under the tuned reader, each method against dense at the same k. {under} "
    f"Interaction (method − dense, tuned minus untuned reader): {inter}.{both}"
)

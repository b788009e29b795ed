# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13 · The seam's key rows, powered
#
# Stage 09 pairs 100 test questions: enough to see large differences, too few to call two variants
# equivalent within the 0.1-nat margin (its smallest detectable differences run 0.13-0.45 nats). Here
# the rows that carry the headline are scored again on `powered.n_questions` **fresh** benchmark
# questions, outside the study's splits and the readers' training sets: no retrieval, the gold
# passages, dense at each of `seam.ks`, and the retriever-side learner stage 09 found best against
# dense (`powered.learner`; stage 09's test questions chose it, these confirm it), each under the
# untuned generator and the tuned reader. The outcome is the gold-answer log-prob alone (no reply is
# decoded: a third of answering's cost). Every comparison ends as beats, worse, equivalent within the
# margin, or not told apart, and says whether this sample could have called it equivalent.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}
gain: dict = {}
selector: dict = {}
radio: dict = {}
seam: dict = {}
powered: dict = {}

# %%
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.report.figures import powered_figure
from ragalign.report.seam import powered_lead, powered_markdown
from ragalign.stages import powered_seam as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)

# %% [markdown]
# ## Every key comparison, paired per question (95% intervals; shaded: the equivalence margin)

# %%
_ = powered_figure(r.metrics, "figures/powered_seam.png")

# %%
Markdown(powered_markdown(r.metrics))

# %% [markdown]
# ## What it cost
# Scoring without decoding, per fresh question, in generator forwards and tokens (and the learner's own
# ranking cost, e.g. GainRAG's pseudo-passages).

# %%
r.metrics["cost"]

# %% tags=["findings"]
Markdown(powered_lead(r.metrics))

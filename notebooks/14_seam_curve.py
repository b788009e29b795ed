# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14 · The seam at equal budgets: which side gains more from the same questions?
#
# The study's headline compares learners that saw different budgets: the reader trained on 500
# questions, the retriever side on 200. Here every learner trains on the same n questions, for each n of
# `seam_curve.sizes` (nested sets: the study's train split first, then fresh benchmark questions outside
# every other set), and is measured by what it gains over its own start on the same test questions:
# the retriever-side learners' top-k against dense top-k (where each starts), read by the untuned
# generator; the tuned reader against the untuned generator, on dense top-k. For the reader also its
# gain with the gold passages and with none: a reader can fit what its retriever returns (and the
# benchmark's answer form) without learning to read, and only the growth of the gold − none gap tells.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}
gain: dict = {}
selector: dict = {}
radio: dict = {}
reader: dict = {}
seam: dict = {}
powered: dict = {}
seam_curve: dict = {}

# %%
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.report.figures import seam_curve_figures
from ragalign.report.seam import seam_curve_lead, seam_curve_markdown
from ragalign.stages import seam_curve as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)

# %% [markdown]
# ## Gain over its own start against training questions (paired 95% intervals as bands)

# %%
_ = seam_curve_figures(r.metrics, "figures/seam_curve.png", "figures/seam_curve_reading.png")

# %% [markdown]
# ## Every point, and what its labels cost in generator calls per training question

# %%
Markdown(seam_curve_markdown(r.metrics))

# %% tags=["findings"]
Markdown(seam_curve_lead(r.metrics))

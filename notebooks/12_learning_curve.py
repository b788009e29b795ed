# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12 · The relevance reranker's learning curve: the control that must learn
#
# Relevance labels on HotpotQA are free (the supporting facts), so the relevance reranker can learn
# from far more questions than the retriever-side alignment methods get. Does it learn at all, and
# from how many questions? Each point trains it on the first `curve.sizes` questions of the
# benchmark outside the study's splits, twice: with **the study's trainer** (the one every reranker
# goes through, keep rule included) and with **sentence-transformers** (its bi-encoder fine-tuned with
# MultipleNegativesRankingLoss at the library's defaults), the reference that tells a task that cannot
# be learned from a trainer that fails. Both rank the same `curve.eval_questions` held-out questions'
# dense candidates, paired per question with dense.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}
curve: dict = {}

# %%
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.report import control
from ragalign.stages import learning_curve as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)

# %% [markdown]
# ## Ranking the held-out questions, against dense
# The reciprocal rank of the first gold passage, reranker minus dense, per held-out question; the band
# is the paired 95% interval. The study's trainer restores dense where it does not beat it on its own
# held-out share (`training.val_fraction`), so a point at exactly 0 is a reranker that did not move.

# %%
_ = plots.learning_curve(r.points, "rr", "reciprocal rank − dense", "Relevance reranker vs dense, held-out questions", "figures/curve_relevance_rr.png")

# %%
_ = plots.learning_curve(r.points, "gold_at_1", "gold first − dense", "Gold passage ranked first, vs dense", "figures/curve_relevance_gold_at_1.png")

# %%
r.points

# %% tags=["findings"]
Markdown(control.findings(r.points, r.dense, r.answers))

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Prepare the data
#
# The raw benchmark (restored by `dvc pull` from `data.dvc`) becomes the study's two tables:
# the **questions** (a seeded train/test sample, each with its gold answers and gold passage ids)
# and the **passage corpus** every retriever searches. `data.dataset` picks the benchmark and
# `data.path` can point the reader at any other file in the same format.

# %% tags=["parameters"]
data: dict = {}
models: dict = {}

# %%
from IPython.display import Markdown

from ragalign.core import params
from ragalign.stages import prepare_data as stage

P = params.from_namespace(globals())
r = stage.run(P)
stats = r.stats

# %% tags=["findings"]
Markdown(
    f"**{P.data.dataset}**: {stats['questions_available']:,} questions and a corpus of {stats['passages']:,} "
    f"passages (mean {stats['mean_passage_words']} words). The study samples {stats['train']} train and "
    f"{stats['test']} test questions (seed {P.data.seed}); each has {stats['gold_passages_per_question']} "
    "gold passages on average."
)

# %%
r.questions.head(5)[["qid", "split", "question", "answers", "gold_pids"]]

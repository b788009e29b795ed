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

from ragalign.core import artifacts, params
from ragalign.core.data import read_benchmark, split_questions

P = params.from_namespace(globals())
questions, passages = read_benchmark(P.data.dataset, P.data.path)
sample = split_questions(questions, P.data.n_train, P.data.n_test, P.data.seed)

# %% tags=["findings"]
gold_per_q = sample.gold_pids.map(len)
stats = {
    "dataset": P.data.dataset,
    "questions_available": len(questions),
    "passages": len(passages),
    "train": int((sample.split == "train").sum()),
    "test": int((sample.split == "test").sum()),
    "gold_passages_per_question": round(float(gold_per_q.mean()), 3),
    "mean_passage_words": round(float(passages.text.str.split().map(len).mean()), 1),
}
Markdown(
    f"**{P.data.dataset}**: {stats['questions_available']:,} questions and a corpus of {stats['passages']:,} "
    f"passages (mean {stats['mean_passage_words']} words). The study samples {stats['train']} train and "
    f"{stats['test']} test questions (seed {P.data.seed}); each has {stats['gold_passages_per_question']} "
    "gold passages on average."
)

# %%
sample.head(5)[["qid", "split", "question", "answers", "gold_pids"]]

# %%
artifacts.QUESTIONS.write(sample)
artifacts.PASSAGES.write(passages)
artifacts.DATA_METRICS.write(stats)

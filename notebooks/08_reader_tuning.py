# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Reader tuning: align the generator to what the retriever returns
#
# The retriever-side methods (04–07) teach the retriever what the generator needs. This step works
# the other side of the seam (RA-DIT, RAFT): it fine-tunes the generator on the contexts the study
# really shows, each training question's **dense top-k** in the study's prompt, a share `reader.p_no_gold`
# of them with the gold passages taken out (RAFT's P), the loss on the answer tokens only. The reader
# needs no LLM labels, so it may use any non-test question of the benchmark: the **tuned** reader trains
# on `reader.n_questions` of them outside the study's train split (stage 09 makes it GainRAG's teacher on
# the train questions, which it must not have seen), plus `reader.extra_questions` of another
# reading-comprehension benchmark (`reader.extra_dataset`). A second reader is tuned on only the
# `data.n_train` questions every retriever-side method learns from (the **fair budget**).
#
# Both are kept only where they beat the untuned generator on held-out training questions. Then the
# test questions are answered with no passage, with the gold passages and with dense top-k. The
# headline is the gold-answer log-prob, paired per question. The gold − no-retrieval gap says whether
# tuning taught the reader to **read** (the gap grows) or only taught it **answers** (the no-retrieval
# row rises as much).

# %% tags=["parameters"]
data: dict = {}
models: dict = {}
retrieval: dict = {}
rag: dict = {}
training: dict = {}
reader: dict = {}

# %%
import pandas as pd
from IPython.display import Markdown

from ragalign.core import params, plots
from ragalign.core.rag import em_f1_table
from ragalign.core.validity import describe_failures, describe_loss
from ragalign.core.verdicts import describe
from ragalign.stages import reader_tuning as stage

P = params.from_namespace(globals())
plots.setup()
r = stage.run(P)
summary, paired, reading, targets, validity = r.summary, r.tuned_vs_untuned, r.reading, r.targets, r.validity

# %% [markdown]
# ## The training sets
# Where each reader's training questions come from, and how many show a gold passage among their
# passages (after RAFT's P took it out of some).

# %%
r.training_sets

# %% [markdown]
# ## Training: answer loss on the training questions, and on the held-out ones

# %%
_ = plots.training_curve(r.curves, "Reader fine-tuning: answer-token loss", "mean token NLL of the answer", "figures/reader_curve.png", hue="reader")

# %% [markdown]
# ## The test questions under each reader and context

# %%
em_f1_table(summary)

# %%
rows = [{"reader": n, "context": c, "metric": m, **paired[n][c][m]} for n in paired for c in paired[n] for m in ("gold_logprob", "em", "f1")]
pd.DataFrame(rows).set_index(["reader", "context", "metric"])[["mean", "lo", "hi", "mde", "verdict"]]

# %%
long = pd.DataFrame([{"variant": v.replace(":", "\n"), "metric": "gold log-prob", **s["gold_logprob"]} for v, s in summary.items()])
_ = plots.interval_bars(long, "Gold-answer log-prob by reader and context (95% CI)", "figures/reader_gold_logprob.png", ylabel="mean token log-prob of the gold answer")

# %% [markdown]
# ## Does it read? The gold − no-retrieval gap under each reader

# %%
pd.DataFrame({n: {k: v["mean"] for k, v in g.items()} | {f"{k} 95% CI": f"[{v['lo']:.3f}, {v['hi']:.3f}]" for k, v in g.items()} for n, g in reading.items()}).T

# %%
pd.DataFrame(targets).T

# %%
r.examples

# %% tags=["findings"]
k, m = P.rag.top_k, P.rag.equivalence_margin
t = paired["tuned"]


def target_text(name: str, unit: str = "") -> str:
    g = targets[name]
    return "met" if g["met"] else f"missed by {g['target'] - g['value']:.3f}{unit}" if isinstance(g["target"], float) else "missed"


fair = (
    f" The fair-budget reader ({r.timing['fair budget']['examples']} questions, the retriever-side methods' budget): with dense top-{k} "
    f"{describe(paired['fair budget']['dense']['gold_logprob'], 'it', 'the untuned generator', m)}."
    if "fair budget" in paired else ""
)
Markdown(
    describe_failures(validity, "reader")
    + f"{describe_loss(validity['tuned_heldout_loss'], 'the tuned reader')}. "
    f"Gold-answer log-prob, paired over the {summary['untuned:dense']['n']} test questions, tuned minus untuned generator: with dense top-{k} "
    f"{describe(t['dense']['gold_logprob'], 'the tuned reader', 'the untuned one', m)} (target +{stage.TARGETS['dense_gain_nats']} nats: {target_text('dense_gain_nats', ' nats')}); "
    f"with the gold passages {describe(t['oracle']['gold_logprob'], 'it', 'the untuned one', m)}; with no passage "
    f"{describe(t['no_retrieval']['gold_logprob'], 'it', 'the untuned one', m)}. "
    f"Does it read? The gold − no-retrieval gap is {reading['untuned']['gap']['mean']:.3f} nats untuned and {reading['tuned']['gap']['mean']:.3f} tuned; "
    f"{describe(reading['tuned']['gap_change'], 'the tuned gap', 'the untuned gap')} (target: an interval above 0: {target_text('reads')}). "
    f"EM with the gold passages: {summary['untuned:oracle']['em']['mean']:.2f} untuned, {summary['tuned:oracle']['em']['mean']:.2f} tuned "
    f"(target {stage.TARGETS['oracle_em']}: {target_text('oracle_em')}); with dense top-{k}: {summary['untuned:dense']['em']['mean']:.2f} and "
    f"{summary['tuned:dense']['em']['mean']:.2f}.{fair}"
)

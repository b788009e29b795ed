"""The sections of ``params.yaml``, one typed model per stage (or shared knob set): each key's type, range,
default and meaning. ``core.params`` composes them into :class:`~ragalign.core.params.Params` and checks
what spans sections."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DATASETS = ("hotpotqa", "squad", "nq_open")
# The names of ``shapley.ESTIMATORS`` (a test keeps them equal; not imported, so that a change to the
# estimators does not make every stage depend on them).
SHAPLEY_ESTIMATORS = ("exact", "kernelshap", "leverageshap", "permutation", "pmcshap")


class Section(BaseModel):
    """A params section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    dataset: Literal["hotpotqa", "squad", "nq_open"] = "hotpotqa"
    path: str | None = Field("data", description="the benchmarks' directory (data: the versioned ones) or another file in the dataset's format; a stage-01 dependency")
    n_train: int = Field(200, ge=1)
    n_test: int = Field(100, ge=1)
    seed: int = 13


# ``auto`` for a bf16 switch: on where the device runs bf16 natively (``ragalign.core.numerics``).
Bf16Switch = Literal["auto"] | bool


class ModelsParams(Section):
    generator: str = Field("smollm2-135m-instruct", min_length=1)
    encoder: str = Field("minilm-l6", min_length=1)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available, else cpu")
    dtype: Literal["auto", "bfloat16", "float32"] = Field("auto", description="auto: bfloat16 where the device runs it natively, else float32")

    def resolved_device(self) -> str:
        from ragalign.core.models import resolve_device

        return resolve_device(self.device)

    def resolved_dtype(self) -> str:
        from ragalign.core.numerics import resolve_dtype

        return resolve_dtype(self.dtype, self.resolved_device())


class ProbeParams(Section):
    repeats: int = Field(5, ge=1, description="stage 00's speed probe: the fastest of this many answers after a warm-up (the cost estimate's yardstick)")


class RetrievalParams(Section):
    k: int = Field(20, ge=1, description="passages retrieved per question")
    max_length: int = Field(128, ge=16, description="bi-encoder input tokens (MiniLM was trained at 128)")
    encode_batch_size: int = Field(64, ge=1)
    bf16_autocast: Bf16Switch = Field("auto", description="embed queries and passages in bf16 autocast (auto: where bf16 is native; bench/encode_precision.py)")


class RagParams(Section):
    top_k: int = Field(5, ge=1, description="passages shown to the generator")
    max_passage_tokens: int = Field(128, ge=8)
    max_new_tokens: int = Field(16, ge=1)
    n_bootstrap: int = Field(1000, ge=10)
    equivalence_margin: float = Field(0.1, gt=0, description="nats of mean gold-answer log-prob inside which two variants count as equivalent (their paired 95% interval lies within ±margin)")


class TrainingParams(Section):
    """The one training budget every reranker and retriever in the study gets."""

    epochs: int = Field(2, ge=1)
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(4, ge=1, description="question groups per optimiser step")
    group_size: int = Field(6, ge=2, description="passages per question group")
    max_length: int = Field(160, ge=16, description="cross-encoder input tokens (question + passage)")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    prior_temperature: Annotated[float, Field(gt=0)] | Literal["fit"] = Field(
        "fit", description="rerankers score dense cosine / prior_temperature + a learned correction (0 at start); fit: the temperature at which the prior best fits the training targets"
    )
    bf16_autocast: Bf16Switch = Field("auto", description="reranker training forwards/backwards in bf16 autocast (auto: where bf16 is native; bench/train_precision.py)")
    relevance_target: Literal["per_gold", "uniform"] = Field(
        "per_gold", description="the relevance reranker's target (rerank.relevance_groups): one gold passage per group against hard negatives, or every gold sharing it evenly (bench/relevance_control.py)"
    )
    seed: int = 7


class GainParams(Section):
    k: int = Field(7, ge=1, description="retrieved passages labelled per train question")
    alpha: float = Field(0.5, ge=0, description="weight of the contrastive (no-passage) term")
    pseudo_max_new_tokens: int = Field(128, ge=8)
    n_questions: int | None = Field(None, ge=1, description="train questions labelled (null: all)")


class SelectorParams(Section):
    top_n: int = Field(7, ge=1, description="retrieved passages the selector scores")
    top_k: int = Field(1, ge=1, description="passages passed to the generator")
    temperature: float = Field(1.0, gt=0, description="target = softmax(label / temperature)")


class RadioParams(Section):
    k: int = Field(20, ge=2, description="dense candidates ranked by rationale (train) and reranked (test)")
    mix: float = Field(0.5, ge=0, le=1, description="weight of minmax(rationale score) vs minmax(retrieval score)")
    neg_ranks: list[int] = Field(
        [3, 4, 6, 9, 13, 18], min_length=1, description="0-based ranks of negatives; filled/thinned to training.group_size - 1"
    )
    rationale_max_new_tokens: int = Field(64, ge=8)
    top_k: int = Field(5, ge=1, description="reranked passages passed to the generator")


class FigretParams(Section):
    rounds: int = Field(2, ge=1)
    k: int = Field(5, ge=2, description="passages judged per poorly served question")
    judge_batch: int = Field(16, ge=1)
    lr: float = Field(2e-5, gt=0)
    temperature: float = Field(0.05, gt=0)
    n_questions: int = Field(16, ge=1, description="train questions examined per round (seeded sample, the same every round)")
    n_negatives: int = Field(2, ge=1, description="hard negatives (or negative sets) per example")
    pool_k: int = Field(10, ge=1, description="test pool for per-round curves and ablations: union of the stage-02 dense top pool_k")
    ablations: bool = Field(True, description="train the one-round ablations (shuffled order, one objective at a time)")


class CurveParams(Section):
    """Stage 12: the relevance reranker trained on more and more benchmark questions (the control that must learn)."""

    sizes: list[Annotated[int, Field(ge=5)]] = Field([50, 100, 200, 400, 800], min_length=1, description="training questions per point (nested sets)")
    eval_questions: int = Field(200, ge=2, description="held-out questions every point is ranked on (the same for every point)")
    answer_sizes: list[int] = Field([400, 800], description="points whose rerankers also answer the test questions (a subset of sizes)")
    reference: bool = Field(True, description="also train sentence-transformers' bi-encoder on the same groups (core.reference_training)")
    seed: int = 5

    @model_validator(mode="after")
    def _answer_sizes_are_points(self) -> CurveParams:
        extra = sorted(set(self.answer_sizes) - set(self.sizes))
        if extra:
            raise ValueError(f"curve.answer_sizes {extra} are not in curve.sizes {self.sizes}")
        return self


class SeamParams(Section):
    """Stage 09: the 2 x N table, every ranked method cut at the same k."""

    ks: list[Annotated[int, Field(ge=1)]] = Field([1, 5], min_length=1, description="passages shown by every ranked method (each row pairs a method with dense at the same k)")


class PoweredParams(Section):
    """Stage 13: the seam's key rows on enough fresh questions that each ends as beats, worse, equivalent or inconclusive."""

    n_questions: int = Field(400, ge=2, description="benchmark questions outside the study's splits and the readers' training sets (none trains or tunes anything)")
    learner: Literal["auto", "reranker", "gainrag", "radio", "figret"] = Field(
        "auto", description="the retriever-side learner of the 2 x 2: auto = the one stage 09 found best against dense (tuned reader, largest seam.ks)")
    seed: int = 17


class SeamCurveParams(Section):
    """Stage 14: every learner on either side of the seam trained on the same n questions."""

    sizes: list[Annotated[int, Field(ge=4)]] = Field([100, 200, 400], min_length=1, description="training questions per point (nested: the study's train split first, then fresh questions)")
    learners: list[Literal["reranker", "gainrag", "radio", "reader"]] = Field(["reranker", "gainrag", "radio", "reader"], min_length=1)
    seed: int = 19


class ReaderParams(Section):
    """Generator alignment (``methods.reader``): the reader fine-tuned on the retriever's real top-k."""

    n_questions: int = Field(500, ge=2, description="benchmark questions outside the study's train and test splits the reader trains on (so the coupled GainRAG's teacher never trained on the questions it labels); held-out part: val_fraction")
    extra_dataset: Literal["hotpotqa", "squad", "nq_open"] = Field("squad", description="a reading-comprehension benchmark of the store (data/) whose questions may join the tuned reader's training set")
    extra_questions: int = Field(0, ge=0, description="how many of its questions join (each shown its gold passage among same-article distractors; bench/results/reader_data.json measures what they add)")
    p_no_gold: float = Field(0.2, ge=0, le=1, description="RAFT's P: share of training questions shown their dense top-k without the gold passages")
    tune: Literal["full", "lora", "top_half"] = Field("top_half", description="what is trained: every weight, LoRA adapters (peft) or the upper half of the decoder layers (bench/results/reader_tuning.json)")
    lora_r: int = Field(16, ge=1, description="LoRA rank (tune: lora)")
    lr: float = Field(5e-5, gt=0)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(4, ge=1, description="examples per optimiser step")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    evals_per_epoch: int = Field(1, ge=1)
    fair_budget: bool = Field(True, description="also tune a reader on only the data.n_train questions every retriever-side method learns from")
    coupled: bool = Field(True, description="re-run GainRAG with the tuned reader as its teacher (labels, selector, answers): the 'both sides' cell")
    seed: int = 11


class RagEParams(Section):
    n_questions: int = Field(50, ge=1, description="test questions audited per variant (the same for every variant)")
    shuffled_questions: int = Field(10, ge=0, description="of those, questions also audited with the documents shuffled (position control)")
    ig_steps: int = Field(50, ge=2)
    ig_baseline: Literal["unk", "pad", "mask", "zero"] = "unk"
    value: Literal["prob", "logprob"] = Field("prob", description="support value: mean token probability or log-probability of the generator's own answer")
    max_exact_subsets: int = Field(64, ge=2, description="exact Shapley while 2^k is at most this")
    estimator: str = Field("kernelshap", description="Shapley estimator beyond that (shapley.ESTIMATORS, e.g. kernelshap, leverageshap, permutation, pmcshap)")
    mc_evaluations: int = Field(128, ge=4, description="coalitions the estimator may evaluate per game")
    warg_p: list[float] = Field([0.5, 0.6, 0.7, 0.8, 0.9], min_length=1)
    ig_questions: int = Field(3, ge=0, description="questions per differentiable variant explained with Integrated Gradients")
    seed: int = Field(0, description="shuffled-order control and Monte-Carlo sampling")

    @model_validator(mode="after")
    def _estimator_known(self) -> RagEParams:
        name = self.estimator.partition(":")[0]
        if name not in SHAPLEY_ESTIMATORS:
            raise ValueError(f"rag_e.estimator={self.estimator!r} is not one of {list(SHAPLEY_ESTIMATORS)}")
        return self

    @model_validator(mode="after")
    def _p_in_range(self) -> RagEParams:
        bad = [p for p in self.warg_p if not 0 < p < 1]
        if bad:
            raise ValueError(f"warg_p values must lie in (0, 1), got {bad}")
        return self

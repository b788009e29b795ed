"""Cross-encoder rerankers and their listwise training (on the study's one trainer, ``core.training``).

Every reranker (the relevance baseline, the GainRAG selector, the RADIO reranker) **starts from the
ranking it re-ranks**: its score is the stage-02 dense similarity, scaled by
``1 / training.prior_temperature``, plus a learned cross-encoder correction whose head is zero at
initialisation. Before training it therefore reproduces the dense ranking exactly, and the trainer
keeps its best held-out weights only where they beat the untrained (= dense) scorer on held-out
questions (a paired interval of the per-question loss reduction above 0), and restores that start
otherwise: a reranker can only move away from dense where that helped beyond chance.

Every reranker is trained on *groups*: one query, ``group_size`` passages and a target distribution
over them. The loss is KL(target || softmax(scores)): a one-hot target is the usual contrastive
loss, a uniform target over gold passages is relevance training, softmax(gain labels) is GainRAG
distillation. Only the targets differ between methods, so the budget is the same by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers.modeling_outputs import SequenceClassifierOutput

from ragalign.core.io import write_json
from ragalign.core.models import device, load_encoder, load_encoder_tokenizer
from ragalign.core.numerics import resolve_autocast
from ragalign.core.retrieval import DenseEncoder
from ragalign.core.training import batched_values, fit, split_groups

if TYPE_CHECKING:
    from ragalign.core.params import TrainingParams


@dataclass(frozen=True)
class Group:
    """A training group: a query, its passages, and a target distribution over them."""

    qid: str
    query: str
    passages: tuple[str, ...]
    target: tuple[float, ...]


def kl_listwise_losses(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(scores)) of each group (row); rows of ``target`` sum to 1."""
    log_q = torch.log_softmax(scores, dim=-1)
    log_p = torch.log(target.clamp(min=1e-12))
    return (target * (log_p - log_q)).sum(-1)


def kl_listwise_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over groups of KL(target || softmax(scores)); rows of ``target`` sum to 1."""
    return kl_listwise_losses(scores, target).mean()


class MeanPoolScorer(torch.nn.Module):
    """The backbone plus a linear score on its mean-pooled token states.

    MiniLM (all-MiniLM-L6-v2) was trained to mean-pool, not to use [CLS]: scoring the mean-pooled
    state lets a small budget train a working cross-encoder (a fresh [CLS] classification head
    barely moved off the uniform loss in 80 steps). The head starts at zero, so training starts
    from the same place whatever the seed.
    """

    HEAD_FILE = "score_head.safetensors"

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(backbone.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    @property
    def config(self):
        return self.backbone.config

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.backbone.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None) -> SequenceClassifierOutput:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds
        ).last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return SequenceClassifierOutput(logits=self.head(pooled))

    def save_pretrained(self, path: str | Path) -> None:
        self.backbone.save_pretrained(path, safe_serialization=True)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(Path(path) / self.HEAD_FILE))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> MeanPoolScorer:
        head_file = Path(path) / cls.HEAD_FILE
        if not head_file.exists():
            raise FileNotFoundError(f"{path} is not a trained reranker: {cls.HEAD_FILE} is missing (re-run its stage)")
        model = cls(load_encoder(str(path)))
        model.head.load_state_dict(load_file(str(head_file)))
        return model


class CrossEncoder:
    """score(query, passage) = dense cosine / prior_temperature + a learned cross-encoder correction.

    The dense prior comes from the frozen packaged bi-encoder (the stage-02 retriever), or from the
    caller (``priors``: the stage-02 scores themselves, so that an untrained reranker reproduces the
    dense ranking bit for bit). The correction is the backbone run on the concatenated pair with a
    zero-initialised head, so it is exactly 0 before training.
    """

    CONFIG_FILE = "reranker.json"

    def __init__(self, name: str, max_length: int = 256, path: str | Path | None = None, prior_temperature: float = 0.05, prior_max_length: int = 128):
        self.name = name
        self.max_length = max_length
        self.prior_temperature = prior_temperature
        self.prior_max_length = prior_max_length
        self.tokenizer = load_encoder_tokenizer(name)
        self.model = (MeanPoolScorer(load_encoder(name)) if path is None else MeanPoolScorer.from_pretrained(path)).to(device())
        self._prior_encoder: DenseEncoder | None = None
        self._embedding: dict[str, np.ndarray] = {}

    def prior(self, queries: Sequence[str], passages: Sequence[str]) -> torch.Tensor:
        """Dense cosine similarity of each (query, passage) pair (frozen bi-encoder, embeddings memoised)."""
        if self._prior_encoder is None:
            self._prior_encoder = DenseEncoder(self.name, self.prior_max_length)
            self._prior_encoder.model.requires_grad_(False)
        new = list(dict.fromkeys(t for t in (*queries, *passages) if t not in self._embedding))
        if new:
            self._embedding.update(zip(new, self._prior_encoder.embed(new), strict=True))
        q = np.stack([self._embedding[t] for t in queries])
        p = np.stack([self._embedding[t] for t in passages])
        return torch.from_numpy((q * p).sum(-1)).to(device())

    def correction(self, queries: Sequence[str], passages: Sequence[str]) -> torch.Tensor:
        """The learned part of the score (0 before training)."""
        batch = self.tokenizer(
            list(queries), list(passages), padding=True, truncation="only_second", max_length=self.max_length, return_tensors="pt"
        ).to(device())
        return self.model(**batch).logits.squeeze(-1)

    def logits(self, queries: Sequence[str], passages: Sequence[str], priors: Sequence[float] | None = None) -> torch.Tensor:
        prior = self.prior(queries, passages) if priors is None else torch.tensor(np.asarray(priors, dtype=np.float32), device=device())
        return prior / self.prior_temperature + self.correction(queries, passages)

    @torch.no_grad()
    def score(self, queries: Sequence[str], passages: Sequence[str], batch_size: int = 64, desc: str | None = None, priors: Sequence[float | None] | None = None) -> np.ndarray:
        """Scores for (query, passage) pairs, in input order; ``priors`` gives known dense scores (None: compute)."""
        self.model.eval()
        known = np.array([np.nan if priors is None or priors[i] is None else float(priors[i]) for i in range(len(queries))], dtype=np.float32)
        missing = np.flatnonzero(np.isnan(known))
        if len(missing):
            known[missing] = self.prior([queries[i] for i in missing], [passages[i] for i in missing]).cpu().numpy()
        out = np.zeros(len(queries), dtype=np.float32)
        for start in tqdm(range(0, len(queries), batch_size), desc=desc, disable=desc is None, mininterval=5):
            sl = slice(start, start + batch_size)
            out[sl] = self.logits(queries[sl], passages[sl], known[sl]).float().cpu().numpy()
        return out

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        write_json(Path(path) / self.CONFIG_FILE, {"prior_temperature": self.prior_temperature, "prior_max_length": self.prior_max_length})

    @classmethod
    def load(cls, name: str, path: str | Path, max_length: int = 256) -> CrossEncoder:
        import json

        config = json.loads((Path(path) / cls.CONFIG_FILE).read_text())
        return cls(name, max_length, path=path, **config)


def _group_loss(model: CrossEncoder, groups: Sequence[Group]) -> torch.Tensor:
    return _group_losses(model, groups).mean()


def _group_losses(model: CrossEncoder, groups: Sequence[Group]) -> torch.Tensor:
    """The listwise KL of each group of a batch (one forward for the batch)."""
    sizes = {len(g.passages) for g in groups}
    assert len(sizes) == 1, "groups in a batch must have one size"
    size = sizes.pop()
    queries = [g.query for g in groups for _ in g.passages]
    passages = [p for g in groups for p in g.passages]
    scores = model.logits(queries, passages).view(len(groups), size)
    target = torch.tensor([g.target for g in groups], dtype=scores.dtype, device=scores.device)
    return kl_listwise_losses(scores, target)


def train_listwise(
    model: CrossEncoder,
    groups: Sequence[Group],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    val_fraction: float,
    seed: int,
    evals_per_epoch: int = 4,
    desc: str = "train",
    autocast: bool = False,
) -> pd.DataFrame:
    """Train ``model`` in place on groups with the study's one trainer (:func:`ragalign.core.training.fit`):
    the listwise KL loss, a seeded shuffle each epoch, the held-out loss ``evals_per_epoch`` times an
    epoch; returns the curve (step, epoch, split, loss), with each held-out group's loss at the start
    and with the kept weights in ``curve.attrs[training.HELDOUT]``."""
    return fit(
        model.model,
        groups,
        lambda batch: _group_loss(model, batch),
        None,  # the held-out loss: the mean of item_losses
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        val_fraction=val_fraction,
        seed=seed,
        evals_per_epoch=evals_per_epoch,
        autocast=autocast,
        desc=desc,
        item_losses=lambda held_out: batched_values(lambda batch: _group_losses(model, batch), held_out),
    )


PRIOR_TEMPERATURES = np.geomspace(0.01, 2.0, 81)  # the grid ``fit_prior_temperature`` searches (steps of 6.9%)


@torch.no_grad()
def fit_prior_temperature(model: CrossEncoder, groups: Sequence[Group]) -> float:
    """The temperature at which the dense prior alone best fits the groups' targets: the lowest mean
    listwise KL over :data:`PRIOR_TEMPERATURES`. It rescales the prior without reordering it, so the
    untrained reranker still ranks as dense does; too sharp a prior (relevance groups on HotpotQA: 1.89
    nats at 0.05 against 0.92 at 0.2, worse than a uniform score's 1.10) leaves the correction to spend
    its first steps undoing the scale instead of learning what dense misses."""
    by_size: dict[int, list[Group]] = {}
    for g in groups:
        by_size.setdefault(len(g.passages), []).append(g)
    loss = torch.zeros(len(PRIOR_TEMPERATURES), dtype=torch.float64)
    for size, same in by_size.items():
        prior = model.prior([g.query for g in same for _ in g.passages], [p for g in same for p in g.passages]).double().view(len(same), size)
        target = torch.tensor([g.target for g in same], dtype=torch.float64, device=prior.device)
        for i, t in enumerate(PRIOR_TEMPERATURES):
            loss[i] += kl_listwise_losses(prior / float(t), target).sum().cpu()
    return round(float(PRIOR_TEMPERATURES[int(loss.argmin())]), 4)


def train_reranker(encoder: str, groups: Sequence[Group], budget: TrainingParams, desc: str, prior_max_length: int = 128) -> tuple[CrossEncoder, pd.DataFrame]:
    """A fresh ``encoder`` reranker (dense prior + zero correction) trained on ``groups`` with the shared budget.

    Every reranker of the study (relevance baseline, GainRAG selector, RADIO) comes from here, so
    they differ only in their groups' targets. ``training.prior_temperature: fit`` scales the prior to
    fit the training part of the groups' targets first (:func:`fit_prior_temperature`; the held-out
    part never informs it). Returns the model (its ``prior_temperature`` the one used) and its training
    curve. ``prior_max_length`` is the bi-encoder's input length (``retrieval.max_length``).
    """
    fitted = budget.prior_temperature == "fit"
    model = CrossEncoder(encoder, budget.max_length, prior_temperature=0.05 if fitted else budget.prior_temperature, prior_max_length=prior_max_length)
    if fitted:
        model.prior_temperature = fit_prior_temperature(model, split_groups(groups, budget.val_fraction, budget.seed)[0])
    curve = train_listwise(
        model,
        groups,
        epochs=budget.epochs,
        lr=budget.lr,
        batch_size=budget.batch_size,
        val_fraction=budget.val_fraction,
        seed=budget.seed,
        desc=desc,
        autocast=resolve_autocast(budget.bf16_autocast, device()),
    )
    return model, curve


def rerank(
    model: CrossEncoder,
    questions: pd.DataFrame,
    candidates: dict[str, list[str]],
    passage_text: dict[str, str],
    method: str,
    desc: str | None = None,
    priors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Rerank each question's candidate pids by reranker score; a ranking table.

    ``priors`` is the ranking being re-ranked (``qid, pid, score``, e.g. stage 02's dense table): its
    scores are the dense prior, so the untrained reranker returns exactly that ranking. Candidates it
    lacks (a pseudo-passage) get the prior from the frozen bi-encoder. Ties keep the candidates' order.
    """
    known = {} if priors is None else dict(zip(zip(priors.qid, priors.pid, strict=True), priors.score.astype(float), strict=True))
    rows = [(q.qid, q.question, pid) for q in questions.itertuples() for pid in candidates[q.qid]]
    scores = model.score([r[1] for r in rows], [passage_text[r[2]] for r in rows], desc=desc, priors=[known.get((r[0], r[2])) for r in rows])
    df = pd.DataFrame({"qid": [r[0] for r in rows], "pid": [r[2] for r in rows], "score": scores.astype(float)})
    df = df.sort_values(["qid", "score"], ascending=[True, False], kind="stable")
    df["rank"] = df.groupby("qid").cumcount()
    df["method"] = method
    return df[["qid", "rank", "pid", "score", "method"]].reset_index(drop=True)


RELEVANCE_TARGETS = ("per_gold", "uniform")


def relevance_groups(
    questions: pd.DataFrame, candidates: dict[str, list[str]], passage_text: dict[str, str], group_size: int, seed: int,
    target: str = "per_gold",
) -> list[Group]:
    """Relevance training groups, one per question: gold passages and retrieved non-gold negatives.

    ``per_gold`` (``training.relevance_target``): one of the question's gold passages (seeded choice) against
    ``group_size - 1`` negatives, one-hot; its other gold passages are left out, so no gold is ever pushed
    below another. ``uniform``: every gold passage, the target shared evenly. On HotpotQA, where dense
    usually ranks one gold first and the other (the bridge) low, ``uniform`` pays the reranker to demote the
    gold dense puts first (``bench/relevance_control.py`` measures it). Gold passages come from the corpus
    whether or not the retriever found them; negatives are a seeded sample of the question's retrieved
    non-gold candidates (hard negatives).
    """
    if target not in RELEVANCE_TARGETS:
        raise ValueError(f"relevance target {target!r}; allowed: {list(RELEVANCE_TARGETS)}")
    rng = np.random.default_rng(seed)
    groups = []
    for q in questions.itertuples():
        gold = list(q.gold_pids)[: group_size - 1]
        negatives = [p for p in candidates[q.qid] if p not in set(q.gold_pids)]
        need = group_size - (1 if target == "per_gold" else len(gold))
        if not gold or len(negatives) < need:
            continue
        if target == "per_gold":
            gold = [gold[int(rng.integers(len(gold)))]]
        chosen = [negatives[i] for i in sorted(rng.choice(len(negatives), need, replace=False))]
        weights = [1 / len(gold)] * len(gold) + [0.0] * need
        groups.append(Group(q.qid, q.question, tuple(passage_text[p] for p in gold + chosen), tuple(weights)))
    return groups

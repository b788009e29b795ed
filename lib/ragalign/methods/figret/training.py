"""FiGRet's retriever training: a set-level InfoNCE loss on the study's one trainer, and pool search.

A set of passages scores the mean similarity of its members to the query, so a comprehensiveness
pair {found hop, missing hop} > {found hop, distractor} teaches the retriever the missing hop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ragalign.core.retrieval import DenseEncoder, dense_search, to_ranking
from ragalign.core.training import batched_values, fit
from ragalign.methods.figret.examples import Example, curriculum_order


def set_infonce(sim: torch.Tensor, sets: Sequence[Sequence[int]], temperature: float) -> torch.Tensor:
    """-log softmax of the first set among ``sets``; a set scores the mean of its members' ``sim``."""
    scores = torch.stack([sim[list(s)].mean() for s in sets]) / temperature
    return -torch.log_softmax(scores, dim=0)[0]


def batch_loss(
    encoder: DenseEncoder, batch: Sequence[Example], texts: dict[str, str], temperature: float
) -> torch.Tensor:
    """Mean set-level InfoNCE of a batch (:func:`batch_losses`)."""
    return batch_losses(encoder, batch, texts, temperature).mean()


def batch_losses(
    encoder: DenseEncoder, batch: Sequence[Example], texts: dict[str, str], temperature: float
) -> torch.Tensor:
    """Each example's set-level InfoNCE: its positive against its negatives and the sets of the
    other questions in the batch (sets of the same question are never in-batch negatives)."""
    qids = sorted({e.qid for e in batch})
    queries = {e.qid: e.query for e in batch}
    pids = sorted({p for e in batch for s in (e.positive, *e.negatives) for p in s})
    col = {p: i for i, p in enumerate(pids)}
    q = encoder.forward([queries[x] for x in qids])
    sim = q @ encoder.forward([texts[p] for p in pids]).T
    losses = []
    for e in batch:
        own = [e.positive, *e.negatives]
        seen = set(own)
        others = [
            s for o in batch if o.qid != e.qid for s in (o.positive, *o.negatives) if not (s in seen or seen.add(s))
        ]
        sets = [[col[p] for p in s] for s in own + others]
        losses.append(set_infonce(sim[qids.index(e.qid)], sets, temperature))
    return torch.stack(losses)


def _eval_losses(
    encoder: DenseEncoder, examples: Sequence[Example], texts: dict[str, str], temperature: float, batch_size: int = 32
) -> list[float]:
    """Each held-out example's loss (in ``examples`` order), batched in curriculum order so the in-batch
    negatives are reproducible."""
    encoder.model.eval()
    order = curriculum_order(examples)
    with torch.no_grad():
        values = batched_values(lambda batch: batch_losses(encoder, batch, texts, temperature), order, batch_size)
    by_position = {id(e): v for e, v in zip(order, values, strict=True)}
    return [by_position[id(e)] for e in examples]


def train_retriever(
    encoder: DenseEncoder,
    examples: Sequence[Example],
    texts: dict[str, str],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    temperature: float,
    val_fraction: float,
    seed: int,
    order: str = "dual",
    autocast: bool = False,
    desc: str = "figret",
) -> pd.DataFrame:
    """Fine-tune the bi-encoder in place with the study's one trainer (:func:`ragalign.core.training.fit`);
    returns the curve (step, epoch, split, loss).

    Each epoch walks the examples in curriculum order (``dual``) or a fresh seeded shuffle
    (``shuffled``), ``batch_size`` consecutive examples per step. A seeded share of questions is
    held out; like every learner of the study it keeps the weights with the lowest held-out loss only
    where they beat its start per held-out question, and is restored to its start otherwise
    (``fit``'s keep rule; the per-example losses in ``curve.attrs[training.HELDOUT]``).
    """
    return fit(
        encoder.model,
        examples,
        lambda batch: batch_loss(encoder, batch, texts, temperature),
        None,  # the held-out loss: the mean of item_losses
        item_losses=lambda held_out: _eval_losses(encoder, held_out, texts, temperature),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        val_fraction=val_fraction,
        seed=seed,
        order=lambda train, epoch: curriculum_order(train, order, seed + epoch),
        autocast=autocast,
        desc=desc,
    )


def search_pool(
    encoder: DenseEncoder,
    questions: pd.DataFrame,
    pool: Sequence[str],
    texts: dict[str, str],
    k: int,
    method: str,
    batch_size: int = 64,
    pool_emb: np.ndarray | None = None,
) -> pd.DataFrame:
    """Dense top-k of each question within a candidate pool of pids (a ranking table).

    ``pool_emb`` reuses given passage embeddings (rows in ``pool`` order) instead of encoding.
    """
    pool = list(pool)
    emb = pool_emb if pool_emb is not None else encoder.embed([texts[p] for p in pool], batch_size)
    idx, scores = dense_search(emb, encoder.embed(questions.question.tolist(), batch_size), min(k, len(pool)))
    return to_ranking(questions.qid, idx, scores, pool, method)

"""The one trainer of the study: every learned component goes through :func:`fit`.

The rerankers (relevance baseline, GainRAG selector, RADIO) and FiGRet's bi-encoder differ in their
model, their training items and their loss; the optimisation is shared, so no method gets a better
optimiser than another:

- a seeded split of the items **by question** (:func:`split_groups`): held-out questions are never
  trained on;
- AdamW (weight decay 0.01), 10% linear warm-up, then linear decay to 0, gradients clipped to norm 1;
- optionally bf16 autocast for the training forwards and backwards (weights, optimiser state and
  the validation loss stay float32; ``bench/train_precision.py``);
- the held-out loss measured before training and ``evals_per_epoch`` times an epoch; the weights
  with the lowest one (the untrained ones included) are the *best*. Given each held-out item's loss
  (``item_losses``), the held-out loss is their mean: one pass over the held-out items per evaluation;
- with ``item_losses`` (each held-out item's loss), the best weights are kept only where they
  *beat* the start on held-out questions: the per-question loss reduction (start minus best) has a
  paired bootstrap interval above 0 (:func:`ragalign.core.verdicts.verdict` says ``beats``);
  otherwise the module is restored to its start weights, so a component moves away from its start
  only where that helped beyond chance (``keep="best"``: the lowest mean held-out loss is enough,
  which is also the rule without ``item_losses``);
- the held-out items' losses at the start, with the best and with the kept weights, and which
  step was best and which kept, in ``curve.attrs[HELDOUT]``, so the gain can be paired per question
  (``validity.loss_gate``), recorded at the evaluations themselves (no extra pass). The bootstrap
  draws from its own seeded numpy generator after training: the training itself is bit-identical
  with or without them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, TypeVar

import pandas as pd
import torch
from tqdm import tqdm

from ragalign.core.metrics import paired_interval
from ragalign.core.models import device
from ragalign.core.seed import seed_everything
from ragalign.core.stopwatch import counted
from ragalign.core.verdicts import BEATS, verdict


class HasQid(Protocol):
    qid: str


T = TypeVar("T", bound=HasQid)

# curve.attrs key: {"qid", "start", "best", "kept": one entry per held-out item; "best_step", "kept_step",
# "rule" ("best" | "beats"), "interval": the paired interval of start minus best loss per question}
HELDOUT = "heldout"


def split_groups(items: Sequence[T], val_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Seeded train/validation split of training items by question (``item.qid``)."""
    qids = sorted({g.qid for g in items})
    rng = random.Random(seed)
    rng.shuffle(qids)
    val = set(qids[: max(1, round(len(qids) * val_fraction))]) if len(qids) > 1 else set()
    return [g for g in items if g.qid not in val], [g for g in items if g.qid in val]


@counted("train")
def fit(
    module: torch.nn.Module,
    items: Sequence[T],
    loss: Callable[[Sequence[T]], torch.Tensor],
    val_loss: Callable[[Sequence[T]], float] | None,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    val_fraction: float,
    seed: int,
    order: Callable[[list[T], int], list[T]] | None = None,
    evals_per_epoch: int = 1,
    autocast: bool = False,
    desc: str = "train",
    item_losses: Callable[[Sequence[T]], Sequence[float]] | None = None,
    keep: Literal["best", "beats"] = "beats",
    n_boot: int = 1000,
) -> pd.DataFrame:
    """Train ``module`` in place on ``items``; returns the curve (step, epoch, split, loss).

    ``loss(batch)`` is the training loss of ``batch_size`` consecutive items (it runs the module);
    the held-out loss is ``val_loss(items)`` (NaN for none) or, given ``item_losses(items)`` (each
    held-out item's loss), their mean. ``order(train, epoch)`` gives an epoch's item order (default:
    a seeded shuffle, one generator for the whole run). Ends with the kept weights loaded and the
    module in eval mode: the best held-out weights (lowest held-out loss, the start included),
    unless ``item_losses`` is given and ``keep="beats"``, where they are kept only if they *beat*
    the start per held-out question (start minus best loss, averaged per ``qid``:
    :func:`ragalign.core.metrics.paired_interval` with ``n_boot`` resamples and ``seed``, lower
    bound above 0) and the start weights are restored otherwise. The held-out item losses at the
    start, with the best and with the kept weights go into ``curve.attrs[HELDOUT]`` (see :data:`HELDOUT`).
    """
    if keep not in ("best", "beats"):
        raise ValueError(f"keep must be 'best' or 'beats', not {keep!r}")
    if val_loss is None and item_losses is None:
        raise ValueError("fit needs val_loss or item_losses to measure the held-out loss")
    seed_everything(seed)
    train, val = split_groups(items, val_fraction, seed)
    if order is None:
        rng = random.Random(seed)

        def order(items: list[T], epoch: int) -> list[T]:
            out = list(items)
            rng.shuffle(out)
            return out

    curve: list[dict] = []
    best: tuple[float, dict, int] | None = None  # (held-out loss, state dict, step)
    per_item: dict[int, list[float]] = {}  # step -> each held-out item's loss (with item_losses)

    def evaluate(step: int, epoch: int) -> None:
        nonlocal best
        module.eval()
        with torch.no_grad():
            if item_losses is not None and val:
                per_item[step] = [float(v) for v in item_losses(val)]
                value = sum(per_item[step]) / len(val)
            else:
                value = val_loss(val) if val_loss is not None else float("nan")
        curve.append({"step": step, "epoch": epoch, "split": "val", "loss": value})
        if best is None or not val or value < best[0]:
            best = (value, {k: v.detach().clone() for k, v in module.state_dict().items()}, step)
        module.train()

    evaluate(0, 0)
    start_items = per_item.get(0)
    # the start weights (a reference to evaluate(0, 0)'s clone, never changed in place), held only
    # where they may be restored
    start_state = best[1] if start_items is not None and keep == "beats" else None
    if train:
        params = [p for p in module.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        steps_per_epoch = -(-len(train) // batch_size)
        total = epochs * steps_per_epoch
        warmup = max(1, total // 10)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / total)
        )
        eval_steps = {round(steps_per_epoch * (i + 1) / evals_per_epoch) for i in range(evals_per_epoch)}
        step = 0
        for epoch in range(1, epochs + 1):
            ordered = order(list(train), epoch)
            for i, start in enumerate(
                tqdm(range(0, len(ordered), batch_size), desc=f"{desc} epoch {epoch}", mininterval=10), start=1
            ):
                with torch.autocast(device_type=device(), dtype=torch.bfloat16, enabled=autocast):
                    value = loss(ordered[start : start + batch_size])
                optimiser.zero_grad()
                value.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimiser.step()
                schedule.step()
                step += 1
                curve.append({"step": step, "epoch": epoch, "split": "train", "loss": value.item()})
                if i in eval_steps:
                    evaluate(step, epoch)
    _, best_state, best_step = best
    module.load_state_dict(best_state)
    module.eval()
    out = pd.DataFrame(curve)
    if start_items is None:
        return out
    qids = [i.qid for i in val]
    best_items = per_item[best_step]
    per_question = pd.DataFrame({"qid": qids, "diff": [s - b for s, b in zip(start_items, best_items, strict=True)]})
    interval = paired_interval(per_question.groupby("qid", sort=True)["diff"].mean().to_numpy(), n_boot, seed)
    kept_items, kept_step = best_items, best_step
    if keep == "beats" and verdict(interval) != BEATS:
        module.load_state_dict(start_state)
        module.eval()
        kept_items, kept_step = list(start_items), 0
    out.attrs[HELDOUT] = {
        "qid": qids,
        "start": start_items,
        "best": best_items,
        "kept": kept_items,
        "best_step": int(best_step),
        "kept_step": int(kept_step),
        "rule": keep,
        "interval": interval,
    }
    return out


def batched_values(losses: Callable[[Sequence[T]], torch.Tensor], items: Sequence[T], batch_size: int = 32) -> list[float]:
    """Per-item values of ``losses`` (one value per item of a batch) over ``items``, in the batches
    :func:`batched_mean` uses, so they are the values its means are taken over."""
    return [float(v) for s in range(0, len(items), batch_size) for v in losses(items[s : s + batch_size]).tolist()]


def batched_mean(loss: Callable[[Sequence[T]], torch.Tensor], items: Sequence[T], batch_size: int = 32) -> float:
    """The mean of a batch-mean ``loss`` over ``items`` in batches (NaN for none), weighted by batch size."""
    if not items:
        return float("nan")
    total = sum(
        loss(items[s : s + batch_size]).item() * len(items[s : s + batch_size])
        for s in range(0, len(items), batch_size)
    )
    return total / len(items)

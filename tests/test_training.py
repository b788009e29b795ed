"""The one trainer: split by question, warm-up/decay AdamW, best held-out weights kept where they beat the start."""

from dataclasses import dataclass

import pytest
import torch

from ragalign.core.training import HELDOUT, batched_mean, batched_values, fit, split_groups


@dataclass(frozen=True)
class Item:
    qid: str
    target: float


def _setup(train_target: float, val_target: float):
    """A one-weight model starting at 1.0; the held-out question (fraction 0.2, seed 0) wants ``val_target``."""
    torch.manual_seed(0)
    module = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(module.weight, 1.0)
    (held_out,) = {i.qid for i in split_groups([Item(f"q{i}", 0.0) for i in range(5)], 0.2, seed=0)[1]}
    items = [Item(f"q{i}", val_target if f"q{i}" == held_out else train_target) for i in range(5)]

    def loss(batch):
        w = module.weight[0, 0]
        return torch.stack([(w - b.target) ** 2 for b in batch]).mean()

    return module, items, loss


def test_split_is_by_question_and_seeded():
    items = [Item(f"q{i // 2}", 0.0) for i in range(20)]
    train, val = split_groups(items, 0.2, seed=0)
    assert len({i.qid for i in val}) == 2 and not {i.qid for i in train} & {i.qid for i in val}
    assert split_groups(items, 0.2, seed=0) == (train, val)


def test_fit_learns_where_it_helps_held_out_questions():
    module, items, loss = _setup(train_target=3.0, val_target=3.0)
    curve = fit(module, items, loss, lambda held: batched_mean(loss, held), epochs=20, lr=0.2, batch_size=2, val_fraction=0.2, seed=0)
    val = curve[curve.split == "val"]
    assert val.step.iloc[0] == 0 and len(val) == 21  # before training, then once an epoch
    assert abs(module.weight.item() - 3.0) < abs(1.0 - 3.0) / 2
    assert not module.training


def test_fit_keeps_the_start_when_training_only_hurts_held_out_questions():
    module, items, loss = _setup(train_target=5.0, val_target=1.0)  # held out: the start is optimal
    curve = fit(module, items, loss, lambda held: batched_mean(loss, held), epochs=3, lr=0.5, batch_size=2, val_fraction=0.2, seed=0)
    assert (curve.split == "train").sum() == 3 * 2 and curve[curve.split == "val"].loss.min() == 0.0
    assert module.weight.item() == 1.0


def test_fit_without_training_items_leaves_the_module_as_it_was():
    module, _, loss = _setup(0.0, 0.0)
    curve = fit(module, [], loss, lambda held: batched_mean(loss, held), epochs=2, lr=0.1, batch_size=2, val_fraction=0.5, seed=0)
    assert len(curve) == 1 and module.weight.item() == 1.0


def test_fit_records_each_held_out_items_loss_at_the_start_and_kept_and_trains_the_same():
    def item_losses(loss):
        return lambda held: batched_values(lambda batch: torch.stack([loss([b]) for b in batch]), held)

    module, items, loss = _setup(train_target=3.0, val_target=3.0)
    plain = fit(module, items, loss, lambda held: batched_mean(loss, held), epochs=5, lr=0.2, batch_size=2, val_fraction=0.2, seed=0)
    plain_weight = module.weight.item()
    module, items, loss = _setup(train_target=3.0, val_target=3.0)
    curve = fit(module, items, loss, lambda held: batched_mean(loss, held), epochs=5, lr=0.2, batch_size=2, val_fraction=0.2, seed=0, item_losses=item_losses(loss))
    assert curve.equals(plain) and module.weight.item() == plain_weight and not module.training  # measuring changes nothing
    record = curve.attrs[HELDOUT]
    val = curve[curve.split == "val"].loss
    assert len(record["qid"]) == 1 and record["start"] == [4.0]  # (1 - 3)^2 at the start
    assert record["kept"][0] == val.min() < record["start"][0] == val.iloc[0]
    assert HELDOUT not in plain.attrs


def _setup_many(train_target: float, held_out_targets: list[float]):
    """A one-weight model starting at 1.0 on 20 questions; half are held out (seed 0) and want ``held_out_targets``."""
    module, _, loss = _setup(0.0, 0.0)
    qids = [f"q{i:02d}" for i in range(20)]
    held = sorted({i.qid for i in split_groups([Item(q, 0.0) for q in qids], 0.5, seed=0)[1]})
    targets = dict(zip(held, held_out_targets, strict=True))
    items = [Item(q, targets.get(q, train_target)) for q in qids]
    per_item = lambda held_out: batched_values(lambda batch: torch.stack([loss([b]) for b in batch]), held_out)  # noqa: E731
    return module, items, loss, per_item


def _fit(module, items, loss, per_item, **kw):
    return fit(module, items, loss, None, epochs=10, lr=0.2, batch_size=2, val_fraction=0.5, seed=0, item_losses=per_item, **kw)


NOISE = [6.0, -1.0] * 5  # held out: the mean wants w = 2.5, but half the questions lose what the other half gain


def test_fit_restores_the_start_when_training_does_not_beat_it_on_held_out_questions():
    module, items, loss, per_item = _setup_many(3.0, NOISE)
    start = {k: v.clone() for k, v in module.state_dict().items()}
    curve = _fit(module, items, loss, per_item, n_boot=200)
    record, val = curve.attrs[HELDOUT], curve[curve.split == "val"]
    assert record["best_step"] > 0 and val.loss.min() < val.loss.iloc[0]  # a lower mean held-out loss ...
    assert record["interval"]["lo"] <= 0 < record["interval"]["mean"]  # ... that a paired interval does not tell from the start
    assert record["kept_step"] == 0 and record["rule"] == "beats" and record["kept"] == record["start"] != record["best"]
    assert all(torch.equal(v, start[k]) for k, v in module.state_dict().items()) and not module.training


def test_fit_keeps_trained_weights_that_beat_the_start_on_held_out_questions():
    module, items, loss, per_item = _setup_many(3.0, [2.8, 3.0, 3.2, 2.9, 3.1] * 2)
    curve = _fit(module, items, loss, per_item, n_boot=200)
    record = curve.attrs[HELDOUT]
    assert record["kept_step"] == record["best_step"] > 0 and record["interval"]["lo"] > 0
    assert record["kept"] == record["best"] and sum(record["kept"]) / 10 == pytest.approx(curve[curve.split == "val"].loss.min())
    assert abs(module.weight.item() - 3.0) < 1.0


def test_keep_best_is_the_old_rule_and_the_rule_never_changes_the_training():
    module, items, loss, per_item = _setup_many(3.0, NOISE)
    beats = _fit(module, items, loss, per_item, n_boot=200)
    module, items, loss, per_item = _setup_many(3.0, NOISE)
    best = _fit(module, items, loss, per_item, keep="best")
    record, val = best.attrs[HELDOUT], best[best.split == "val"]
    assert best.equals(beats) and record["rule"] == "best"  # the same curve, step by step
    assert record["kept_step"] == record["best_step"] == val.step[val.loss.idxmin()] and record["kept"] == record["best"]
    assert module.weight.item() != 1.0 and record["qid"] == beats.attrs[HELDOUT]["qid"]
    with pytest.raises(ValueError, match="keep"):
        _fit(module, items, loss, per_item, keep="lowest")


def test_with_item_losses_each_evaluation_is_one_pass_and_its_mean_is_the_held_out_loss():
    module, items, loss, per_item = _setup_many(3.0, [2.8, 3.0, 3.2, 2.9, 3.1] * 2)
    passes = []
    counted = lambda held_out: passes.append(len(held_out)) or per_item(held_out)  # noqa: E731
    curve = fit(module, items, loss, None, epochs=2, lr=0.2, batch_size=2, val_fraction=0.5, seed=0, evals_per_epoch=2, item_losses=counted, n_boot=200)
    val, record = curve[curve.split == "val"], curve.attrs[HELDOUT]
    assert passes == [10] * len(val) == [10] * 5  # the start and two per epoch, nothing more
    assert val.loss.iloc[0] == pytest.approx(sum(record["start"]) / 10) and val.loss.min() == pytest.approx(sum(record["best"]) / 10)
    with pytest.raises(ValueError, match="val_loss or item_losses"):
        fit(module, items, loss, None, epochs=1, lr=0.2, batch_size=2, val_fraction=0.5, seed=0)


def test_batched_values_are_the_values_batched_mean_averages():
    items = [Item(f"q{i}", float(i)) for i in range(5)]
    values = batched_values(lambda batch: torch.tensor([b.target for b in batch]), items, batch_size=2)
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert batched_mean(lambda batch: torch.tensor([b.target for b in batch]).mean(), items, batch_size=2) == sum(values) / 5


def test_parquet_artifacts_never_carry_attrs(tmp_path):
    import pandas as pd

    from ragalign.core.io import write_parquet

    df = pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5]})
    df.attrs[HELDOUT] = {"qid": ["q"], "start": [1.0], "kept": [0.5]}
    write_parquet(df, tmp_path / "c.parquet")
    assert pd.read_parquet(tmp_path / "c.parquet").attrs == {} and HELDOUT in df.attrs  # the caller's frame keeps them

"""core.stopwatch: a stage's time by kind of work, what the cost estimate scales kind by kind."""

from __future__ import annotations

import json
import time

import pytest
import torch

from ragalign.core import stopwatch
from ragalign.core.io import SPENT_ENV


class Sleeper(torch.nn.Module):
    def __init__(self, seconds: float, fail: bool = False):
        super().__init__()
        self.seconds, self.fail = seconds, fail

    def forward(self, x):
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("boom")
        return x


@pytest.fixture
def clean(monkeypatch, tmp_path):
    monkeypatch.setattr(stopwatch, "_SPENT", dict.fromkeys(stopwatch.KINDS, 0.0))
    monkeypatch.setattr(stopwatch, "_OPEN", [])
    monkeypatch.setattr(stopwatch, "_REPORT_EVERY_S", 0.0)  # a stage's kernel writes at most once a second, and at exit
    monkeypatch.setenv(SPENT_ENV, str(tmp_path / "spent.json"))
    return tmp_path / "spent.json"


def test_a_watched_forward_counts_as_its_kind_and_only_the_outermost_counts(clean):
    model = stopwatch.watch(Sleeper(0.05), "encode")
    model(torch.zeros(1))
    encoded = stopwatch.spent()["encode"]
    assert 0.05 <= encoded < 0.5 and stopwatch.spent()["train"] == 0
    with stopwatch.spend("train"):  # a forward inside a trainer is training
        model(torch.zeros(1))
        time.sleep(0.05)
    assert 0.1 <= stopwatch.spent()["train"] < 0.6 and stopwatch.spent()["encode"] == encoded  # counted once, as training
    assert json.loads(clean.read_text()) == stopwatch.spent()  # what the runner reads


def test_a_forward_that_raises_still_closes_its_count(clean):
    failing = stopwatch.watch(Sleeper(0.02, fail=True), "answer")
    with pytest.raises(RuntimeError, match="boom"):
        failing(torch.zeros(1))
    assert stopwatch._OPEN == [] and stopwatch.spent()["answer"] >= 0.02
    stopwatch.watch(Sleeper(0.02), "encode")(torch.zeros(1))
    assert stopwatch.spent()["encode"] >= 0.02  # not swallowed by a count left open


def test_counted_functions_and_unknown_kinds(clean):
    @stopwatch.counted("train")
    def step() -> int:
        time.sleep(0.02)
        return 3

    assert step() == 3 and stopwatch.spent()["train"] >= 0.02
    with pytest.raises(ValueError, match="unknown kind of work 'decode'"):
        stopwatch.watch(Sleeper(0.0), "decode")

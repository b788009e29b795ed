"""Where a stage's time goes, by kind of work, so that a cold-time estimate can scale each kind by its own probe.

Machines differ by kind of work, not by one factor: in the 2026-11-26 run of ``bench/encode_precision.py``
(in git history; its CPU, most likely the Intel Xeon AMX host, not recorded) bf16 autocast embedded passages
2.4x faster than float32, while one generator answer, bound by its decode steps, gains 1.1x from bf16 on the
Xeon (``bench/results/probe_speed.json``); a 2-core AMD Zen 3 computing in float32 took 3.4x the Xeon's time
for stage 02 (embedding) and 1.3x its time per answer. So a stage's time is split
into :data:`KINDS`, and ``core.probes`` times one typical piece of each:

- ``answer``: the generator's forwards (answering, scoring, labelling, decoding, coalitions);
- ``encode``: the bi-encoder's and rerankers' forwards outside training (embedding, reranking);
- ``train``: training (every forward and backward inside a trainer, its held-out passes included).

What no kind holds (imports, tokenising, I/O, bootstraps) is the stage's wall time less the kinds.
The generator and encoder count through forward hooks (:func:`watch`), trainers through :func:`spend`;
only the outermost counts, so a forward inside a trainer is training. CPU timings: on CUDA the hooks
see launch time, not the kernels'.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ragalign.core.io import SPENT_ENV, atomic_write_text

KINDS = ("answer", "encode", "train")
_SPENT: dict[str, float] = dict.fromkeys(KINDS, 0.0)
_OPEN: list[tuple[str, float]] = []  # the kinds counting now, outermost first
_REPORT_EVERY_S = 1.0
_last_report = 0.0


def spent() -> dict[str, float]:
    """Seconds this process spent in each kind so far."""
    return {kind: round(seconds, 3) for kind, seconds in _SPENT.items()}


def _report(force: bool = False) -> None:
    """Tell the runner timing the stage (``SPENT_ENV``), at most once a second and at exit."""
    global _last_report
    now = time.perf_counter()
    if os.environ.get(SPENT_ENV) and (force or now - _last_report >= _REPORT_EVERY_S):
        _last_report = now
        atomic_write_text(os.environ[SPENT_ENV], json.dumps(spent(), sort_keys=True))


atexit.register(_report, True)


def _start(kind: str) -> None:
    if kind not in _SPENT:
        raise ValueError(f"unknown kind of work {kind!r}; one of {KINDS}")
    _OPEN.append((kind, time.perf_counter()))


def _stop() -> None:
    kind, started = _OPEN.pop()
    if not _OPEN:  # the outermost: what it holds is this kind's, whatever ran inside it
        _SPENT[kind] += time.perf_counter() - started
        _report()


@contextmanager
def spend(kind: str) -> Iterator[None]:
    """Count the time inside as ``kind`` (unless an outer kind is counting)."""
    _start(kind)
    try:
        yield
    finally:
        _stop()


def counted(kind: str) -> Callable[[Callable], Callable]:
    """Decorate a function whose time counts as ``kind`` (a trainer: ``counted("train")``)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with spend(kind):
                return fn(*args, **kwargs)

        return timed

    return decorate


def watch(module, kind: str):
    """Count the time in ``module``'s forward as ``kind`` (unless an outer kind is counting); returns it."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of work {kind!r}; one of {KINDS}")
    module.register_forward_pre_hook(lambda *_: _start(kind))
    module.register_forward_hook(lambda *_: _stop(), always_call=True)
    return module

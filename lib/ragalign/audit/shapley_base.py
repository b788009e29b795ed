"""Games over coalitions given as bitmasks (bit ``i`` = player ``i``): coalition helpers, exact
Shapley values, the Shapley kernel weight, and the estimator protocol (``Plan``, ``Estimator``).

The foundation of ``shapley`` (which re-exports all of it) and ``shapley_regression``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

Values = Mapping[int, float] | Sequence[float] | np.ndarray

# ---------------------------------------------------------------------------------------------
# Coalitions
# ---------------------------------------------------------------------------------------------


def full_mask(k: int) -> int:
    return (1 << k) - 1


def members(mask: int, k: int) -> list[int]:
    """Player indices in a coalition, ascending."""
    return [i for i in range(k) if mask >> i & 1]


def all_masks(k: int) -> list[int]:
    return list(range(1 << k))


def size(mask: int) -> int:
    return int(mask).bit_count()


def indicators(masks: Sequence[int], k: int) -> np.ndarray:
    """0/1 membership matrix, one row per coalition."""
    return ((np.asarray(masks, dtype=np.int64)[:, None] >> np.arange(k)) & 1).astype(float)


def efficiency_gap(phi: np.ndarray, values: Values, k: int) -> float:
    """``sum(phi) - (v(full) - v(empty))``: 0 for an efficient estimate."""
    return float(np.sum(phi) - (values[full_mask(k)] - values[0]))


# ---------------------------------------------------------------------------------------------
# Exact Shapley
# ---------------------------------------------------------------------------------------------


def exact_shapley(values: Values, k: int) -> np.ndarray:
    """Shapley values from the values of all ``2^k`` coalitions (indexable by bitmask)."""
    v = np.asarray([values[m] for m in range(1 << k)], dtype=float)
    sizes = np.array([bin(m).count("1") for m in range(1 << k)])
    weight = np.array([math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) if s < k else 0.0 for s in sizes])
    phi = np.zeros(k)
    masks = np.arange(1 << k)
    for i in range(k):
        without = masks[(masks >> i & 1) == 0]
        phi[i] = float(np.sum(weight[without] * (v[without | (1 << i)] - v[without])))
    return phi


def shapley_kernel_weight(size: int, k: int) -> float:
    """Kernel SHAP weight (k-1) / (C(k, s) s (k-s)) of a coalition of ``size`` players (0 < s < k)."""
    return (k - 1) / (math.comb(k, size) * size * (k - size))


# ---------------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The coalitions an estimator needs (distinct, empty and full first) and its sampled state."""

    k: int
    masks: tuple[int, ...]
    permutations: tuple[tuple[int, ...], ...] = field(default=())


@runtime_checkable
class Estimator(Protocol):
    """A Shapley estimator: plan the coalitions, then estimate from their values.

    ``efficient`` says whether ``sum(phi) == v(full) - v(empty)`` holds by construction; the others
    report their bias through ``efficiency_gap``.
    """

    name: str
    efficient: bool

    def plan(self, k: int, budget: int, rng: np.random.Generator) -> Plan: ...

    def estimate(self, values: Values, plan: Plan, rng: np.random.Generator | None = None) -> np.ndarray: ...

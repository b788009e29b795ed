"""Kernel SHAP and Leverage SHAP: paired sampling of coalitions without replacement, then the
kernel-weighted least squares with the efficiency constraint enforced exactly.

Re-exported by ``shapley``, whose registry selects them as ``kernelshap`` and ``leverageshap``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragalign.audit.shapley_base import Plan, Values, full_mask, indicators, shapley_kernel_weight, size


def _pair_classes(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Complementary-pair classes c = 1..k//2 (a size-c coalition and its complement, of size k-c):
    their sizes and how many pairs each holds (C(k, c), halved for c = k/2)."""
    c = np.arange(1, k // 2 + 1)
    caps = np.array([math.comb(k, int(s)) // (2 if 2 * s == k else 1) for s in c])
    return c, caps


def _size_mass_to_pairs(size_mass: np.ndarray, k: int) -> np.ndarray:
    """Probability of each pair class from a distribution over sizes 1..k-1 (index s-1)."""
    c, _ = _pair_classes(k)
    mass = np.array([size_mass[s - 1] + (size_mass[k - s - 1] if 2 * s != k else 0.0) for s in c])
    return mass / mass.sum()


def _random_coalition(k: int, s: int, rng: np.random.Generator) -> int:
    return int(np.sum(1 << rng.choice(k, size=s, replace=False)))


def _draw_pairs(k: int, counts: Sequence[int], caps: Sequence[int], classes: Sequence[int], rng: np.random.Generator) -> list[int]:
    """``counts[j]`` distinct complementary pairs of class ``classes[j]``, uniformly, as (S, ~S) masks."""
    full = full_mask(k)
    out: list[int] = []
    for c, n, cap in zip(classes, counts, caps, strict=True):
        c = int(c)
        if n == cap:  # the whole class: enumerate it (in a random order)
            reps = [sum(1 << i for i in comb) for comb in itertools.combinations(range(k), c)]
            reps = [m for m in reps if 2 * c != k or m & 1]  # middle class: one member of each pair
            chosen = [reps[j] for j in rng.permutation(len(reps))]
        else:
            seen: set[int] = set()
            chosen = []
            while len(chosen) < n:
                m = _random_coalition(k, c, rng)
                if 2 * c == k and not m & 1:
                    m ^= full
                if m not in seen:
                    seen.add(m)
                    chosen.append(m)
        for m in chosen:
            out += [m, full ^ m]
    return out


def sampled_regression_weights(masks: Sequence[int], k: int) -> np.ndarray:
    """Kernel weight / inclusion probability of each non-trivial coalition in ``masks``.

    Given that ``n_s`` distinct coalitions of size ``s`` were drawn uniformly among the ``C(k, s)``,
    each has inclusion probability ``n_s / C(k, s)``, so its weight is ``C(k, s) w(s) / n_s``: the
    total kernel mass of its size shared equally. When every coalition is present it is ``w(s)``.
    """
    sizes = [size(m) for m in masks]
    count = Counter(sizes)
    return np.array([math.comb(k, s) * shapley_kernel_weight(s, k) / count[s] for s in sizes])


def constrained_kernel_regression(values: Values, k: int, masks: Sequence[int], weights: np.ndarray) -> np.ndarray:
    """argmin_phi sum_S w_S (v(S) - v(empty) - z_S . phi)^2 subject to sum(phi) = v(full) - v(empty).

    ``masks``/``weights``: the non-trivial coalitions and their regression weights. The constraint is
    eliminated (phi = P beta + delta/k, P the projection orthogonal to the ones vector), so efficiency
    holds exactly at any budget; an under-determined problem takes the minimum-norm solution.
    """
    v0 = float(values[0])
    delta = float(values[full_mask(k)]) - v0
    phi0 = np.full(k, delta / k)
    if len(masks) == 0:
        return phi0
    z = indicators(masks, k)
    y = np.array([values[int(m)] for m in masks], dtype=float) - v0 - z @ phi0
    proj = np.eye(k) - 1.0 / k
    sw = np.sqrt(np.asarray(weights, dtype=float))[:, None]
    beta = np.linalg.lstsq(sw * (z @ proj), sw[:, 0] * y, rcond=None)[0]
    phi = proj @ beta + phi0
    return phi - (phi.sum() - delta) / k  # remove round-off, so that efficiency holds to ~1e-15


@dataclass(frozen=True)
class _PairedRegression:
    """Paired sampling without replacement + the constrained Kernel SHAP regression.

    ``size_mass(k)`` is the target distribution over sizes 1..k-1. With ``stratified`` the number of
    pairs per size class is fixed (water-filling: proportional to the mass, capped at the class size,
    the rest spread over the other classes); otherwise each pair's class is drawn at random from the
    classes not yet exhausted. Budget: the empty and full coalitions, then (budget - 2) // 2 pairs.
    """

    stratified: bool = False
    name: str = ""
    efficient: bool = True

    def size_mass(self, k: int) -> np.ndarray:
        raise NotImplementedError

    def plan(self, k: int, budget: int, rng: np.random.Generator) -> Plan:
        classes, caps = _pair_classes(k)
        n_pairs = max(0, min(int(caps.sum()), (budget - 2) // 2))
        prob = _size_mass_to_pairs(self.size_mass(k), k)
        counts = _water_fill(prob, caps, n_pairs, rng) if self.stratified else _sequential_counts(prob, caps, n_pairs, rng)
        return Plan(k, (0, full_mask(k), *_draw_pairs(k, counts, caps, classes, rng)))

    def estimate(self, values: Values, plan: Plan, rng: np.random.Generator | None = None) -> np.ndarray:
        masks = plan.masks[2:]
        return constrained_kernel_regression(values, plan.k, masks, sampled_regression_weights(masks, plan.k))


@dataclass(frozen=True)
class KernelShap(_PairedRegression):
    """Kernel SHAP: paired coalitions with sizes drawn by the Shapley kernel, exact efficiency."""

    name: str = "kernelshap"

    def size_mass(self, k: int) -> np.ndarray:
        return kernel_size_mass(k)


@dataclass(frozen=True)
class LeverageShap(_PairedRegression):
    """Leverage SHAP (Musco & Witter): paired, uniform over sizes, without replacement, exact efficiency.

    The paper includes each coalition independently with probability min(1, c * leverage score);
    ``stratified`` (default) fixes each size's count at that scheme's expectation, so the budget is met
    exactly; ``stratified=false`` draws each pair's size at random instead.
    """

    stratified: bool = True
    name: str = "leverageshap"

    def size_mass(self, k: int) -> np.ndarray:
        return leverage_size_mass(k)


def _sequential_counts(prob: np.ndarray, caps: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pairs per class when each pair's class is drawn by ``prob`` among the classes not yet full."""
    counts = np.zeros(len(prob), dtype=int)
    for _ in range(n):
        p = np.where(counts < caps, prob, 0.0)
        counts[rng.choice(len(p), p=p / p.sum())] += 1
    return counts


def _water_fill(prob: np.ndarray, caps: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Integer pairs per class, summing to ``n``: min(cap, level * prob), level chosen to fill ``n``;
    fractional parts rounded by sampling classes in proportion to them (no class past its cap)."""
    target = np.zeros(len(prob))
    free = np.ones(len(prob), dtype=bool)
    left = float(n)
    while free.any() and left > 1e-12:
        share = left * prob * free / prob[free].sum()
        over = free & (share >= caps)
        if not over.any():
            target[free] = share[free]
            break
        target[over] = caps[over]
        free &= ~over
        left = n - target.sum()
    counts = np.floor(target + 1e-9).astype(int)
    rest = n - int(counts.sum())
    if rest > 0:
        frac = np.where(counts < caps, np.maximum(target - counts, 1e-12), 0.0)
        counts[rng.choice(len(frac), size=rest, replace=False, p=frac / frac.sum())] += 1
    return counts


def kernel_size_mass(k: int) -> np.ndarray:
    """Shapley-kernel distribution of coalition sizes 1..k-1: P(s) ~ 1/(s (k-s))."""
    s = np.arange(1, k)
    p = 1.0 / (s * (k - s))
    return p / p.sum()


def leverage_size_mass(k: int) -> np.ndarray:
    """Leverage-score distribution of sizes 1..k-1 (Musco & Witter): uniform over sizes."""
    return np.full(k - 1, 1.0 / max(1, k - 1))


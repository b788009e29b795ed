"""Shapley values of a cooperative game over coalitions given as bitmasks (bit ``i`` = player ``i``).

Pure maths, no LLM: a game is whatever maps a bitmask to a value (a dict, or a sequence indexed by
mask). Every estimator follows one protocol in two steps, so that an expensive value function can
evaluate all the coalitions an estimator needs in one batched call:

- ``plan(k, budget, rng) -> Plan``: the distinct coalitions to evaluate (the empty and the full one
  included; at most ``budget`` of them, except ``exact``, which always needs all ``2^k``, and
  ``permutation``, which needs ``k + 1`` for its first permutation), plus what the estimate needs;
- ``estimate(values, plan, rng) -> phi``: the Shapley values from the values of the planned coalitions.

Estimators (``ESTIMATORS``, selectable by a spec string ``"name"`` or ``"name:key=value,..."``):

- ``exact``: all ``2^k`` coalitions.
- ``permutation``: mean marginal contributions along random permutations (optionally antithetic
  pairs: a permutation and its reverse). Every permutation is efficient on its own.
- ``pmcshap`` (RAG-E): complementary pairs without replacement, a Shapley-kernel weighted ridge
  regression with a free intercept fitted on many small subsamples of the pairs, averaged. It ignores
  ``v(empty)`` and ``v(full)``, so its values need NOT sum to ``v(full) - v(empty)``: see
  ``efficiency_gap``.
- ``kernelshap``: paired sampling (S and its complement) of coalitions whose sizes follow the
  Shapley-kernel size distribution, P(s) ~ 1/(s (k - s)); the kernel-weighted least squares with the
  efficiency constraint enforced exactly.
- ``leverageshap`` (Musco & Witter, ICLR 2025): the same constrained regression, coalitions sampled
  by their leverage scores, i.e. uniformly over sizes 1..k-1, paired, without replacement.

The regression estimators weight each sampled coalition by its kernel weight over its inclusion
probability (given how many coalitions of its size were drawn), so at the full budget they solve the
exact Kernel SHAP problem, whose solution is the Shapley value.

The coalition helpers, ``exact_shapley`` and the protocol live in ``shapley_base``, the regression
estimators in ``shapley_regression``; both are re-exported here. Accuracy and convergence against
exact values (the bench's tooling) are in ``shapley_convergence``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ragalign.audit.shapley_base import (
    Estimator,
    Plan,
    Values,
    all_masks,
    efficiency_gap,
    exact_shapley,
    full_mask,
    indicators,
    members,
    shapley_kernel_weight,
    size,
)
from ragalign.audit.shapley_regression import (
    KernelShap,
    LeverageShap,
    constrained_kernel_regression,
    kernel_size_mass,
    leverage_size_mass,
    sampled_regression_weights,
)

__all__ = [  # the re-exported names, then this module's
    "Estimator", "Plan", "Values", "all_masks", "efficiency_gap", "exact_shapley", "full_mask", "indicators", "members",
    "shapley_kernel_weight", "size",
    "KernelShap", "LeverageShap", "constrained_kernel_regression", "kernel_size_mass", "leverage_size_mass",
    "sampled_regression_weights",
    "Exact", "Permutation", "permutation_masks", "permutation_shapley", "PMCShap", "pmcshap_masks", "pmcshap",
    "ESTIMATORS", "make_estimator",
]

# ---------------------------------------------------------------------------------------------
# Exact: every coalition
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exact:
    """All ``2^k`` coalitions, whatever the budget."""

    name: str = "exact"
    efficient: bool = True

    def plan(self, k: int, budget: int, rng: np.random.Generator) -> Plan:
        return Plan(k, tuple(all_masks(k)))

    def estimate(self, values: Values, plan: Plan, rng: np.random.Generator | None = None) -> np.ndarray:
        return exact_shapley(values, plan.k)


# ---------------------------------------------------------------------------------------------
# Permutation sampling
# ---------------------------------------------------------------------------------------------


def _prefixes(perm: Sequence[int]) -> list[int]:
    out = [0]
    for i in perm:
        out.append(out[-1] | (1 << i))
    return out


def permutation_masks(
    k: int, n_evaluations: int, rng: np.random.Generator, max_permutations: int = 10_000, antithetic: bool = False
) -> tuple[list[list[int]], list[int]]:
    """Random permutations whose prefixes use at most ``n_evaluations`` distinct coalitions.

    Returns (permutations, distinct coalitions in first-use order). Draws permutations (with
    ``antithetic``, each followed by its reverse) until the next draw would exceed the budget or every
    coalition has been seen. At least one permutation (k+1 coalitions), alone if its antithetic pair
    (2k coalitions) does not fit.
    """
    perms: list[list[int]] = []
    seen: dict[int, None] = {0: None}
    while len(perms) < max_permutations:
        perm = [int(i) for i in rng.permutation(k)]
        draw = [perm, perm[::-1]] if antithetic else [perm]
        new = dict.fromkeys(m for p in draw for m in _prefixes(p) if m not in seen)
        if len(seen) + len(new) > n_evaluations:
            if perms:
                break
            draw, new = [perm], dict.fromkeys(_prefixes(perm))  # the first draw: one permutation at least
        perms += draw
        seen.update(new)
        if len(seen) >= 1 << k:
            break
    return perms, list(seen)


@dataclass(frozen=True)
class Permutation:
    """Permutation sampling (``permutation_masks``, ``permutation_shapley``); efficient by construction."""

    antithetic: bool = False
    max_permutations: int = 10_000
    name: str = "permutation"
    efficient: bool = True

    def plan(self, k: int, budget: int, rng: np.random.Generator) -> Plan:
        perms, masks = permutation_masks(k, budget, rng, self.max_permutations, self.antithetic)
        return Plan(k, tuple(masks), tuple(tuple(p) for p in perms))

    def estimate(self, values: Values, plan: Plan, rng: np.random.Generator | None = None) -> np.ndarray:
        return permutation_shapley(values, plan.k, plan.permutations)


def permutation_shapley(values: Values, k: int, perms: Sequence[Sequence[int]]) -> np.ndarray:
    """Mean marginal contribution of each player along the given permutations."""
    phi = np.zeros(k)
    for perm in perms:
        mask = 0
        for i in perm:
            phi[i] += values[mask | (1 << i)] - values[mask]
            mask |= 1 << i
    return phi / max(1, len(perms))


# ---------------------------------------------------------------------------------------------
# PMCSHAP (RAG-E): complementary pairs + repeated kernel-weighted ridge fits on subsamples
# ---------------------------------------------------------------------------------------------


def pmcshap_masks(k: int, n_evaluations: int, rng: np.random.Generator) -> list[int]:
    """Empty, full, then complementary pairs (S, ~S) of distinct non-trivial coalitions, in draw order.

    Pairs are drawn uniformly without replacement from the ``2^(k-1) - 1`` complementary pairs; at
    most ``n_evaluations`` coalitions in total (rounded down to whole pairs).
    """
    full = full_mask(k)
    n_pairs_all = (1 << (k - 1)) - 1
    n_pairs = max(0, min(n_pairs_all, (n_evaluations - 2) // 2))
    # a pair is named by its member without the highest player (masks 1 .. 2^(k-1)-1)
    chosen = rng.choice(np.arange(1, n_pairs_all + 1), size=n_pairs, replace=False)
    out = [0, full]
    for s in chosen:
        out += [int(s), full ^ int(s)]
    return out


def _kernel_ridge(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float) -> np.ndarray:
    """Weighted ridge regression with an unpenalised intercept; returns the coefficients."""
    xm = np.average(x, axis=0, weights=w)
    ym = np.average(y, weights=w)
    xc, yc = x - xm, y - ym
    a = (xc * w[:, None]).T @ xc + alpha * np.eye(x.shape[1])
    b = (xc * w[:, None]).T @ yc
    return np.linalg.solve(a, b)


def pmcshap(
    values: Values,
    k: int,
    masks: Sequence[int],
    rng: np.random.Generator,
    n_fits: int = 100,
    fit_pairs: int | None = 4,
    alpha: float = 1e-3,
) -> np.ndarray:
    """PMCSHAP estimate from the planned coalitions ``masks`` (``pmcshap_masks``) and their values.

    As in RAG-E (k-randl/Interpretable_RAG): ``n_fits`` times draw ``fit_pairs`` (None: all) of the
    sampled complementary pairs, fit a ridge regression (alpha 1e-3, free intercept) of the values on
    the membership indicators with Shapley-kernel weights, and average the coefficients. The empty and
    full coalitions are evaluated but, as there, not used by the regression (infinite kernel weight),
    so the estimate is not efficient.
    """
    pairs = [(masks[i], masks[i + 1]) for i in range(2, len(masks) - 1, 2)]
    if not pairs:
        return np.zeros(k)
    n = len(pairs) if fit_pairs is None else min(fit_pairs, len(pairs))
    fits = []
    for _ in range(n_fits):
        pick = rng.choice(len(pairs), size=n, replace=False)
        ms = [m for j in pick for m in pairs[j]]
        x = indicators(ms, k)
        y = np.array([values[int(m)] for m in ms])
        w = np.array([shapley_kernel_weight(int(s), k) for s in x.sum(1)])
        fits.append(_kernel_ridge(x, y, w, alpha))
    return np.mean(fits, axis=0)


@dataclass(frozen=True)
class PMCShap:
    """RAG-E's PMCSHAP (see ``pmcshap``); not efficient. ``estimate`` without ``rng`` uses seed 0."""

    n_fits: int = 100
    fit_pairs: int | None = 4
    alpha: float = 1e-3
    name: str = "pmcshap"
    efficient: bool = False

    def plan(self, k: int, budget: int, rng: np.random.Generator) -> Plan:
        return Plan(k, tuple(pmcshap_masks(k, budget, rng)))

    def estimate(self, values: Values, plan: Plan, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = np.random.default_rng(0) if rng is None else rng
        return pmcshap(values, plan.k, plan.masks, rng, self.n_fits, self.fit_pairs, self.alpha)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

ESTIMATORS: dict[str, Callable[..., Estimator]] = {
    "exact": Exact,
    "permutation": Permutation,
    "pmcshap": PMCShap,
    "kernelshap": KernelShap,
    "leverageshap": LeverageShap,
}


def _parse(text: str) -> object:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "all"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def make_estimator(spec: str | Estimator) -> Estimator:
    """An estimator from ``"name"`` or ``"name:key=value,..."`` (e.g. ``"permutation:antithetic=true"``)."""
    if not isinstance(spec, str):
        return spec
    name, _, opts = spec.partition(":")
    if name not in ESTIMATORS:
        raise ValueError(f"unknown Shapley estimator {name!r} (one of {', '.join(sorted(ESTIMATORS))})")
    kwargs = dict(kv.split("=", 1) for kv in opts.split(",") if kv)
    return ESTIMATORS[name](**{key.strip(): _parse(val) for key, val in kwargs.items()})


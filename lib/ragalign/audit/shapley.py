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
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

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
# Constrained regression: Kernel SHAP and Leverage SHAP
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Accuracy and convergence against exact values
# ---------------------------------------------------------------------------------------------


def spearman(a: np.ndarray, b: np.ndarray, tie_decimals: int | None = 9) -> float:
    """Spearman correlation; for a constant vector, 1 if both orders agree, else 0.

    Values equal up to round-off (``tie_decimals`` decimals of value / largest |value|) rank as ties,
    so that players with equal exact Shapley values (symmetric or null players) do not rank by
    floating-point noise; None ranks the raw values.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if tie_decimals is not None:
        scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0))) or 1.0
        a, b = np.round(a / scale, tie_decimals), np.round(b / scale, tie_decimals)
    if np.allclose(a, a[0]) or np.allclose(b, b[0]):
        return float(np.array_equal(np.argsort(a), np.argsort(b)))
    return float(spearmanr(a, b).statistic)


def accuracy(phi_hat: np.ndarray, phi: np.ndarray, tie_decimals: int | None = 9) -> dict[str, float]:
    """Spearman (see ``spearman``), normalised L2 error ||phi_hat - phi|| / ||phi|| and max abs error."""
    norm = float(np.linalg.norm(phi))
    err = float(np.linalg.norm(phi_hat - phi))
    return {
        "spearman": spearman(phi_hat, phi, tie_decimals),
        "normalised_error": err / norm if norm > 0 else float("nan"),
        "max_abs_error": float(np.abs(phi_hat - phi).max()),
    }


def convergence(
    table: Values, k: int, estimators: Iterable[str | Estimator], budgets: Sequence[int], repeats: int, seed: int
) -> pd.DataFrame:
    """Accuracy of each estimator vs exact Shapley as a function of the budget, by look-up in ``table``.

    ``table`` holds all ``2^k`` coalition values. One row per (estimator, budget, repeat): the distinct
    coalitions used (``evaluations``), ``spearman``, ``normalised_error``, ``max_abs_error`` and
    ``efficiency_gap``. Repeat ``r`` of an estimator at a budget draws from a generator seeded by
    (seed, estimator name, budget, r), so adding an estimator leaves the others' rows unchanged.
    """
    exact = exact_shapley(table, k)
    rows = []
    for spec in estimators:
        est = make_estimator(spec)
        label = spec if isinstance(spec, str) else est.name
        for budget, rep in itertools.product(budgets, range(repeats)):
            rng = np.random.default_rng([seed, zlib.crc32(label.encode()), budget, rep])
            plan = est.plan(k, budget, rng)
            phi = est.estimate(table, plan, rng)
            rows.append({"estimator": label, "budget": budget, "repeat": rep, "evaluations": len(plan.masks),
                         **accuracy(phi, exact), "efficiency_gap": efficiency_gap(phi, table, k)})
    return pd.DataFrame(rows)


def summarise(curve: pd.DataFrame, by: Sequence[str] = ("estimator", "budget")) -> pd.DataFrame:
    """Per group: runs, mean evaluations, median and quartiles of Spearman and normalised error, mean |efficiency gap|."""

    def q(p: float) -> Callable[[pd.Series], float]:
        return lambda s: float(s.quantile(p))

    g = curve.assign(abs_efficiency_gap=curve.efficiency_gap.abs()).groupby(list(by), sort=True)
    return g.agg(
        runs=("spearman", "size"),
        evaluations=("evaluations", "mean"),
        spearman_median=("spearman", "median"),
        spearman_q25=("spearman", q(0.25)),
        spearman_q75=("spearman", q(0.75)),
        error_median=("normalised_error", "median"),
        error_q25=("normalised_error", q(0.25)),
        error_q75=("normalised_error", q(0.75)),
        efficiency_gap_mean=("abs_efficiency_gap", "mean"),
    ).reset_index()


def evaluations_to_reach(
    curve: pd.DataFrame, threshold: float = 0.95, by: str = "estimator", stat: str = "median"
) -> dict[str, int | None]:
    """Smallest budget whose ``stat`` (median or mean) Spearman reaches ``threshold``, per ``by`` value
    (None when no budget does)."""
    agg = curve.groupby([by, "budget"]).spearman.agg(stat).reset_index()
    out: dict[str, int | None] = {}
    for name, df in agg.groupby(by):
        ok = df[df.spearman >= threshold].budget
        out[str(name)] = int(ok.min()) if len(ok) else None
    return out

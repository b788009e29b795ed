"""Attribution for RAG-E: Integrated Gradients for retrievers, Shapley values of documents for the generator.

Generator side. The players are the ``k`` documents a variant shows the generator; a coalition is
a bitmask (bit ``i`` = the document at position ``i``). The value of a coalition is how strongly
the generator still supports the answer it gave with all ``k`` documents when it sees only that
subset, in the original order: the mean token probability (or log-probability) of that answer.
Three estimators share one representation (a dict mask -> value):

- ``exact_shapley``: all ``2^k`` coalitions.
- ``pmcshap`` (RAG-E): complementary coalition pairs sampled without replacement, a Shapley-kernel
  weighted ridge regression with intercept fitted on many random subsamples of the pairs, averaged.
- ``permutation_shapley``: marginal contributions along random permutations.

Every estimator first *plans* the coalitions it needs (``*_masks``) so that an expensive value
function (the LLM) can evaluate all of them in one batched call; the estimate then only reads values.
``n_evaluations`` always counts distinct coalitions, the empty and the full one included.

Retriever side. ``integrated_gradients`` attributes a bi-encoder cosine or a cross-encoder logit to
the query and document tokens with captum's ``LayerIntegratedGradients`` on the word-embedding
layer; the baseline replaces every non-special token by [UNK] (or [PAD], [MASK], a zero vector).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

# ---------------------------------------------------------------------------------------------
# Coalitions
# ---------------------------------------------------------------------------------------------


def full_mask(k: int) -> int:
    return (1 << k) - 1


def members(mask: int, k: int) -> list[int]:
    """Player indices in a coalition, ascending (= the original order of the documents)."""
    return [i for i in range(k) if mask >> i & 1]


def all_masks(k: int) -> list[int]:
    return list(range(1 << k))


# ---------------------------------------------------------------------------------------------
# Exact Shapley
# ---------------------------------------------------------------------------------------------


def exact_shapley(values: Mapping[int, float] | Sequence[float], k: int) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# PMCSHAP (RAG-E): complementary pairs + repeated kernel-weighted ridge fits on subsamples
# ---------------------------------------------------------------------------------------------


def shapley_kernel_weight(size: int, k: int) -> float:
    """Kernel SHAP weight (k-1) / (C(k, s) s (k-s)) of a coalition of ``size`` players (0 < s < k)."""
    return (k - 1) / (math.comb(k, size) * size * (k - size))


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
    values: Mapping[int, float],
    k: int,
    masks: Sequence[int],
    rng: np.random.Generator,
    n_fits: int = 100,
    fit_pairs: int = 4,
    alpha: float = 1e-3,
) -> np.ndarray:
    """PMCSHAP estimate from the planned coalitions ``masks`` (``pmcshap_masks``) and their values.

    As in RAG-E (k-randl/Interpretable_RAG): ``n_fits`` times draw ``fit_pairs`` of the sampled
    complementary pairs, fit a ridge regression (alpha 1e-3, free intercept) of the values on the
    membership indicators with Shapley-kernel weights, and average the coefficients. The empty and
    full coalitions are evaluated but, as there, not used by the regression (infinite kernel weight).
    """
    pairs = [(masks[i], masks[i + 1]) for i in range(2, len(masks) - 1, 2)]
    if not pairs:
        return np.zeros(k)
    size = min(fit_pairs, len(pairs))
    bits = 1 << np.arange(k)
    fits = []
    for _ in range(n_fits):
        pick = rng.choice(len(pairs), size=size, replace=False)
        ms = np.array([m for j in pick for m in pairs[j]])
        x = ((ms[:, None] & bits) > 0).astype(float)
        y = np.array([values[int(m)] for m in ms])
        w = np.array([shapley_kernel_weight(int(s), k) for s in x.sum(1)])
        fits.append(_kernel_ridge(x, y, w, alpha))
    return np.mean(fits, axis=0)


# ---------------------------------------------------------------------------------------------
# Permutation sampling
# ---------------------------------------------------------------------------------------------


def permutation_masks(k: int, n_evaluations: int, rng: np.random.Generator, max_permutations: int = 10_000) -> tuple[list[list[int]], list[int]]:
    """Random permutations whose prefixes use at most ``n_evaluations`` distinct coalitions.

    Returns (permutations, distinct coalitions in first-use order). Draws permutations until the next
    one would exceed the budget (at least one permutation, which needs k+1 coalitions).
    """
    perms: list[list[int]] = []
    seen: dict[int, None] = {}
    for _ in range(max_permutations):
        perm = [int(i) for i in rng.permutation(k)]
        prefixes = [0]
        for i in perm:
            prefixes.append(prefixes[-1] | (1 << i))
        new = [m for m in prefixes if m not in seen]
        if perms and len(seen) + len(set(new)) > n_evaluations:
            break
        perms.append(perm)
        seen.update(dict.fromkeys(new))
        if len(seen) >= 1 << k:
            break
    return perms, list(seen)


def permutation_shapley(values: Mapping[int, float], k: int, perms: Sequence[Sequence[int]]) -> np.ndarray:
    """Mean marginal contribution of each player along the given permutations."""
    phi = np.zeros(k)
    for perm in perms:
        mask = 0
        for i in perm:
            phi[i] += values[mask | (1 << i)] - values[mask]
            mask |= 1 << i
    return phi / max(1, len(perms))


# ---------------------------------------------------------------------------------------------
# One entry point for the audit
# ---------------------------------------------------------------------------------------------


def plan_masks(k: int, max_exact_subsets: int, n_evaluations: int, seed: int) -> tuple[str, list[int], object]:
    """(method, coalitions to evaluate, plan) for ``estimate``: exact when 2^k <= max_exact_subsets."""
    if (1 << k) <= max_exact_subsets:
        return "exact", all_masks(k), None
    rng = np.random.default_rng(seed)
    masks = pmcshap_masks(k, n_evaluations, rng)
    return "pmcshap", masks, masks


def estimate(method: str, values: Mapping[int, float], k: int, plan: object, seed: int) -> np.ndarray:
    if method == "exact":
        return exact_shapley(values, k)
    if method == "pmcshap":
        return pmcshap(values, k, plan, np.random.default_rng(seed + 1))
    if method == "permutation":
        return permutation_shapley(values, k, plan)
    raise ValueError(f"unknown Shapley method {method!r}")


# ---------------------------------------------------------------------------------------------
# The generator game: subset prompts and their values
# ---------------------------------------------------------------------------------------------


def subset_value(token_logprobs: Sequence[float], value: str = "prob") -> float:
    """Mean token probability (``prob``) or mean token log-probability (``logprob``) of an answer."""
    lp = np.asarray(token_logprobs, dtype=float)
    if value == "prob":
        return float(np.exp(lp).mean())
    if value == "logprob":
        return float(lp.mean())
    raise ValueError(f"unknown value {value!r} (prob | logprob)")


@dataclass(frozen=True)
class Game:
    """One generator game: a question, its k passages in the order shown, the answer to support."""

    key: tuple
    question: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    answer: str
    masks: tuple[int, ...]


def game_values(
    games: Sequence[Game],
    token_logprobs: Callable[[list[str], list[str]], list[list[float]]],
    build_prompt: Callable[[str, Sequence[str]], str],
    value: str = "prob",
) -> list[dict[int, float]]:
    """Values of every planned coalition of every game, from ONE batched call of ``token_logprobs``.

    Identical (prompt, answer) pairs across games are scored once (the LM cache deduplicates too).
    """
    index: dict[tuple[str, str], int] = {}
    prompts: list[str] = []
    answers: list[str] = []
    refs: list[list[tuple[int, int]]] = []
    for g in games:
        k = len(g.texts)
        row = []
        for m in g.masks:
            prompt = build_prompt(g.question, [g.texts[i] for i in members(m, k)])
            pos = index.setdefault((prompt, g.answer), len(prompts))
            if pos == len(prompts):
                prompts.append(prompt)
                answers.append(g.answer)
            row.append((m, pos))
        refs.append(row)
    scores = token_logprobs(prompts, answers) if prompts else []
    vals = [subset_value(s, value) for s in scores]
    return [{m: vals[pos] for m, pos in row} for row in refs]


# ---------------------------------------------------------------------------------------------
# Convergence of the Monte-Carlo estimators against exact Shapley values
# ---------------------------------------------------------------------------------------------


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.allclose(a, a[0]) or np.allclose(b, b[0]):
        return float(np.array_equal(np.argsort(a), np.argsort(b)))
    return float(spearmanr(a, b).statistic)


def convergence(
    values: Mapping[int, float], k: int, budgets: Sequence[int], repeats: int, seed: int, n_fits: int = 100, fit_pairs: int = 4
) -> pd.DataFrame:
    """Error of PMCSHAP and permutation sampling vs exact Shapley as a function of evaluations.

    ``values`` holds all 2^k coalitions (computed once); the Monte-Carlo estimators only sample among
    them. One row per (method, budget, repeat): evaluations actually used, Spearman, max abs error.
    ``pmcshap_allpairs`` is the same kernel regression fitted once on all sampled pairs (no subsampling),
    to separate the cost of RAG-E's small-subsample averaging from that of sampling coalitions.
    """
    exact = exact_shapley(values, k)
    rows = []
    for budget, rep in itertools.product(budgets, range(repeats)):
        rng = np.random.default_rng([seed, budget, rep])
        masks = pmcshap_masks(k, budget, rng)
        est = pmcshap(values, k, masks, rng, n_fits=n_fits, fit_pairs=fit_pairs)
        rows.append({"method": "pmcshap", "budget": budget, "repeat": rep, "evaluations": len(masks), "spearman": _spearman(est, exact), "max_abs_error": float(np.abs(est - exact).max())})
        est = pmcshap(values, k, masks, rng, n_fits=1, fit_pairs=len(masks))
        rows.append({"method": "pmcshap_allpairs", "budget": budget, "repeat": rep, "evaluations": len(masks), "spearman": _spearman(est, exact), "max_abs_error": float(np.abs(est - exact).max())})
        perms, used = permutation_masks(k, budget, rng)
        est = permutation_shapley(values, k, perms)
        rows.append({"method": "permutation", "budget": budget, "repeat": rep, "evaluations": len(used), "spearman": _spearman(est, exact), "max_abs_error": float(np.abs(est - exact).max())})
    return pd.DataFrame(rows)


def evaluations_to_reach(curve: pd.DataFrame, threshold: float = 0.95) -> dict[str, int | None]:
    """Smallest budget whose mean Spearman (over repeats and questions) reaches ``threshold``, per method."""
    mean = curve.groupby(["method", "budget"]).spearman.mean().reset_index()
    out: dict[str, int | None] = {}
    for method, df in mean.groupby("method"):
        ok = df[df.spearman >= threshold].budget
        out[str(method)] = int(ok.min()) if len(ok) else None
    return out


# ---------------------------------------------------------------------------------------------
# Integrated Gradients for retrievers
# ---------------------------------------------------------------------------------------------


class ZeroableEmbedding(torch.nn.Module):
    """A word-embedding layer in which id -1 maps to the zero vector (the ``zero`` IG baseline)."""

    def __init__(self, embedding: torch.nn.Embedding):
        super().__init__()
        self.embedding = embedding

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = (ids >= 0).unsqueeze(-1)
        return self.embedding(ids.clamp(min=0)) * keep


def baseline_ids(ids: torch.Tensor, tokenizer, baseline: str) -> torch.Tensor:
    """``ids`` with every non-special token replaced by the baseline token (-1 for ``zero``)."""
    special = torch.tensor([[i in set(tokenizer.all_special_ids) and i != tokenizer.unk_token_id for i in row] for row in ids.tolist()])
    fill = {"unk": tokenizer.unk_token_id, "pad": tokenizer.pad_token_id, "mask": tokenizer.mask_token_id, "zero": -1}[baseline]
    if fill is None:
        raise ValueError(f"the tokenizer has no {baseline} token")
    return torch.where(special, ids, torch.full_like(ids, fill))


@dataclass
class TokenAttribution:
    """IG attributions of one (query, document) score; ``gap`` = sum(attr) - (score - baseline_score)."""

    query_tokens: list[str]
    query_attr: np.ndarray
    doc_tokens: list[str]
    doc_attr: np.ndarray
    score: float
    baseline_score: float

    @property
    def total(self) -> float:
        return float(self.query_attr.sum() + self.doc_attr.sum())

    @property
    def gap(self) -> float:
        return self.total - (self.score - self.baseline_score)

    @property
    def relative_gap(self) -> float:
        return abs(self.gap) / max(abs(self.score - self.baseline_score), 1e-12)

    @property
    def query_share(self) -> float:
        """Share of the total |attribution| that falls on the query's tokens."""
        q, d = np.abs(self.query_attr).sum(), np.abs(self.doc_attr).sum()
        return float(q / max(1e-12, q + d))


def retriever_explainer(
    kind: str, model: str | None, encoder: str, max_length: int, steps: int, baseline: str
) -> Callable[[str, str], TokenAttribution]:
    """``explain(query, doc)``: IG of a differentiable retriever's score for one pair.

    ``kind`` is ``bi-encoder`` (cosine of mean-pooled embeddings; ``model`` a fine-tuned encoder
    directory, or None for the stage-02 ``encoder``) or ``cross-encoder`` (``model`` the saved
    reranker directory). ``max_length`` is the retriever's own input length.
    """
    if kind == "bi-encoder":
        from ragalign.retrieval import DenseEncoder

        enc = DenseEncoder(model or encoder, max_length)
        return lambda q, d: ig_bi_encoder(enc.model, enc.tokenizer, q, d, max_length, steps, baseline)
    if kind == "cross-encoder":
        from ragalign.rerank import CrossEncoder

        ce = CrossEncoder.load(encoder, model, max_length)
        return lambda q, d: ig_cross_encoder(ce.model, ce.tokenizer, q, d, max_length, steps, baseline)
    raise ValueError(f"no Integrated Gradients for a {kind!r} retriever (bi-encoder or cross-encoder)")


def ig_summary(explanations: Mapping[tuple[str, str], TokenAttribution]) -> pd.DataFrame:
    """One row per explained (variant, qid): scores, completeness gap and the query's share."""
    return pd.DataFrame(
        [
            {"variant": v, "qid": q, "score": t.score, "baseline score": t.baseline_score, "sum of attributions": t.total,
             "gap": t.gap, "relative gap": t.relative_gap, "query share": t.query_share}
            for (v, q), t in explanations.items()
        ],
        columns=["variant", "qid", "score", "baseline score", "sum of attributions", "gap", "relative gap", "query share"],
    )


def _lig(forward: Callable[[torch.Tensor], torch.Tensor], layer: torch.nn.Module, ids: torch.Tensor, base: torch.Tensor, steps: int) -> tuple[np.ndarray, float, float]:
    from captum.attr import LayerIntegratedGradients

    lig = LayerIntegratedGradients(forward, layer)
    attr = lig.attribute(ids, baselines=base, n_steps=steps, internal_batch_size=steps)
    with torch.no_grad():
        score, base_score = float(forward(ids)[0]), float(forward(base)[0])
    return attr.sum(-1)[0].detach().double().numpy(), score, base_score


def ig_bi_encoder(model: torch.nn.Module, tokenizer, query: str, doc: str, max_length: int, steps: int = 50, baseline: str = "unk") -> TokenAttribution:
    """IG of cos(mean_pool(query), mean_pool(doc)) for a bi-encoder ``model`` (e.g. ``DenseEncoder.model``)."""
    from ragalign.retrieval import mean_pool

    model.eval()
    q = tokenizer([query], truncation=True, max_length=max_length, return_tensors="pt")
    d = tokenizer([doc], truncation=True, max_length=max_length, return_tensors="pt")
    lq = q["input_ids"].shape[1]
    layer = ZeroableEmbedding(model.get_input_embeddings())
    ids = torch.cat([q["input_ids"], d["input_ids"]], dim=1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        emb = layer(x)
        n = x.shape[0]
        outs = []
        for part, enc in ((emb[:, :lq], q), (emb[:, lq:], d)):
            mask = enc["attention_mask"].expand(n, -1)
            types = enc["token_type_ids"].expand(n, -1) if "token_type_ids" in enc else None
            hidden = model(inputs_embeds=part, attention_mask=mask, token_type_ids=types).last_hidden_state
            outs.append(mean_pool(hidden, mask))
        return (outs[0] * outs[1]).sum(-1)

    attr, score, base_score = _lig(forward, layer, ids, baseline_ids(ids, tokenizer, baseline), steps)
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    return TokenAttribution(tokens[:lq], attr[:lq], tokens[lq:], attr[lq:], score, base_score)


def ig_cross_encoder(model: torch.nn.Module, tokenizer, query: str, doc: str, max_length: int, steps: int = 50, baseline: str = "unk") -> TokenAttribution:
    """IG of the single logit of a cross-encoder (``rerank.CrossEncoder.model``) on [CLS] q [SEP] d [SEP]."""
    model.eval()
    enc = tokenizer([query], [doc], truncation="only_second", max_length=max_length, return_tensors="pt")
    layer = ZeroableEmbedding(model.get_input_embeddings())
    ids = enc["input_ids"]

    def forward(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        kwargs = {"attention_mask": enc["attention_mask"].expand(n, -1)}
        if "token_type_ids" in enc:
            kwargs["token_type_ids"] = enc["token_type_ids"].expand(n, -1)
        return model(inputs_embeds=layer(x), **kwargs).logits[:, 0]

    attr, score, base_score = _lig(forward, layer, ids, baseline_ids(ids, tokenizer, baseline), steps)
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    # the first [SEP] closes the query segment
    sep = tokens.index(tokenizer.sep_token) + 1 if tokenizer.sep_token in tokens else len(tokens)
    return TokenAttribution(tokens[:sep], attr[:sep], tokens[sep:], attr[sep:], score, base_score)


def shapley_table(games: Sequence[Game], values: Sequence[Mapping[int, float]], method: str, plan: object, seed: int) -> pd.DataFrame:
    """One row per game: its key, the ids in the order shown, Shapley values, v(empty), v(all)."""
    rows = []
    for g, vals in zip(games, values, strict=True):
        k = len(g.ids)
        phi = estimate(method, vals, k, plan, seed)
        rows.append({"key": g.key, "ids": list(g.ids), "shapley": [round(float(x), 6) for x in phi], "v_empty": vals[0], "v_full": vals[full_mask(k)], "method": method})
    return pd.DataFrame(rows)

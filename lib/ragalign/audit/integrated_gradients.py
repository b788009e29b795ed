"""Integrated Gradients for the retrievers of the RAG-E audit.

``ig_bi_encoder`` and ``ig_cross_encoder`` attribute a bi-encoder cosine or a cross-encoder logit to
the query and document tokens with captum's ``LayerIntegratedGradients`` on the word-embedding
layer; the baseline replaces every non-special token by [UNK] (or [PAD], [MASK], a zero vector).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ragalign.core.stopwatch import counted


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
    special = torch.tensor([[i in set(tokenizer.all_special_ids) and i != tokenizer.unk_token_id for i in row] for row in ids.tolist()], device=ids.device)
    fill = {"unk": tokenizer.unk_token_id, "pad": tokenizer.pad_token_id, "mask": tokenizer.mask_token_id, "zero": -1}[baseline]
    if fill is None:
        raise ValueError(f"the tokenizer has no {baseline} token")
    return torch.where(special, ids, torch.full_like(ids, fill))


SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]")  # MiniLM's: no attribution worth showing


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

    def content_tokens(self, side: str) -> list[tuple[str, float]]:
        """(token, attribution) pairs of the ``query`` or the ``doc`` side, special tokens left out."""
        tokens, attr = (self.query_tokens, self.query_attr) if side == "query" else (self.doc_tokens, self.doc_attr)
        return [(t, float(a)) for t, a in zip(tokens, attr, strict=True) if t not in SPECIAL_TOKENS]

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
        from ragalign.core.retrieval import DenseEncoder

        enc = DenseEncoder(model or encoder, max_length)
        return lambda q, d: ig_bi_encoder(enc.model, enc.tokenizer, q, d, max_length, steps, baseline)
    if kind == "cross-encoder":
        from ragalign.core.rerank import CrossEncoder

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


@counted("train")  # forwards and backwards through the encoder, like a training step
def _lig(forward: Callable[[torch.Tensor], torch.Tensor], layer: torch.nn.Module, ids: torch.Tensor, base: torch.Tensor, steps: int) -> tuple[np.ndarray, float, float]:
    from captum.attr import LayerIntegratedGradients

    lig = LayerIntegratedGradients(forward, layer)
    attr = lig.attribute(ids, baselines=base, n_steps=steps, internal_batch_size=steps)
    with torch.no_grad():
        score, base_score = float(forward(ids)[0]), float(forward(base)[0])
    return attr.sum(-1)[0].detach().double().cpu().numpy(), score, base_score


def ig_bi_encoder(model: torch.nn.Module, tokenizer, query: str, doc: str, max_length: int, steps: int = 50, baseline: str = "unk") -> TokenAttribution:
    """IG of cos(mean_pool(query), mean_pool(doc)) for a bi-encoder ``model`` (e.g. ``DenseEncoder.model``)."""
    from ragalign.core.retrieval import mean_pool

    model.eval()
    on = next(model.parameters()).device
    q = tokenizer([query], truncation=True, max_length=max_length, return_tensors="pt").to(on)
    d = tokenizer([doc], truncation=True, max_length=max_length, return_tensors="pt").to(on)
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
    """IG of the single logit of a cross-encoder (``rerank.CrossEncoder.model``) on [CLS] q [SEP] d [SEP].

    For the study's rerankers this logit is the learned correction on top of the dense prior: IG
    explains what training changed (all zeros for a reranker that kept its untrained start).
    """
    model.eval()
    enc = tokenizer([query], [doc], truncation="only_second", max_length=max_length, return_tensors="pt").to(next(model.parameters()).device)
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

"""Integrated Gradients of the retrievers: completeness on a tiny random BERT."""

from __future__ import annotations

import pytest
import torch

from ragalign.audit import integrated_gradients as IG


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog", "what", "?"]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64, num_labels=1)
    torch.manual_seed(0)
    return tok, BertModel(cfg).eval(), BertForSequenceClassification(cfg).eval()


@pytest.mark.parametrize("baseline", ["unk", "zero"])
def test_ig_completeness_bi_encoder(tiny_bert, baseline):
    tok, bert, _ = tiny_bert
    ta = IG.ig_bi_encoder(bert, tok, "what sat on the mat ?", "the cat sat on a mat", 32, steps=64, baseline=baseline)
    assert ta.query_tokens[0] == "[CLS]" and ta.doc_tokens[-1] == "[SEP]"
    assert ta.relative_gap < 0.02
    assert ta.query_attr[0] == 0.0  # special tokens equal the baseline: no attribution


def test_ig_completeness_cross_encoder(tiny_bert):
    tok, _, ce = tiny_bert
    ta = IG.ig_cross_encoder(ce, tok, "what sat ?", "the dog sat on the mat", 32, steps=64, baseline="mask")
    assert ta.query_tokens == ["[CLS]", "what", "sat", "?", "[SEP]"]
    assert ta.relative_gap < 0.02


def test_bm25_has_no_retriever_explainer():
    with pytest.raises(ValueError, match="bm25"):
        IG.retriever_explainer("bm25", None, "minilm-l6", 64, 4, "unk")

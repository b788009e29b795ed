"""The one batched LM path: batching, padding and caching must not change a single score."""

import pytest
import torch

from ragalign.lm import length_batches, pad_batch

PROMPTS = ["Where is Paris?", "A much longer prompt about the history of the city of Rome and its many emperors?", "Hi"]
ANSWERS = ["France", "Rome was founded in 753 BC", "Hello there"]


def test_length_batches_respects_budget_and_covers_all():
    lengths = [5, 50, 7, 49, 3, 100]
    batches = length_batches(lengths, 110)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= 110 or len(b) == 1


@pytest.mark.parametrize("side", ["left", "right"])
def test_pad_batch_positions_count_real_tokens(side):
    ids, mask, pos = pad_batch([[7, 8, 9], [5]], pad_id=0, side=side)
    assert mask.sum(1).tolist() == [3, 1]
    real = pos[1][mask[1].bool()]
    assert real.tolist() == [0]
    assert pos[0].tolist() == [0, 1, 2]


def test_batched_scores_equal_unbatched(tiny_lm):
    batched = tiny_lm._token_logprobs(PROMPTS, ANSWERS)
    single = [tiny_lm._token_logprobs([p], [a])[0] for p, a in zip(PROMPTS, ANSWERS, strict=True)]
    for b, s, a in zip(batched, single, ANSWERS, strict=True):
        assert len(b) == len(tiny_lm.answer_ids(a))
        assert b == pytest.approx(s, abs=1e-5)


def test_left_and_right_padding_agree(tiny_lm):
    right = {i: h for i, h, _ in tiny_lm.answer_hidden(PROMPTS, ANSWERS, padding_side="right")}
    left = {i: h for i, h, _ in tiny_lm.answer_hidden(PROMPTS, ANSWERS, padding_side="left")}
    for i in right:
        torch.testing.assert_close(right[i], left[i], atol=1e-5, rtol=1e-4)


def test_scores_match_a_plain_forward(tiny_lm):
    """Teacher forcing by hand: log p(a_t | prompt, a_<t) from one full forward."""
    ids = tiny_lm.prompt_ids(PROMPTS[1]) + tiny_lm.answer_ids(ANSWERS[1])
    n = len(tiny_lm.answer_ids(ANSWERS[1]))
    with torch.no_grad():
        logits = tiny_lm.model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[-n - 1 : -1], -1)
    expected = logprobs[torch.arange(n), torch.tensor(ids[-n:])].tolist()
    assert tiny_lm.token_logprobs([PROMPTS[1]], [ANSWERS[1]])[0] == pytest.approx(expected, abs=1e-5)


def test_prompt_uses_chat_template(tiny_lm):
    text = tiny_lm.tokenizer.decode(tiny_lm.prompt_ids("Q?"))
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nQ?<|im_end|>" in text


def test_generation_batched_equals_single_and_is_cached(tiny_lm):
    batched = tiny_lm._generate(PROMPTS, 6)
    single = [tiny_lm._generate([p], 6)[0] for p in PROMPTS]
    assert batched == single
    first = tiny_lm.generate(PROMPTS, 6)
    assert first == batched and tiny_lm.cache.misses == 3
    assert tiny_lm.generate(PROMPTS, 6) == first and tiny_lm.cache.hits == 3


def test_cost_counts_cache_hits_too(tiny_lm):
    tiny_lm.token_logprobs(PROMPTS, ANSWERS)
    cold = (tiny_lm.evaluations, tiny_lm.forward_tokens)
    tiny_lm.token_logprobs(PROMPTS, ANSWERS)
    assert (tiny_lm.evaluations, tiny_lm.forward_tokens) == (2 * cold[0], 2 * cold[1])


def test_shared_answer_path_matches_per_prompt_scoring(tiny_lm):
    shared = tiny_lm.shared_answer_logprobs(PROMPTS, "Paris")
    single = [tiny_lm._token_logprobs([p], ["Paris"])[0] for p in PROMPTS]
    for s, u in zip(shared, single, strict=True):
        assert s == pytest.approx(u, abs=1e-5)

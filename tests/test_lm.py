"""The one batched LM path: batching, padding and caching must not change a single score."""

import pytest
import torch

PROMPTS = ["Where is Paris?", "A much longer prompt about the history of the city of Rome and its many emperors?", "Hi"]
ANSWERS = ["France", "Rome was founded in 753 BC", "Hello there"]


def test_batched_scores_equal_unbatched(tiny_lm):
    batched = tiny_lm._token_logprobs(PROMPTS, ANSWERS)
    single = [tiny_lm._token_logprobs([p], [a])[0] for p, a in zip(PROMPTS, ANSWERS, strict=True)]
    for b, s, a in zip(batched, single, ANSWERS, strict=True):
        assert len(b) == len(tiny_lm.answer_ids(a))
        assert b == pytest.approx(s, abs=1e-5)


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


# ---- batch invariance of the real generator in bf16 (issue: a value must not depend on its batch)
RAG_PROMPTS = [
    "Paris: Paris is the capital and largest city of France.\n\nQuestion: What is the capital of France?\nGive only the answer, in at most five words.",
    "Question: Who wrote Hamlet?\nGive only the answer, in at most five words.",
    "Rome: Rome is the capital city of Italy. " * 6 + "\n\nQuestion: Which country is Rome in?\nGive only the answer, in at most five words.",
    "Lyon: Lyon is a city in France on the Rhône.\n\nBerlin: Berlin is the capital of Germany.\n\nQuestion: Where is Lyon?\nGive only the answer, in at most five words.",
]


@pytest.fixture(scope="module")
def smol_lm(tmp_path_factory):
    from ragalign.core.lm import LM

    return LM("smollm2-135m-instruct", "bfloat16", cache_root=str(tmp_path_factory.mktemp("cache")), show_progress=False)


@pytest.mark.native_bf16
def test_bf16_scores_are_bitwise_batch_invariant(smol_lm):
    """The same (prompt, answer) gives the same bits alone or with any others, in any order."""
    answers = ["Paris", "William Shakespeare", "Italy", "France"]
    batched = smol_lm._token_logprobs(RAG_PROMPTS, answers)
    for i in range(len(RAG_PROMPTS)):
        assert smol_lm._token_logprobs([RAG_PROMPTS[i]], [answers[i]])[0] == batched[i]
    assert smol_lm._token_logprobs(RAG_PROMPTS[::-1], answers[::-1]) == batched[::-1]


def test_short_prompts_decode_in_full_groups_of_one_length(tiny_lm):
    """Short prompts of one token length share a decoding group of exactly DECODE_ROWS rows, and a
    reply is the same bits alone (its group filled with copies) or next to other prompts. (The lengths are
    the real SmolLM2 tokenizer's; the model is the tiny float32 one: the bf16 model's batch invariance is
    test_bf16_greedy_answers_are_batch_invariant's, on hosts with native bf16.)"""
    from ragalign.core.lm import DECODE_ROWS

    short = [f"Question: Who wrote {t}?" for t in ("Hamlet", "Macbeth", "Othello", "Emma")]
    length = {len(tiny_lm.prompt_ids(p)) for p in short}
    groups = tiny_lm.generation_groups(short)
    assert all(len(g) == DECODE_ROWS for g in groups) and sorted({i for g in groups for i in g}) == list(range(len(short)))
    assert all(len({len(tiny_lm.prompt_ids(short[i])) for i in g}) == 1 for g in groups)
    together = tiny_lm._generate(short, 6)
    assert [tiny_lm._generate([p], 6)[0] for p in short] == together
    assert len(length) < len(short), "the test needs prompts that share a length"


def test_generate_decodes_a_chunk_of_one_length_together_with_each_reply_as_alone(tiny_lm):
    """Missing prompts are chunked in order of length (more than a chunk of 32 here, lengths interleaved), so the
    chunks' decoding groups are full; every reply is still the one the prompt gets alone, in the caller's order."""
    prompts = [f"Question: {'very ' * (i % 3)}short number {i}?" for i in range(40)]
    groups = []
    original = tiny_lm._generate
    tiny_lm._generate = lambda chunk, n, desc=None: groups.extend(tiny_lm.generation_groups(chunk)) or original(chunk, n, desc)
    together = tiny_lm.generate(prompts, 4)
    tiny_lm._generate = original
    lengths = [tiny_lm.n_prompt_tokens(p) for p in prompts]

    def n_groups(part: list[int]) -> int:  # 8-row groups of one length
        return sum(-(-part.count(n) // 8) for n in set(part))

    in_callers_order = sum(n_groups(lengths[s : s + 32]) for s in range(0, len(lengths), 32))
    assert len(groups) <= n_groups(lengths) + 1 < in_callers_order  # at most one length split by the chunk boundary
    assert together == [original([p], 4)[0] for p in prompts]


@pytest.mark.native_bf16
def test_bf16_greedy_answers_are_batch_invariant(smol_lm):
    """A prompt's greedy reply is the same alone or next to others, in any order."""
    batched = smol_lm._generate(RAG_PROMPTS[:3], 8)
    assert [smol_lm._generate([p], 8)[0] for p in RAG_PROMPTS[:3]] == batched


@pytest.mark.parametrize("shared_prefill", [True, False])
def test_answer_matches_the_two_pass_way(tiny_lm, monkeypatch, shared_prefill):
    """LM.answer: the greedy reply that decoding alone gives, and the gold answers' token log-probs
    that scoring gives (float32: within 1e-5), from one forward of the prompt (long prompts) or
    grouped decoding (short ones); cached."""
    if shared_prefill:  # treat these short prompts as long ones
        monkeypatch.setattr(tiny_lm, "decode_rows", lambda n_tokens: 1)
    golds = [["France", "Paris"], ["753 BC"], ["Hello"]]
    out = tiny_lm.answer(PROMPTS, golds, 6)
    for (reply, scores), prompt, gs in zip(out, PROMPTS, golds, strict=True):
        assert reply == tiny_lm._generate([prompt], 6)[0]
        for s, g in zip(scores, gs, strict=True):
            assert s == pytest.approx(tiny_lm._token_logprobs([prompt], [g])[0], abs=1e-5)
    assert tiny_lm.answer(PROMPTS, golds, 6) == out and tiny_lm.cache.hits == 3


@pytest.mark.native_bf16
def test_bf16_answer_is_batch_invariant(smol_lm):
    """A prompt's (reply, gold scores) from LM.answer are the same bits alone or with the others."""
    golds = [["Paris"], ["William Shakespeare", "Shakespeare"], ["Italy"], ["France"]]
    together = [smol_lm._answer_one(p, g, 8) for p, g in zip(RAG_PROMPTS, golds, strict=True)]
    assert smol_lm._answer_one(RAG_PROMPTS[2], golds[2], 8) == together[2]


def test_shared_prefill_answers_like_two_passes_in_float32(tmp_path):
    """LM.answer's greedy replies equal decoding alone (the two-pass way) in float32. In bf16 the two paths
    round the prompt's pieces differently: on an Intel Xeon with AMX one of these four replies changed
    its wording ("The capital of France is Paris." vs "Paris is the capital of France."), while on an
    AMD Zen 5 all four (and 32 of 32 in bench/results/answering.json) were the same."""
    from ragalign.core.lm import LM

    lm = LM("smollm2-135m-instruct", "float32", cache_root=str(tmp_path), show_progress=False)
    golds = [["Paris"], ["William Shakespeare", "Shakespeare"], ["Italy"], ["France"]]
    together = [lm._answer_one(p, g, 8) for p, g in zip(RAG_PROMPTS, golds, strict=True)]
    assert [r for r, _ in together] == [lm._generate([p], 8)[0] for p in RAG_PROMPTS]

"""The prefix-tree path scores exactly what the full forward scores, once per (prompt, answer)."""

from __future__ import annotations

import numpy as np
import pytest

from ragalign.audit.coalitions import (
    KEY_NAMESPACE,
    PrefixScorer,
    Segmentation,
    as_token_logprobs,
    build_tree,
    prefix_token_logprobs,
)
from ragalign.audit.shapley import all_masks, members
from ragalign.core.rag import build_prompt

DOCS = [
    "Paris: Paris is the capital and largest city of France.",
    "Rome: Rome was founded in 753 BC, according to legend, by Romulus.",
    "Seine: The Seine flows through Paris before reaching the English Channel.",
    "Berlin: Berlin is the capital of Germany",
]
QUESTION = "Which river flows through the capital of France?"
ANSWERS = ["the Seine", "It is the river Seine, in France"]


def coalition_prompts(question: str, docs: list[str]) -> list[str]:
    return [build_prompt(question, [docs[i] for i in members(m, len(docs))]) for m in all_masks(len(docs))]


def full_values(lm, prompts, answers):
    flat = lm._token_logprobs(
        [p for p, ans in zip(prompts, answers, strict=True) for _ in ans], [a for ans in answers for a in ans]
    )
    out, at = [], 0
    for ans in answers:
        out.append(flat[at : at + len(ans)])
        at += len(ans)
    return out


def max_abs_diff(a, b) -> float:
    return max(
        abs(x - y)
        for ra, rb in zip(a, b, strict=True)
        for va, vb in zip(ra, rb, strict=True)
        for x, y in zip(va, vb, strict=True)
    )


def test_segmentation_is_header_then_passages_then_the_rest(tiny_lm):
    seg = Segmentation.of(tiny_lm)
    assert seg.separator == (198, 198)  # "\n\n" after a passage, inside SmolLM2's chat template
    assert tiny_lm.tokenizer.decode(list(seg.header)).endswith("<|im_start|>user\n")
    docs = ["Paris: capital.", "Two\n\nparagraphs", DOCS[3]]
    leading, tail = seg.split(tiny_lm.prompt_ids(build_prompt(QUESTION, docs)))
    text = [tiny_lm.tokenizer.decode(list(s)) for s in leading]
    assert leading[0] == seg.header and text[1:] == [
        "Paris: capital.\n\n",
        "Two\n\n",
        "paragraphs\n\n",
        DOCS[3] + "\n\n",
    ]
    assert tiny_lm.tokenizer.decode(list(tail)).startswith(f"Question: {QUESTION}")
    # Cut positions are a function of the ids alone; never at the very end, no header, no cut.
    assert seg.cuts([5, 198, 198, 7, 198, 198]) == [3] and seg.cuts([198, 198, 198]) == [2] and seg.cuts([7]) == []


def test_build_tree_one_edge_per_segment_never_merged():
    a, b, c, d = (1, 2), (3,), (4, 5), (6,)
    root = build_tree([[a, b, c], [a, b], [a, d], [a, d], [], [c]])
    assert (root.end, root.ends, list(root.children)) == (0, [4], [a, c])
    one = root.children[a]
    assert (one.end, one.ends, list(one.children)) == (2, [], [b, d])
    assert (one.children[b].ends, one.children[d].ends, one.children[d].end) == ([1], [2, 3], 3)
    assert list(one.children[b].children) == [c] and one.children[b].children[c].ends == [0]  # a chain stays two edges
    assert root.children[c].ends == [5]


def test_prefix_tree_equals_full_forward(tiny_lm):
    prompts = coalition_prompts(QUESTION, DOCS)
    answers = [list(ANSWERS) for _ in prompts]
    tree = prefix_token_logprobs(tiny_lm, prompts, answers)
    full = full_values(tiny_lm, prompts, answers)
    assert [[len(v) for v in row] for row in tree] == [[len(tiny_lm.answer_ids(a)) for a in ANSWERS]] * len(prompts)
    assert max_abs_diff(tree, full) < 1e-5


def test_forwards_one_per_segment_and_one_per_answer(tiny_lm):
    prompts = coalition_prompts(QUESTION, DOCS[:3])
    ids = [tiny_lm.prompt_ids(p) for p in prompts]
    ans = [[tiny_lm.answer_ids(a) for a in ANSWERS]] * len(prompts)
    scorer = PrefixScorer(tiny_lm, ids, ans)
    assert max_abs_diff(scorer.run(), full_values(tiny_lm, prompts, [ANSWERS] * len(prompts))) < 1e-5
    # The header once, each distinct run of leading passages once (7 nonempty coalitions of 3 in order:
    # 1 + 2 + 4 trie edges below the header), each prompt's last segment once, then one forward per
    # (prompt, answer of more than one token).
    longer = sum(len(a) > 1 for a in ans[0])
    assert scorer.forwards == 1 + 7 + len(prompts) + len(prompts) * longer
    assert scorer.tokens_forwarded < sum(len(p) + len(a) for p, row in zip(ids, ans, strict=True) for a in row)


def test_odd_inputs_one_prompt_prefixes_of_each_other_and_empty_answer(tiny_lm):
    prompts = ["Hi", "Hi", build_prompt("Q?"), build_prompt("Q?", ["A doc."])]
    answers = [["x"], ["x", "a longer answer"], [""], ["yes", "no"]]
    tree = prefix_token_logprobs(tiny_lm, prompts, answers)
    assert max_abs_diff(tree, full_values(tiny_lm, prompts, answers)) < 1e-5
    alone = prefix_token_logprobs(tiny_lm, ["Hi"], [["a longer answer"]])  # root edge = the whole prompt
    assert alone[0][0] == pytest.approx(tree[1][1], abs=1e-5)


def test_cache_hits_and_shared_coalitions_computed_once(tiny_lm, monkeypatch):
    """Two variants whose games share coalitions (same documents, same order, same answer)."""
    from ragalign.audit import coalitions

    computed: list[tuple[str, str]] = []
    score_pairs = coalitions._score_pairs
    monkeypatch.setattr(
        coalitions, "_score_pairs", lambda lm, pairs, *a: computed.extend(pairs) or score_pairs(lm, pairs, *a)
    )
    variant_a = coalition_prompts(QUESTION, DOCS[:3])
    variant_b = coalition_prompts(QUESTION, [DOCS[0], DOCS[1], DOCS[3]])  # shares the coalitions of docs 0 and 1
    prompts = variant_a + variant_b
    answers = [list(ANSWERS) for _ in prompts]
    shared = len(set(variant_a) & set(variant_b))
    assert shared == 4
    first = prefix_token_logprobs(tiny_lm, prompts, answers)
    pairs = len(prompts) * len(ANSWERS)
    unique = pairs - shared * len(ANSWERS)
    assert (
        len(computed) == len(set(computed)) == unique == len(tiny_lm.cache)
    )  # each shared pair computed and stored once
    assert first[:4] == first[8:12] and first[4:8] != first[12:16]  # masks 0-3 (docs 0 and 1 only) coincide
    assert tiny_lm.evaluations == pairs  # cost counted per (prompt, answer), like LM.count
    second = prefix_token_logprobs(tiny_lm, prompts, answers)
    assert second == first and len(computed) == unique  # all from the cache
    assert tiny_lm.cache.hits == pairs and tiny_lm.evaluations == 2 * pairs


def test_namespace_is_separate_from_full_forward(tiny_lm):
    prompts = [build_prompt(QUESTION, DOCS[:1])]
    prefix_token_logprobs(tiny_lm, prompts, [["the Seine"]])
    tiny_lm.token_logprobs(prompts, ["the Seine"])
    assert len(tiny_lm.cache) == 2 and KEY_NAMESPACE != "logprobs"


def test_as_token_logprobs_matches_lm_shape(tiny_lm):
    prompts = coalition_prompts(QUESTION, DOCS[:2])
    answers = ["Paris", "the Seine", "Paris", "x"]
    got = as_token_logprobs(tiny_lm)(prompts, answers)
    want = tiny_lm._token_logprobs(prompts, answers)
    assert len(got) == len(want) and all(g == pytest.approx(w, abs=1e-5) for g, w in zip(got, want, strict=True))


@pytest.fixture(scope="module")
def real_lm(tmp_path_factory):
    """The study's generator in bf16 (the dtype where rounding could make values depend on the others)."""
    from ragalign.core.lm import LM

    return LM("smollm2-135m-instruct", "bfloat16", cache_root=str(tmp_path_factory.mktemp("real")), show_progress=False)


def fresh(lm, tmp_path, name: str):
    """The same model behind an empty cache: nothing can come from an earlier call."""
    from ragalign.core.lm import LM

    return LM(
        lm.name, lm.dtype, cache_root=str(tmp_path / name), tokenizer=lm.tokenizer, model=lm.model, show_progress=False
    )


def real_game(lm, k: int = 3):
    return coalition_prompts(QUESTION, [lm.truncate(d, 32) for d in DOCS[:k]])


@pytest.mark.native_bf16
def test_real_bf16_value_does_not_depend_on_the_other_prompts(real_lm, tmp_path):
    """Bitwise: each coalition scored alone, with its whole game, or in small chunks of a shuffled game."""
    prompts = real_game(real_lm)
    answers = [[ANSWERS[0]] for _ in prompts]
    together = prefix_token_logprobs(fresh(real_lm, tmp_path, "together"), prompts, answers)
    for i in (0, 3, 5, len(prompts) - 1):
        alone = prefix_token_logprobs(fresh(real_lm, tmp_path, f"alone{i}"), [prompts[i]], [answers[i]])
        assert alone[0] == together[i]
    order = [5, 2, 7, 0, 6, 1, 4, 3]
    chunked = prefix_token_logprobs(
        fresh(real_lm, tmp_path, "chunked"), [prompts[i] for i in order], [answers[i] for i in order], chunk_size=3
    )
    assert chunked == [together[i] for i in order]


@pytest.mark.native_bf16
def test_real_bf16_answers_of_one_prompt_pass_equal_each_alone(real_lm, tmp_path):
    prompts = real_game(real_lm)[-2:]
    both = prefix_token_logprobs(fresh(real_lm, tmp_path, "both"), prompts, [list(ANSWERS)] * len(prompts))
    for j, answer in enumerate(ANSWERS):
        alone = prefix_token_logprobs(fresh(real_lm, tmp_path, f"alone{j}"), prompts, [[answer]] * len(prompts))
        assert [row[j] for row in both] == [row[0] for row in alone]


# Observed on an AMD EPYC, transformers 5.23 / torch 2.13: 0 (bit-identical) in this game with 2 threads,
# and 0 over the 24 sampled HotpotQA coalitions (k=5 and k=8) of bench/results/prefix_sharing.json with
# 1 thread; the earlier, non-canonical prefix tree reached 0.038 of a mean token log-prob (3e-5 of a mean
# token prob) with 2 threads: bf16 may round the pieces of a prompt a little differently from one forward
# (now the same whatever else is scored: the difference depends on the pair alone). The bound leaves
# room for other CPUs without letting a real error (a wrong position, a lost cache) through: those move
# the mean log-prob by whole nats. On an Intel Xeon with AMX (family 6, model 167; bf16 on AMX tiles) the
# same game reached 0.064 with 2 threads: another CPU's bf16 kernels round differently again.
BF16_MEAN_LOGPROB_TOL = 0.1


@pytest.mark.native_bf16
def test_real_bf16_model_matches_full_forward(real_lm, tmp_path):
    prompts = real_game(real_lm)
    answers = [list(ANSWERS) for _ in prompts]
    tree = prefix_token_logprobs(fresh(real_lm, tmp_path, "tree"), prompts, answers)
    full = full_values(real_lm, prompts, answers)
    diff = max(
        abs(np.mean(t) - np.mean(f)) for rt, rf in zip(tree, full, strict=True) for t, f in zip(rt, rf, strict=True)
    )
    print(f"bf16 max abs diff of mean token log-prob: {diff:.3g}")
    assert diff <= BF16_MEAN_LOGPROB_TOL

"""Answer log-probabilities of many prompts that share leading passages, reusing the key/value cache.

The coalitions of a RAG-E game keep their documents in the original order, so their prompts share
leading pieces: the chat header, then the first documents. :func:`prefix_token_logprobs` cuts every
prompt (its :meth:`LM.prompt_ids`) into **canonical segments**, at positions that depend on that
prompt's own tokens only (:class:`Segmentation`):

- the chat-template header (everything before the user message), when the prompt starts with it;
- then a cut right after every occurrence of the passage separator (``rag.build_prompt`` ends each
  passage with ``"\\n\\n"``; inside SmolLM2's chat template that is the two tokens ``198, 198``);
- the last segment (question, instruction, assistant header) is forwarded once per prompt, on top of
  the prompt's node; its last position predicts every answer's first token.

The segments form a trie (a node is a run of whole leading segments, an edge is one segment) that is
walked depth first: each edge is one forward, on top of its parent's cache; each prompt is one forward
of its last segment on top of its node, and each of its answers one forward of all but the answer's
last token on top of that.
So the computation of a (prompt, answer) is the same sequence of forwards, on the same inputs,
whatever else is scored with it: values are **batch invariant** (bit-identical scored alone or with
the other coalitions of the game), like every value of :class:`LM`, and sharing happens exactly where
prompts share whole leading segments. Edges are never merged (a chain of segments is one forward per
segment even where nothing branches), since merging would make the forwards depend on the others.
Memory holds one cache per level of the walk (at most one per passage, plus the header).

Values are what :meth:`LM.token_logprobs` returns (float32 log-softmax of the LM head at the
positions predicting each answer token), computed in pieces instead of one forward; bf16 rounds the
pieces a little differently from one forward (``tests/test_coalitions.py`` bounds the difference).
Like :meth:`LM.answer_hidden` every forward is one unpadded sequence. They are cached under their own
key namespace (``logprobs-segments``, with the segmentation in the key), so values of the two
numerical paths never mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm import tqdm
from transformers import DynamicCache

from ragalign.core.cache import make_key
from ragalign.core.lm import LM
from ragalign.core.rag import build_prompt

KEY_NAMESPACE = "logprobs-segments"

State = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per layer (keys, values), each [1, heads, length, dim]
Segment = tuple[int, ...]


@dataclass(frozen=True)
class Segmentation:
    """Where a prompt's token ids are cut: a function of those ids alone.

    Cuts: after ``header`` when the ids start with it, and after every occurrence of ``separator``
    (scanned left to right, without overlap, as ``str.split`` does), never at the very end (the last
    segment, which holds the token predicting the answer's first token, must not be empty).
    """

    header: Segment
    separator: Segment

    @classmethod
    def of(cls, lm: LM) -> Segmentation:
        """The chat header and the passage separator as ``lm``'s chat template tokenises ``rag.build_prompt``."""
        one, other = lm.prompt_ids("A."), lm.prompt_ids("B.")  # they differ from their first content token
        header = 0
        while header < min(len(one), len(other)) and one[header] == other[header]:
            header += 1
        bare = lm.prompt_ids(build_prompt("Q?"))
        tail = bare[header:]  # question, instruction, assistant header
        doc = lm.tokenizer("A.", add_special_tokens=False).input_ids
        with_doc = lm.prompt_ids(build_prompt("Q?", ["A."]))
        separator = with_doc[header + len(doc) : len(with_doc) - len(tail)]
        if (
            bare[:header] != one[:header]
            or with_doc[: header + len(doc)] != bare[:header] + doc
            or with_doc[len(with_doc) - len(tail) :] != tail
            or not separator
        ):
            raise ValueError(f"cannot find the passage separator of {lm.name}'s chat template")
        return cls(tuple(bare[:header]), tuple(separator))

    def cuts(self, ids: Sequence[int]) -> list[int]:
        """Cut positions, increasing, each in ``(0, len(ids))``."""
        out = []
        h, s = len(self.header), len(self.separator)
        at = h if h and tuple(ids[:h]) == self.header else 0
        if at:
            out.append(at)
        while s and at + s <= len(ids):
            if tuple(ids[at : at + s]) == self.separator:
                at += s
                out.append(at)
            else:
                at += 1
        return [c for c in out if c < len(ids)]

    def split(self, ids: Sequence[int]) -> tuple[list[Segment], Segment]:
        """(the leading segments, the last segment): their concatenation is ``ids``."""
        bounds = [0, *self.cuts(ids), len(ids)]
        pieces = [tuple(ids[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
        return pieces[:-1], pieces[-1]


@dataclass
class Node:
    """A node of the segment trie: the leading segments ``prefix`` (``end`` tokens), reached by the edge ``segment``."""

    segment: Segment
    end: int
    children: dict[Segment, Node] = field(default_factory=dict)
    ends: list[int] = field(default_factory=list)  # prompts whose leading segments are exactly this node's


def build_tree(leading: Sequence[Sequence[Segment]]) -> Node:
    """The trie of the prompts' leading segments (one edge per segment, never merged); the root is empty."""
    root = Node((), 0)
    for i, segments in enumerate(leading):
        node = root
        for seg in segments:
            if seg not in node.children:
                node.children[seg] = Node(seg, node.end + len(seg))
            node = node.children[seg]
        node.ends.append(i)
    return root


class PrefixScorer:
    """One depth-first walk over the segment trie of prompts and their answers.

    Every forward is one sequence, unpadded, like :meth:`LM.answer_hidden` (padded batches are not
    batch invariant): each leading segment once, on top of its parent's cache; each prompt's last
    segment once, on top of its node; then one forward per answer of more than one token (all but its
    last token) on top of the last segment. The answers of a prompt (the generator's own and the gold
    ones) share the whole prompt; a value never depends on which other answers were asked.
    """

    def __init__(
        self,
        lm: LM,
        prompt_ids: Sequence[Sequence[int]],
        answer_ids: Sequence[Sequence[Sequence[int]]],
        segmentation: Segmentation | None = None,
    ):
        self.lm = lm
        self.segmentation = segmentation or Segmentation.of(lm)
        self.prompts = [list(p) for p in prompt_ids]
        self.answers = [[list(a) for a in ans] for ans in answer_ids]
        if len(self.prompts) != len(self.answers):
            raise ValueError(f"{len(self.prompts)} prompts but {len(self.answers)} answer lists")
        if any(not p for p in self.prompts) or any(not a for ans in self.answers for a in ans):
            raise ValueError("empty prompt or answer token ids")
        split = [self.segmentation.split(p) for p in self.prompts]
        self.tails = [list(tail) for _, tail in split]
        self.root = build_tree([leading for leading, _ in split])
        self.out: list[list[list[float]]] = [[[] for _ in ans] for ans in self.answers]
        self.tokens_forwarded = 0
        self.forwards = 0
        self.bar: tqdm | None = None

    def run(self, bar: tqdm | None = None) -> list[list[list[float]]]:
        """result[i][j] = token log-probs of answer j of prompt i."""
        self.bar = bar
        with torch.inference_mode():
            self._visit(self.root, None)
        return self.out

    def _visit(self, node: Node, state: State | None) -> None:
        for s in node.ends:
            tail = self.tails[s]
            tail_hidden, tail_state = self._forward(state, node.end, tail)  # once, for all the prompt's answers
            first = tail_hidden[-1:]  # predicts every answer's first token
            for j, answer in enumerate(self.answers[s]):
                if len(answer) == 1:
                    self._score(s, j, first)
                    continue
                rest, _ = self._forward(tail_state, node.end + len(tail), answer[:-1])
                self._score(s, j, torch.cat([first, rest]))
        for child in node.children.values():
            _, child_state = self._forward(state, node.end, list(child.segment))
            self._visit(child, child_state)  # its subtree's caches go when it is done

    def _forward(self, state: State | None, length: int, tokens: list[int]) -> tuple[torch.Tensor, State]:
        """(hidden states [T, H], the cache after them) of ``tokens`` after ``state`` (``length`` tokens)."""
        lm = self.lm
        ids = torch.tensor([tokens], device=lm.device)
        positions = torch.arange(length, length + len(tokens), device=lm.device)[None]
        # The cache grows by concatenation, a fresh contiguous copy: ``state`` stays as it is.
        cache = DynamicCache() if state is None else DynamicCache(ddp_cache_data=state)
        out = lm.model.model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True)
        self.forwards += 1
        self.tokens_forwarded += len(tokens)
        return out.last_hidden_state[0], tuple((layer.keys, layer.values) for layer in out.past_key_values.layers)

    def _score(self, s: int, j: int, hidden: torch.Tensor) -> None:
        logprobs = torch.log_softmax(self.lm.model.lm_head(hidden).float(), dim=-1)
        answer = self.answers[s][j]
        self.out[s][j] = logprobs[torch.arange(len(answer)), torch.tensor(answer, device=logprobs.device)].tolist()
        if self.bar is not None:
            self.bar.update(1)


def _score_pairs(
    lm: LM, pairs: Sequence[tuple[str, str]], bar: tqdm | None, segmentation: Segmentation
) -> list[list[float]]:
    """Token log-probs of (prompt, answer) pairs, uncached: one trie walk, answers grouped by prompt."""
    prompts: dict[str, int] = {}
    answers: list[list[str]] = []
    where = []
    for p, a in pairs:
        s = prompts.setdefault(p, len(prompts))
        if s == len(answers):
            answers.append([])
        answers[s].append(a)
        where.append((s, len(answers[s]) - 1))
    scorer = PrefixScorer(
        lm, [lm.prompt_ids(p) for p in prompts], [[lm.answer_ids(a) for a in ans] for ans in answers], segmentation
    )
    out = scorer.run(bar)
    return [out[s][j] for s, j in where]


def prefix_token_logprobs(
    lm: LM,
    prompts: Sequence[str],
    answers: Sequence[Sequence[str]],
    desc: str | None = None,
    chunk_size: int = 2048,
) -> list[list[list[float]]]:
    """result[i][j] = teacher-forced token log-probs of ``answers[i][j]`` after ``prompts[i]``, cached on disk.

    A value depends only on its (prompt, answer): not on the other pairs, the chunking or the cache.
    Identical pairs are scored once, in this call and across calls (the cache); missing pairs are
    scored in prompt order (so a chunk's prompts share their leading segments), ``chunk_size`` pairs
    per trie walk (one cache write each, so an interrupted run resumes from its last finished chunk).
    Cost is counted like :meth:`LM.count`: one evaluation and the full prompt + answer tokens per pair.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answer lists")
    segmentation = Segmentation.of(lm)
    flat = [(p, str(a)) for p, ans in zip(prompts, answers, strict=True) for a in ans]
    lm.count([p for p, _ in flat], [a for _, a in flat])
    order = sorted(range(len(flat)), key=lambda i: flat[i])
    tag = (segmentation.header, segmentation.separator, "last segment once, then each answer")
    keys = [make_key(KEY_NAMESPACE, *lm.signature, tag, *flat[i]) for i in order]
    missing = len(set(keys) - set(lm.cache.get_many(keys))) if lm.show_progress and desc else None
    bar = tqdm(total=missing, desc=desc, disable=not (lm.show_progress and desc), mininterval=5)
    with bar:
        values = lm.cache.map(
            keys,
            [flat[i] for i in order],
            lambda chunk: _score_pairs(lm, chunk, bar, segmentation),
            chunk_size=chunk_size,
        )
    sorted_values = dict(zip(order, values, strict=True))
    out, at = [], 0
    for ans in answers:
        out.append([sorted_values[at + j] for j in range(len(ans))])
        at += len(ans)
    return out


def as_token_logprobs(lm: LM, desc: str | None = None):
    """A ``(prompts, answers) -> token log-probs`` callable (``LM.token_logprobs``'s shape) over the segment trie."""

    def score(prompts: Sequence[str], answers: Sequence[str]) -> list[list[float]]:
        return [v[0] for v in prefix_token_logprobs(lm, prompts, [[a] for a in answers], desc=desc)]

    return score


__all__ = [
    "KEY_NAMESPACE",
    "Node",
    "PrefixScorer",
    "Segmentation",
    "as_token_logprobs",
    "build_tree",
    "prefix_token_logprobs",
]

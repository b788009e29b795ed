"""The generator: one batched path for answer log-probabilities, answer logits and generation.

Every call sorts its inputs by length and packs them into batches of at most
``batch_tokens`` padded tokens, so a few long prompts do not pad many short ones. Only the
positions that predict answer tokens go through the LM head (the vocabulary projection is the
most expensive part of a short-answer forward). Scores and generations are cached on disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ragalign.cache import Cache, make_key
from ragalign.models import load_generator


def length_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped so that (longest in batch) x (batch size) <= batch_tokens, longest first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and width * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids) for a batch, padded on ``side``."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        sl = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, sl] = torch.tensor(seq, dtype=torch.long)
        mask[row, sl] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


@dataclass
class LM:
    """A causal LM behind a chat template, with cached batched scoring and generation."""

    name: str
    dtype: str = "bfloat16"
    batch_tokens: int = 6144
    cache_root: str | None = None
    tokenizer: object = field(default=None, repr=False)
    model: object = field(default=None, repr=False)
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.model is None:
            self.tokenizer, self.model = load_generator(self.name, self.dtype)
        self.model.requires_grad_(False)  # the generator is only ever evaluated
        self.cache = Cache("lm", self.cache_root)
        # Cost accounting: what the calls *need* (cache hits included), so a resumed or
        # repeated run reports the same cost as a cold one.
        self.evaluations = 0  # sequences scored or generated
        self.forward_tokens = 0  # prompt + answer (or new) tokens of those sequences

    # ---- tokenisation -------------------------------------------------------------------
    def prompt_ids(self, user: str) -> list[int]:
        """Token ids of a one-turn chat with ``user`` as the message, ready for the reply."""
        messages = [{"role": "user", "content": user}]
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of the reply text (no special tokens)."""
        return self.tokenizer(answer, add_special_tokens=False).input_ids or [self.tokenizer.eos_token_id]

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])

    def _count(self, prompts: Sequence[str], answers: Sequence[str], new_tokens: int = 0) -> None:
        self.evaluations += len(prompts)
        self.forward_tokens += sum(len(self.prompt_ids(p)) + new_tokens for p in prompts)
        self.forward_tokens += sum(len(self.answer_ids(a)) for a in answers)

    # ---- scoring ------------------------------------------------------------------------
    @torch.inference_mode()
    def answer_hidden(
        self, prompts: Sequence[str], answers: Sequence[str], padding_side: str = "right", desc: str | None = None
    ) -> Iterator[tuple[int, torch.Tensor, list[int]]]:
        """Yield (index, hidden states predicting each answer token [T, H], answer ids)."""
        pairs = [(self.prompt_ids(p), self.answer_ids(a)) for p, a in zip(prompts, answers, strict=True)]
        seqs = [p + a for p, a in pairs]
        batches = length_batches([len(s) for s in seqs], self.batch_tokens)
        bar = tqdm(batches, desc=desc, disable=not (self.show_progress and desc), mininterval=5)
        for batch in bar:
            ids, mask, pos = pad_batch([seqs[i] for i in batch], self.tokenizer.pad_token_id, padding_side)
            hidden = self.model.model(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
            width = ids.shape[1]
            for row, i in enumerate(batch):
                n_prompt, n_answer = len(pairs[i][0]), len(pairs[i][1])
                offset = 0 if padding_side == "right" else width - len(seqs[i])
                start = offset + n_prompt - 1
                yield i, hidden[row, start : start + n_answer], pairs[i][1]

    def answer_logits(
        self, prompts: Sequence[str], answers: Sequence[str], desc: str | None = None
    ) -> Iterator[tuple[int, torch.Tensor, list[int]]]:
        """Yield (index, float32 logits over the vocabulary for each answer token [T, V], answer ids)."""
        self._count(prompts, answers)
        for i, hidden, answer in self.answer_hidden(prompts, answers, desc=desc):
            yield i, self.model.lm_head(hidden).float(), answer

    def _token_logprobs(self, prompts: Sequence[str], answers: Sequence[str], desc: str | None = None) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in prompts]
        for i, hidden, answer in self.answer_hidden(prompts, answers, desc=desc):
            logprobs = torch.log_softmax(self.model.lm_head(hidden).float(), dim=-1)
            out[i] = logprobs[torch.arange(len(answer)), torch.tensor(answer)].tolist()
        return out

    def token_logprobs(self, prompts: Sequence[str], answers: Sequence[str], desc: str | None = None) -> list[list[float]]:
        """Teacher-forced log p(a_t | prompt, a_<t) for each answer token, cached on disk."""
        self._count(prompts, answers)
        keys = [make_key("logprobs", self.name, self.dtype, p, a) for p, a in zip(prompts, answers, strict=True)]
        items = list(zip(prompts, answers, strict=True))
        return self.cache.map(
            keys, items, lambda chunk: self._token_logprobs(*zip(*chunk, strict=True), desc=desc), chunk_size=256
        )

    def shared_answer_logprobs(self, prompts: Sequence[str], answer: str) -> list[list[float]]:
        """Token log-probs of one answer under many prompts."""
        return self.token_logprobs(prompts, [answer] * len(prompts))

    # ---- generation ---------------------------------------------------------------------
    @torch.inference_mode()
    def _generate(self, prompts: Sequence[str], max_new_tokens: int, desc: str | None = None) -> list[str]:
        seqs = [self.prompt_ids(p) for p in prompts]
        out = [""] * len(prompts)
        # generation holds a KV cache per row: budget rows by prompt + new tokens
        batches = length_batches([len(s) + max_new_tokens for s in seqs], self.batch_tokens)
        for batch in tqdm(batches, desc=desc, disable=not (self.show_progress and desc), mininterval=5):
            ids, mask, _ = pad_batch([seqs[i] for i in batch], self.tokenizer.pad_token_id, "left")
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
            for row, i in enumerate(batch):
                text = self.tokenizer.decode(gen[row, ids.shape[1] :], skip_special_tokens=True)
                out[i] = text.strip()
        return out

    def generate(self, prompts: Sequence[str], max_new_tokens: int, desc: str | None = None) -> list[str]:
        """Greedy replies (stopping at end-of-turn or ``max_new_tokens``), cached on disk."""
        self._count(prompts, [], max_new_tokens)
        keys = [make_key("generate", self.name, self.dtype, "greedy", max_new_tokens, p) for p in prompts]
        return self.cache.map(keys, list(prompts), lambda chunk: self._generate(chunk, max_new_tokens, desc), chunk_size=64)

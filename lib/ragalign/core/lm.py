"""The generator: cached, batch-invariant answer log-probabilities, answer logits and generation.

Only the positions that predict answer tokens go through the LM head (the vocabulary projection
is the most expensive part of a short-answer forward). Scores and generations are cached on disk,
keyed by the prompt, the answer and :attr:`LM.signature` (``models.generator_key``: the content of the
model's files, weights, config and tokenizer, its dtype, device kind, attention kernel and library versions).

**Batch invariance.** A value never depends on what else was computed with it: every scored
sequence goes through the model alone, unpadded, so the same prompt gives the same bits whatever else a
stage scores (``tests/test_lm.py`` pins it). Padded batches do not guarantee this. With the fused
SDPA kernel a padded row rounds differently in bf16 (up to 0.32 on a gain label); with eager
attention and right padding rows agree on some CPUs but not on others (a 16-core Xeon changed
float32 scores with the batch: ``bench/results/device_check_h200_padded_batches.json``); greedy decoding with left
padding changes answers. Scoring alone costs little on CPU, where prefill dominates and a padded
batch pays for its padding (``bench/gain_throughput.py`` measures both). Greedy decoding of long
replies is bound by its steps instead: see :meth:`LM.decode_rows`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from tqdm import tqdm
from transformers import DynamicCache

from ragalign.core.cache import Cache, make_key
from ragalign.core.models import GENERATOR_ATTENTION, load_generator

DECODE_ROWS = 8  # rows per decoding group of short prompts
SHORT_PROMPT_TOKENS = 160  # prompts up to this length decode in groups


@dataclass
class LM:
    """A causal LM behind a chat template, with cached batched scoring and generation."""

    name: str
    dtype: str = "bfloat16"
    cache_root: str | None = None
    tokenizer: object = field(default=None, repr=False)
    model: object = field(default=None, repr=False)
    show_progress: bool = True
    device: str = "cpu"

    @classmethod
    def from_params(cls, models, **kwargs) -> LM:
        """The study's generator as ``param_sections.ModelsParams`` sets it up (device, dtype and batch budget resolved)."""
        return cls(models.generator, models.resolved_dtype(), device=models.resolved_device(), **kwargs)

    def __post_init__(self) -> None:
        if self.model is None:
            loaded = load_generator(self.name, self.dtype, self.device)
            self.tokenizer, self.model, self._key = loaded.tokenizer, loaded.model, loaded.key
        else:  # an injected model (tests) is keyed by its name
            self._key = f"{self.name}|{self.dtype}|{self.device}|{GENERATOR_ATTENTION}"
        self.model.requires_grad_(False)  # the generator is only ever evaluated
        self.cache = Cache("lm", self.cache_root)
        # Cost accounting: what the calls *need* (cache hits included), so a resumed or
        # repeated run reports the same cost as a cold one.
        self.evaluations = 0  # sequences scored or generated
        self.forward_tokens = 0  # prompt + answer (or new) tokens of those sequences

    @property
    def signature(self) -> tuple:
        """Everything a cached value depends on besides its inputs: the key the model object was loaded
        by (``models.generator_key``), so a value is never stored under other weights' key."""
        return (self._key,)

    # ---- tokenisation -------------------------------------------------------------------
    def prompt_ids(self, user: str) -> list[int]:
        """Token ids of a one-turn chat with ``user`` as the message, ready for the reply."""
        messages = [{"role": "user", "content": user}]
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def n_prompt_tokens(self, user: str) -> int:
        """The length of :meth:`prompt_ids`: what decides a prompt's decoding group."""
        return len(self.prompt_ids(user))

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of the reply text (no special tokens)."""
        return self.tokenizer(answer, add_special_tokens=False).input_ids or [self.tokenizer.eos_token_id]

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])

    def count(self, prompts: Sequence[str], answers: Sequence[str], new_tokens: int = 0) -> None:
        self.evaluations += len(prompts)
        self.forward_tokens += sum(len(self.prompt_ids(p)) + new_tokens for p in prompts)
        self.forward_tokens += sum(len(self.answer_ids(a)) for a in answers)

    # ---- scoring ------------------------------------------------------------------------
    @torch.inference_mode()
    def answer_hidden(self, prompts: Sequence[str], answers: Sequence[str], desc: str | None = None) -> Iterator[tuple[int, torch.Tensor, list[int]]]:
        """Yield (index, hidden states predicting each answer token [T, H], answer ids), one unpadded forward each."""
        for i, (prompt, answer) in enumerate(tqdm(list(zip(prompts, answers, strict=True)), desc=desc, disable=not (self.show_progress and desc), mininterval=5)):
            p_ids, a_ids = self.prompt_ids(prompt), self.answer_ids(answer)
            ids = torch.tensor([p_ids + a_ids], device=self.device)
            hidden = self.model.model(input_ids=ids).last_hidden_state[0]
            yield i, hidden[len(p_ids) - 1 : len(p_ids) - 1 + len(a_ids)], a_ids

    def answer_logits(
        self, prompts: Sequence[str], answers: Sequence[str], desc: str | None = None
    ) -> Iterator[tuple[int, torch.Tensor, list[int]]]:
        """Yield (index, float32 logits over the vocabulary for each answer token [T, V], answer ids)."""
        self.count(prompts, answers)
        for i, hidden, answer in self.answer_hidden(prompts, answers, desc=desc):
            yield i, self.model.lm_head(hidden).float(), answer

    def _token_logprobs(self, prompts: Sequence[str], answers: Sequence[str], desc: str | None = None) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in prompts]
        for i, hidden, answer in self.answer_hidden(prompts, answers, desc=desc):
            logprobs = torch.log_softmax(self.model.lm_head(hidden).float(), dim=-1)
            out[i] = logprobs[torch.arange(len(answer)), torch.tensor(answer, device=logprobs.device)].tolist()
        return out

    def token_logprobs(self, prompts: Sequence[str], answers: Sequence[str], desc: str | None = None) -> list[list[float]]:
        """Teacher-forced log p(a_t | prompt, a_<t) for each answer token, cached on disk."""
        self.count(prompts, answers)
        keys = [make_key("logprobs", *self.signature, p, a) for p, a in zip(prompts, answers, strict=True)]
        items = list(zip(prompts, answers, strict=True))
        return self.cache.map(
            keys, items, lambda chunk: self._token_logprobs(*zip(*chunk, strict=True), desc=desc), chunk_size=256
        )

    def shared_answer_logprobs(self, prompts: Sequence[str], answer: str) -> list[list[float]]:
        """Token log-probs of one answer under many prompts."""
        return self.token_logprobs(prompts, [answer] * len(prompts))

    # ---- generation ---------------------------------------------------------------------
    def decode_rows(self, n_prompt_tokens: int) -> int:
        """Rows decoded together for a prompt of this length: a function of the prompt alone.

        Short prompts with long replies (pseudo-passages, rationales) are bound by the decoding
        steps, which cost about the same for 1 or ``DECODE_ROWS`` rows on a CPU: they decode in
        groups of exactly ``DECODE_ROWS`` rows of the *same* length (no padding), filled with copies.
        A row's bits then do not depend on the other rows. Long prompts are bound by their prefill,
        which copies would multiply: they decode alone, with a static KV cache (the same replies;
        22% faster for RAG answers in bf16 on 2 CPU cores in a run that did not record its CPU, as fast
        in float32 on a 2-core AMD Zen 3; slower for grouped long replies on both:
        ``bench/results/decoding.json``).
        """
        return DECODE_ROWS if n_prompt_tokens <= SHORT_PROMPT_TOKENS else 1

    def generation_groups(self, prompts: Sequence[str]) -> list[list[int]]:
        """Prompt indices in decoding groups: same token length, exactly ``decode_rows`` rows (copies fill)."""
        by_length: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_length.setdefault(self.n_prompt_tokens(p), []).append(i)
        groups = []
        for length, idx in sorted(by_length.items()):
            rows = self.decode_rows(length)
            for s in range(0, len(idx), rows):
                chunk = idx[s : s + rows]
                groups.append(chunk + [chunk[0]] * (rows - len(chunk)))
        return groups

    @torch.inference_mode()
    def _generate(self, prompts: Sequence[str], max_new_tokens: int, desc: str | None = None) -> list[str]:
        out: list[str | None] = [None] * len(prompts)
        for group in tqdm(self.generation_groups(prompts), desc=desc, disable=not (self.show_progress and desc), mininterval=5):
            ids = torch.tensor([self.prompt_ids(prompts[i]) for i in group], device=self.device)
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **({"cache_implementation": "static"} if len(group) == 1 else {}),
            ).cpu()
            for row, i in enumerate(group):
                if out[i] is None:  # filler rows repeat a prompt of the group
                    out[i] = self.tokenizer.decode(gen[row, ids.shape[1] :], skip_special_tokens=True).strip()
        return [o or "" for o in out]

    def generate(self, prompts: Sequence[str], max_new_tokens: int, desc: str | None = None) -> list[str]:
        """Greedy replies (stopping at end-of-turn or ``max_new_tokens``), batch-invariant (``decode_rows``); cached on disk."""
        self.count(prompts, [], max_new_tokens)
        keys = [make_key("generate", *self.signature, "greedy", DECODE_ROWS, SHORT_PROMPT_TOKENS, "static-if-alone", max_new_tokens, p) for p in prompts]
        # missing prompts in order of length, so a chunk's decoding groups are full (a reply's bits do not depend on its group)
        return self.cache.map(keys, list(prompts), lambda chunk: self._generate(chunk, max_new_tokens, desc), chunk_size=32, sort_key=self.n_prompt_tokens)

    # ---- answering: one prefill, the greedy reply and the gold answers' scores -------------
    @torch.inference_mode()
    def _answer_one(self, prompt: str, golds: Sequence[str], max_new_tokens: int) -> tuple[str, list[list[float]]]:
        """One prompt, alone and unpadded: prefill once, score each gold answer on top of the
        prompt's KV cache (cropped back after each), then decode greedily on the same cache."""
        p_ids = self.prompt_ids(prompt)
        n = len(p_ids)
        cache = DynamicCache()
        hidden = self.model.model(input_ids=torch.tensor([p_ids], device=self.device), past_key_values=cache, use_cache=True).last_hidden_state
        logits = self.model.lm_head(hidden[0, -1:]).float()[0]  # predicts the reply's first token
        first = torch.log_softmax(logits, dim=-1)
        scores = []
        for gold in golds:
            a_ids = self.answer_ids(gold)
            lp = [first[a_ids[0]].item()]
            if len(a_ids) > 1:
                rest = self.model.model(
                    input_ids=torch.tensor([a_ids[:-1]], device=self.device),
                    position_ids=torch.arange(n, n + len(a_ids) - 1, device=self.device)[None],
                    past_key_values=cache,
                    use_cache=True,
                ).last_hidden_state[0]
                logprobs = torch.log_softmax(self.model.lm_head(rest).float(), dim=-1)
                lp += logprobs[torch.arange(len(a_ids) - 1), torch.tensor(a_ids[1:], device=logprobs.device)].tolist()
                cache.crop(-(len(a_ids) - 1))  # back to the prompt alone
            scores.append(lp)
        eos = self.tokenizer.eos_token_id
        stop = set(eos if isinstance(eos, list) else [eos])
        reply: list[int] = []
        token = int(logits.argmax())
        while token not in stop:
            reply.append(token)
            if len(reply) == max_new_tokens:
                break
            hidden = self.model.model(
                input_ids=torch.tensor([[token]], device=self.device),
                position_ids=torch.tensor([[n + len(reply) - 1]], device=self.device),
                past_key_values=cache,
                use_cache=True,
            ).last_hidden_state
            token = int(self.model.lm_head(hidden[0, -1:]).float()[0].argmax())
        return self.tokenizer.decode(reply, skip_special_tokens=True).strip(), scores

    def _answer_chunk(self, chunk: Sequence[tuple[str, Sequence[str]]], max_new_tokens: int) -> list[tuple[str, list[list[float]]]]:
        """Long prompts: one shared prefill each (:meth:`_answer_one`). Short prompts (``decode_rows`` > 1,
        e.g. no retrieval): their replies decode in full same-length groups, which costs about one
        prompt's steps for ``DECODE_ROWS`` replies, and their gold answers are scored alone."""
        short = [i for i, (p, _) in enumerate(chunk) if self.decode_rows(self.n_prompt_tokens(p)) > 1]
        out: list = [None] * len(chunk)
        if short:
            replies = self._generate([chunk[i][0] for i in short], max_new_tokens)
            flat = [(i, g) for i in short for g in chunk[i][1]]
            scores = self._token_logprobs([chunk[i][0] for i, _ in flat], [g for _, g in flat])
            for i, reply in zip(short, replies, strict=True):
                out[i] = (reply, [s for (j, _), s in zip(flat, scores, strict=True) if j == i])
        for i, (prompt, golds) in enumerate(chunk):
            if out[i] is None:
                out[i] = self._answer_one(prompt, golds, max_new_tokens)
        return out

    def answer(
        self, prompts: Sequence[str], golds: Sequence[Sequence[str]], max_new_tokens: int, desc: str | None = None
    ) -> list[tuple[str, list[list[float]]]]:
        """Per prompt: (greedy reply, token log-probs of each gold answer), from one shared prefill; cached on disk.

        The RAG answering path: a long prompt is forwarded once, instead of once to decode and once
        per gold answer to score; each goes alone (batch invariant, like every value here). Its
        reply is what :meth:`generate` gives alone with a dynamic cache; its gold scores are
        :meth:`token_logprobs` computed in two pieces (prompt, then answer), equal within bf16
        rounding (``bench/results/answering.json`` measures both against the two-pass way: 1.7x faster in bf16
        in a run that did not record its CPU, 1.6x in float32 on a 2-core AMD Zen 3).
        Short prompts (no passages) keep :meth:`generate`'s grouped decoding (see :meth:`_answer_chunk`).
        """
        golds = [[str(g) for g in gs] for gs in golds]
        if len(golds) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(golds)} gold answer lists")
        self.count(prompts, [g for gs in golds for g in gs], max_new_tokens)
        keys = [make_key("answer", *self.signature, "greedy-after-shared-prefill", DECODE_ROWS, SHORT_PROMPT_TOKENS, max_new_tokens, p, *gs) for p, gs in zip(prompts, golds, strict=True)]
        items = list(zip(prompts, golds, strict=True))

        missing = len(set(keys) - set(self.cache.get_many(keys)))
        with tqdm(total=missing, desc=desc, disable=not (self.show_progress and desc and missing), mininterval=5) as bar:

            def compute(chunk: list) -> list:
                out = self._answer_chunk(chunk, max_new_tokens)
                bar.update(len(chunk))
                return out

            values = self.cache.map(keys, items, compute, chunk_size=32, sort_key=lambda item: self.n_prompt_tokens(item[0]))
        return [(r, [list(lp) for lp in lps]) for r, lps in values]

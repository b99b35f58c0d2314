"""Generation with Hugging Face `generate`, batched and left-padded: the CPU engine and the reference."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from coa.models.forward_args import cache_argument, position_ids_from_mask, returned_cache
from coa.rollout.engines.base import Generation, GenerationEngine, SamplingSettings
from coa.rollout.engines.decode import (
    CompiledNextTokenLogits,
    DecodeInput,
    DecodeSettings,
    NextTokenLogits,
    decode,
    decodes_leanly,
)
from coa.rollout.engines.prefix_cache import CachedBatch, Continuation, PrefixCache, holes_after
from coa.rollout.engines.stop import cut_ids_at_text, first_stop
from coa.rollout.engines.streams import RowStreams, as_streams


class HFEngine(GenerationEngine):
    """Generates with a transformers model in micro-batches.

    Inside `session()` (a RolloutRunner's episodes) each micro-batch's KV cache is kept, and a prompt that
    extends a cached row (the next turn of an episode) reads only its new tokens (`prefix_cache.py`).

    Args:
        model: a causal LM (the policy's model, possibly with a LoRA adapter).
        tokenizer: decodes continuations (stop strings are found in text, whatever tokens spell them).
        batch_size: prompts per `generate` call.
        progress: show a progress bar over micro-batches.
        session_cache_bytes: KV cache a session may keep (oldest micro-batches are dropped past it; 0 keeps none).
        compile: decode with the decoder under `torch.compile` (`CompiledNextTokenLogits`): on a CPU a small model
            decodes ~1.3-1.6x faster after ~20 s of compiling once per process; the same tokens. Off by default: the
            compile costs more than it saves in a short run.
        shared_prefix_min_tokens: a beginning all of a micro-batch's fresh prompts share (an instruction) is read once
            when it is at least this long; shorter ones are read with each row.
    """

    def __init__(
        self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int = 32, progress: bool = False,
        session_cache_bytes: int = 1 << 30, compile: bool = False, shared_prefix_min_tokens: int = 32,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.batch_size = batch_size
        self.progress = progress
        self.session_cache_bytes = session_cache_bytes
        self._cache: PrefixCache | None = None
        self.compile = compile
        self.shared_prefix_min_tokens = shared_prefix_min_tokens
        self._next_logits: NextTokenLogits | None = None

    def eos_token_ids(self) -> tuple[int, ...]:
        config = getattr(self.model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None)
        return tuple(eos) if isinstance(eos, (list, tuple)) else (() if eos is None else (eos,))

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keeps KV caches between the calls made inside it (the weights must not change meanwhile)."""
        self._cache = PrefixCache(self.session_cache_bytes) if self.session_cache_bytes > 0 else None
        try:
            yield
        finally:
            self._cache = None

    # inference mode, not no_grad: less bookkeeping per operation (decoding ~10% faster on a CPU); every tensor it
    # makes stays inside the engine (out go lists of ids; kept caches serve only later calls in this mode)
    @torch.inference_mode()
    def generate(
        self, prompts: list[list[int]], settings: SamplingSettings, generator: torch.Generator | RowStreams | None = None
    ) -> list[Generation]:
        out: list[Generation | None] = [None] * len(prompts)
        streams = as_streams(generator, len(prompts))
        plan = self._plan(prompts)
        with _eval_mode(self.model), torch.random.fork_rng(devices=_devices(self.model)):
            for rows, cached in tqdm(plan, desc="generate", unit="batch", leave=False, disable=not self.progress):
                batch = _Batch.build([prompts[i] for i in rows], cached, self.pad_token_id)
                for i, g in zip(rows, self._generate_batch(batch, settings, streams.select(rows))):
                    out[i] = g
        return out  # type: ignore[return-value]

    def _plan(self, prompts: list[list[int]]) -> list[tuple[list[int], _Cached | None]]:
        """Micro-batches as (prompt indices, the cached batch they continue or None). Fresh prompts go longest
        first, so each micro-batch pads little; results go back in the caller's order."""
        matches = self._cache.match(prompts) if self._cache is not None else [None] * len(prompts)
        continuing: dict[int, list[int]] = {}
        for i, m in enumerate(matches):
            if m is not None:
                continuing.setdefault(m.batch_id, []).append(i)
        plan: list[tuple[list[int], _Cached | None]] = [
            (rows, _Cached(self._cache.take(batch_id), [matches[i] for i in rows]))  # type: ignore[union-attr]
            for batch_id, rows in continuing.items()
        ]
        fresh = sorted((i for i, m in enumerate(matches) if m is None), key=lambda i: -len(prompts[i]))
        plan += [(fresh[s : s + self.batch_size], None) for s in range(0, len(fresh), self.batch_size)]
        return plan

    def _generate_batch(self, batch: _Batch, settings: SamplingSettings, streams: RowStreams) -> list[Generation]:
        device = next(self.model.parameters()).device
        batch = batch.to(device)
        if batch.cache is None and batch.width > 1:
            batch = self._prefill_shared(batch)
        if decodes_leanly(self.model):
            sequences, cache = self._decode(batch, settings, streams)
        else:
            # `generate` samples from the global RNG (forked around the call): one seed for the micro-batch, so
            # rows sample independently of their neighbours only on the lean path
            torch.manual_seed(streams.seeds()[0])
            sequences, cache = self._hf_generate(batch, settings)
        new = sequences[:, batch.width:].tolist()
        generations = [finish(self.tokenizer, tokens, settings) for tokens in new]
        if self._cache is not None:
            self._cache.add(batch.cached_after(sequences.cpu(), cache, new, generations))
        return generations

    def _prefill_shared(self, batch: _Batch) -> _Batch:
        """Reads once what the micro-batch's prompts share: a prompt several rows repeat (a GRPO group), and the
        beginning every distinct prompt shares (the instruction, at least `shared_prefix_min_tokens` long). The
        caches are copied to the rows that share them; decoding then reads only each row's last prompt token."""
        first_row: dict[tuple[int, ...], int] = {}
        source = [first_row.setdefault(tuple(p), row) for row, p in enumerate(batch.prompts)]
        unique = [batch.prompts[row] for row in first_row.values()]
        shared = _common_prefix_length(unique) if len(unique) > 1 else 0
        if shared < self.shared_prefix_min_tokens:
            shared = 0
        if len(unique) == len(batch.prompts) and not shared:
            return batch
        device = batch.ids.device
        middle_ids, middle_attention = _left_pad([p[shared:-1] for p in unique], self.pad_token_id)
        middle_ids, middle_attention = middle_ids.to(device), middle_attention.to(device)
        prefix = torch.tensor([unique[0][:shared]], dtype=torch.long, device=device)
        cache = None
        if shared:
            cache = returned_cache(self.model(input_ids=prefix, use_cache=True, logits_to_keep=1))
            cache.batch_repeat_interleave(len(unique))  # type: ignore[attr-defined]
        if middle_ids.shape[1]:
            attention = torch.cat([torch.ones(len(unique), shared, dtype=torch.long, device=device), middle_attention], 1)
            kwargs = {} if cache is None else {cache_argument(self.model): cache}
            cache = returned_cache(self.model(
                input_ids=middle_ids, attention_mask=attention, position_ids=position_ids_from_mask(attention)[:, shared:],
                use_cache=True, logits_to_keep=1, **kwargs,
            ))
        order = {row: i for i, row in enumerate(first_row.values())}
        rank = torch.tensor([order[r] for r in source], device=device)
        cache.batch_select_indices(rank)  # type: ignore[attr-defined]
        rows = len(batch.prompts)
        ids = torch.cat([prefix.expand(rows, -1), middle_ids[rank], batch.ids[:, -1:]], dim=1)
        attention = torch.cat([torch.ones_like(prefix).expand(rows, -1), middle_attention[rank], batch.attention[:, -1:]], 1)
        return _Batch(batch.prompts, ids, attention, cache)

    def _decode(self, batch: _Batch, settings: SamplingSettings, streams: RowStreams) -> tuple[Tensor, object]:
        watch = self._stop_watch(settings, batch.width, len(batch.prompts))
        uniforms = streams.uniforms(settings.max_new_tokens, batch.ids.device) if settings.temperature > 0 else None
        return decode(
            self.model, DecodeInput(batch.ids, batch.attention, batch.position_ids(), batch.cache),
            DecodeSettings(settings.max_new_tokens, settings.temperature, settings.top_p, settings.stop_token_ids,
                           self.pad_token_id),
            stop=watch[0] if watch else None, uniforms=uniforms, next_logits=self._forward(),
        )

    def _forward(self) -> NextTokenLogits:
        """The model's next-token forward, built once (compiled, with `compile`)."""
        if self._next_logits is None:
            self._next_logits = (CompiledNextTokenLogits if self.compile else NextTokenLogits)(self.model)
        return self._next_logits

    def _hf_generate(self, batch: _Batch, settings: SamplingSettings) -> tuple[Tensor, object]:
        """transformers' `generate`, for models whose generation config asks for more than `decode` applies."""
        sampling = settings.temperature > 0
        result = self.model.generate(
            input_ids=batch.ids,
            attention_mask=batch.attention,
            # explicit, as the mask gives them: generate infers them only when `forward`'s signature names them
            # (a wrapped forward does not), and a cached row's holes must not count
            position_ids=batch.position_ids(),
            max_new_tokens=settings.max_new_tokens,
            do_sample=sampling,
            temperature=settings.temperature if sampling else None,
            top_p=settings.top_p if sampling else None,
            top_k=None,
            # the policy's own distribution: a model's generation_config may ship a repetition penalty
            # (Qwen2.5-Instruct: 1.05) that GRPO's log-probs would not account for
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            eos_token_id=list(settings.stop_token_ids) or None,
            pad_token_id=self.pad_token_id,
            stopping_criteria=self._stop_watch(settings, batch.width, len(batch.prompts)),
            return_dict_in_generate=True,
            **({} if batch.cache is None else {cache_argument(self.model): batch.cache}),
        )
        return result.sequences, returned_cache(result)

    def _stop_watch(self, settings: SamplingSettings, width: int, rows: int) -> StoppingCriteriaList | None:
        if not settings.stop_strings:
            return None
        return StoppingCriteriaList([StopStringWatch(self.tokenizer, settings.stop_strings, width, rows)])


@dataclass
class _Cached:
    """A cached micro-batch taken out of the session's PrefixCache and the prompts that continue its rows."""

    batch: CachedBatch
    continuations: list[Continuation]


@dataclass
class _Batch:
    """One generate call's input: left-padded prompts, or a cache plus each row's new tokens (left-padded)."""

    prompts: list[list[int]]
    ids: Tensor
    attention: Tensor
    cache: object | None = None

    @property
    def width(self) -> int:
        return self.ids.shape[1]

    def position_ids(self) -> Tensor:
        return position_ids_from_mask(self.attention)

    def to(self, device: torch.device) -> _Batch:
        return _Batch(self.prompts, self.ids.to(device), self.attention.to(device), self.cache)

    @classmethod
    def build(cls, prompts: list[list[int]], cached: _Cached | None, pad_id: int) -> _Batch:
        if cached is None:
            ids, attention = _left_pad(prompts, pad_id)
            return cls(prompts, ids, attention)
        rows = torch.tensor([c.row for c in cached.continuations])
        reused = [c.reused for c in cached.continuations]
        cache = cached.batch.cache
        cache.batch_select_indices(rows)  # type: ignore[attr-defined]
        slot_mask = holes_after(cached.batch.slot_mask[rows], reused)
        new_ids, new_attention = _left_pad([p[n:] for p, n in zip(prompts, reused)], pad_id)
        ids = torch.cat([cached.batch.slot_ids[rows], new_ids], dim=1)
        return cls(prompts, ids, torch.cat([slot_mask, new_attention], dim=1), cache)

    def cached_after(self, sequences: Tensor, cache: object, new: list[list[int]], generations: list[Generation]):
        """The cache after generation: valid slots are the prompt and the kept tokens the cache computed."""
        slots = cache.get_seq_length()  # type: ignore[attr-defined]  # the last sampled token was never read
        generated = torch.zeros((len(new), slots - self.width), dtype=self.attention.dtype)
        rows = []
        for row, (sampled, g) in enumerate(zip(new, generations)):
            kept = min(_common_prefix(sampled, g.token_ids), slots - self.width)
            generated[row, :kept] = 1
            rows.append(self.prompts[row] + sampled[:kept])
        mask = torch.cat([self.attention, generated], dim=1)
        return CachedBatch(cache, sequences[:, :slots], mask, rows)


def _left_pad(prompts: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        if p:
            ids[row, width - len(p):] = torch.tensor(p)
            attention[row, width - len(p):] = 1
    return ids, attention


def _common_prefix_length(prompts: list[list[int]]) -> int:
    """Tokens every prompt begins with, leaving each at least its last token (which decoding reads)."""
    first, limit = prompts[0], min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def finish(tokenizer: PreTrainedTokenizerBase, tokens: list[int], settings: SamplingSettings) -> Generation:
    """One row of `generate`'s output as a Generation: cut after the first stop string or stop token."""
    end_token = next((i for i, t in enumerate(tokens) if t in settings.stop_token_ids), None)
    before_token = tokens if end_token is None else tokens[:end_token]
    text = tokenizer.decode(before_token, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    stop = first_stop(text, settings.stop_strings)
    if stop is not None:
        kept, unsampled = cut_ids_at_text(tokenizer, before_token, stop[0])
        return Generation(kept, text[: stop[0]], "stop", stop[1], unsampled)
    if end_token is not None:
        kept = tokens[: end_token + 1]
        return Generation(kept, text, "eos", tokens[end_token])
    return Generation(tokens, text, "length", None)


class StopStringWatch(StoppingCriteria):
    """Marks a row done once its new text holds a stop string; checks only rows whose last token could end one.

    Called on every decoded token, so the common case (no row's last token can end a stop string) is a set
    lookup per row in Python: a handful of small tensor ops would cost more than the lookups.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_strings: tuple[str, ...], prompt_width: int, rows: int):
        self.tokenizer, self.stop_strings, self.prompt_width = tokenizer, stop_strings, prompt_width
        # ids past the tokenizer (a model's padded vocabulary, Qwen2: 151,936 rows for 151,665 tokens) spell nothing
        self.may_end = _tokens_holding(tokenizer, tuple(sorted({s[-1] for s in stop_strings})))
        self.done = torch.zeros(rows, dtype=torch.bool)
        self.window = 4 * max(len(s) for s in stop_strings)  # tokens enough to spell any stop string

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        last = input_ids[:, -1].tolist()
        for row in [r for r, token in enumerate(last) if token in self.may_end and not self.done[r]]:
            start = max(self.prompt_width, input_ids.shape[1] - self.window)
            tail = self.tokenizer.decode(input_ids[row, start:], skip_special_tokens=False)
            if any(s in tail for s in self.stop_strings):
                self.done[row] = True
        return self.done.to(input_ids.device)


@lru_cache(maxsize=8)
def _tokens_holding(tokenizer: PreTrainedTokenizerBase, chars: tuple[str, ...]) -> frozenset[int]:
    """The ids of the tokens whose text holds one of `chars` (or may, as a partial byte)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
    return frozenset(i for i, t in enumerate(texts) if any(c in t for c in chars) or "\ufffd" in t)


@contextmanager
def _eval_mode(model: torch.nn.Module):
    """No dropout while generating; the previous mode comes back even when generation raises."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _devices(model: torch.nn.Module) -> list[int]:
    device = next(model.parameters()).device
    return [device.index or 0] if device.type == "cuda" else []

"""A lean batched decoding loop over a transformers causal LM, for the settings rollouts use.

transformers' `generate` is general (beam search, assisted decoding, a dozen stopping and logits
hooks); its per-token bookkeeping costs about as much as a forward of a small model, and a GRPO step
of a small policy is mostly decoding. This loop does only what a rollout needs: the model's own
forward with its KV cache, transformers' own logits processors (suppressed tokens, temperature,
top-p), sampling from each row's own random stream, stop tokens and a stopping criterion. A model
whose generation config asks for anything else goes through `generate` (`decodes_leanly`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import (
    LogitsProcessor,
    StoppingCriteria,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from coa.models.forward_args import body_and_head, cache_argument, returned_cache

# generation-config fields whose processors this loop does not apply, with the value that means "off"
UNSUPPORTED_WHEN_SET = {
    "bad_words_ids": None, "begin_suppress_tokens": None, "sequence_bias": None, "forced_bos_token_id": None,
    "forced_eos_token_id": None, "exponential_decay_length_penalty": None, "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0, "min_p": None, "min_new_tokens": None, "watermarking_config": None,
}


def decodes_leanly(model: torch.nn.Module) -> bool:
    """True when the model's generation config needs nothing beyond what `decode` applies."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return True
    for name, off in UNSUPPORTED_WHEN_SET.items():
        if getattr(config, name, off) not in (off, None, [], {}):
            return False
    return getattr(config, "min_length", 0) in (0, None) and getattr(config, "typical_p", 1.0) in (1.0, None)


@dataclass(frozen=True)
class DecodeInput:
    """What to read before sampling.

    Args:
        ids: [B, W] every slot's token; with a cache, only the slots past its length are read.
        attention: [B, W] 1 on slots of the row's sequence.
        position_ids: [B, W] each slot's position (the mask's running sum, holes not counted).
        cache: a transformers cache over the first slots, or None.
    """

    ids: Tensor
    attention: Tensor
    position_ids: Tensor
    cache: object | None = None


@dataclass(frozen=True)
class DecodeSettings:
    max_new_tokens: int
    temperature: float
    top_p: float
    stop_token_ids: tuple[int, ...]
    pad_token_id: int


def decode(
    model: torch.nn.Module, given: DecodeInput, settings: DecodeSettings,
    stop: StoppingCriteria | None = None, uniforms: Tensor | None = None, next_logits: NextTokenLogits | None = None,
) -> tuple[Tensor, object]:
    """Samples up to `max_new_tokens` per row; returns ([B, W + n] sequences, the cache over all but the last token).

    A row that stopped gets `pad_token_id` from then on, masked out of attention. `uniforms` ([B, max_new_tokens],
    float64 in [0, 1)) are the draws of each row's sampled tokens, in order (`RowStreams.uniforms`); sampling
    needs them, greedy decoding does not. `next_logits`: the model's forward to use (a compiled one), by default
    `NextTokenLogits(model)`.
    """
    if settings.temperature > 0 and (uniforms is None or uniforms.shape[1] < settings.max_new_tokens):
        raise ValueError(f"sampling {settings.max_new_tokens} tokens per row needs as many uniforms per row")
    processors = _processors(model, settings)
    next_logits = next_logits or NextTokenLogits(model)
    read_from = 0 if given.cache is None else given.cache.get_seq_length()  # type: ignore[attr-defined]
    # Without a hole in the mask (no left padding, no stopped row) none is passed: transformers then skips
    # building a 4-D mask on every token (~5% of a 0.7M model's decoding step on a CPU). Until then the mask is
    # all ones and is not built either.
    attention = None if bool(given.attention.all()) else given.attention
    logits, cache = next_logits(given.ids[:, read_from:], attention, given.position_ids[:, read_from:], given.cache)
    sequences = given.ids
    position = given.position_ids[:, -1:]
    rows = given.ids.shape[0]
    done = torch.zeros(rows, dtype=torch.bool, device=given.ids.device)
    stopped = 0  # rows done so far
    stop_ids = torch.tensor(settings.stop_token_ids, dtype=torch.long, device=given.ids.device)
    for step in range(settings.max_new_tokens):
        scores = logits.float()
        for processor in processors:  # called directly: LogitsProcessorList inspects signatures on every call
            scores = processor(sequences, scores)
        if settings.temperature > 0:
            token = sample(scores.softmax(-1), uniforms[:, step : step + 1])
        else:
            token = scores.argmax(-1)
        if stopped:
            token = torch.where(done, torch.full_like(token, settings.pad_token_id), token)
        sequences = torch.cat([sequences, token[:, None]], dim=1)
        if attention is not None:
            attention = torch.cat([attention, (~done).long()[:, None]], dim=1)
        done = done | torch.isin(token, stop_ids)
        if stop is not None:
            done = done | stop(sequences, None)
        stopped = int(done.sum())
        if stopped == rows or step == settings.max_new_tokens - 1:
            break
        if stopped and attention is None:
            attention = torch.ones_like(sequences)  # every slot so far is real, the stopping tokens included
        position = position + 1
        logits, cache = next_logits(token[:, None], attention, position, cache)
    return sequences, cache


class NextTokenLogits:
    """[B, V] logits at each row's last position, and the cache: the decoder, then the output layer on that
    position alone. One wrapper less than the whole model's forward: ~5% of a small model's time per token on
    a CPU. A head that is more than a linear map takes the whole model (`body_and_head`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.body, self.head = body_and_head(model)
        self.cache_kwarg = cache_argument(self.body)
        self.forward = self.body

    def __call__(self, ids: Tensor, attention: Tensor | None, positions: Tensor, cache: object | None) -> tuple[Tensor, object]:
        kwargs = {"input_ids": ids, "attention_mask": attention, "position_ids": positions, "use_cache": True}
        if cache is not None:
            kwargs[self.cache_kwarg] = cache
        if self.head is None:
            out = self.forward(**kwargs, logits_to_keep=1)
            return out.logits[:, -1, :], returned_cache(out)
        out = self.forward(**kwargs)
        return self.head(out.last_hidden_state[:, -1, :]), returned_cache(out)


class CompiledNextTokenLogits(NextTokenLogits):
    """`NextTokenLogits` with the decoder under `torch.compile` (dynamic shapes: the cache grows every token).

    Python's per-operation overhead is most of a small model's decoding time on a CPU; compiled, a 0.66 M Llama
    decodes ~1.3-1.6x faster after ~20 s of compiling (once per process and input kind: prompt, then one token per
    row), with the same tokens. On a CPU inductor needs a C++ compiler; its error says so.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__(model)
        self.forward = torch.compile(self.body, dynamic=True)


def sample(probs: Tensor, uniform: Tensor) -> Tensor:
    """One token per row from [B, V] probabilities, by inverting the cumulative distribution at the row's
    uniform draw ([B, 1] in [0, 1)).

    The same distribution as `torch.multinomial(probs, 1)`, from B random numbers instead of B x V: on a CPU
    that is 0.03 ms instead of 0.35 ms for 8 x 2048, per decoded token.
    """
    cumulative = probs.double().cumsum(-1)
    total = cumulative[:, -1:]
    u = uniform.to(device=probs.device, dtype=torch.float64) * total
    # strictly below the total (the product can round up to it): the first cumulative sum above u then
    # belongs to a token of non-zero probability
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cumulative, u, right=True).squeeze(1)


class SuppressedTokens(LogitsProcessor):
    """transformers' SuppressTokensLogitsProcessor with its vocabulary mask built once per decoding: that processor
    rebuilds it (an arange and an isin over the vocabulary) on every decoded token."""

    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = list(token_ids)
        self.mask: Tensor | None = None

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        width = scores.shape[-1]
        if self.mask is None or self.mask.shape[0] != width:
            self.mask = torch.zeros(width, dtype=torch.bool, device=scores.device)
            self.mask[[t for t in self.token_ids if 0 <= t < width]] = True
        return scores.masked_fill(self.mask, -float("inf"))


def _processors(model: torch.nn.Module, settings: DecodeSettings) -> list[LogitsProcessor]:
    processors: list[LogitsProcessor] = []
    suppress = getattr(getattr(model, "generation_config", None), "suppress_tokens", None)
    if suppress:
        processors.append(SuppressedTokens(suppress))
    if settings.temperature > 0:
        if settings.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_p < 1.0:
            processors.append(TopPLogitsWarper(settings.top_p))
    return processors

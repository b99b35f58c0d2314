"""Generation with Hugging Face `generate`, batched and left-padded: the CPU engine and the reference."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import torch
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from coa.rollout.engines.base import Generation, GenerationEngine, SamplingSettings, draw_seed
from coa.rollout.engines.stop import cut_ids_at_text, first_stop


class HFEngine(GenerationEngine):
    """Generates with a transformers model in micro-batches.

    Args:
        model: a causal LM (the policy's model, possibly with a LoRA adapter).
        tokenizer: decodes continuations (stop strings are found in text, whatever tokens spell them).
        batch_size: prompts per `generate` call.
        progress: show a progress bar over micro-batches.
    """

    def __init__(
        self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int = 32, progress: bool = False
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.batch_size = batch_size
        self.progress = progress

    def eos_token_ids(self) -> tuple[int, ...]:
        config = getattr(self.model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None)
        return tuple(eos) if isinstance(eos, (list, tuple)) else (() if eos is None else (eos,))

    @torch.no_grad()
    def generate(
        self, prompts: list[list[int]], settings: SamplingSettings, generator: torch.Generator | None = None
    ) -> list[Generation]:
        # Longest first, so each micro-batch pads little; results go back in the caller's order.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[Generation | None] = [None] * len(prompts)
        starts = range(0, len(order), self.batch_size)
        with _eval_mode(self.model), torch.random.fork_rng(devices=_devices(self.model)):
            torch.manual_seed(draw_seed(generator))  # this call's randomness; the global RNG is restored after
            for start in tqdm(starts, desc="generate", unit="batch", leave=False, disable=not self.progress):
                chunk = order[start : start + self.batch_size]
                for i, g in zip(chunk, self._generate_batch([prompts[i] for i in chunk], settings)):
                    out[i] = g
        return out  # type: ignore[return-value]

    def _generate_batch(self, prompts: list[list[int]], settings: SamplingSettings) -> list[Generation]:
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p)
            attention[row, width - len(p):] = 1
        sampling = settings.temperature > 0
        generated = self.model.generate(
            input_ids=ids.to(device),
            attention_mask=attention.to(device),
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
            stopping_criteria=self._stop_watch(settings, width, len(prompts)),
        )
        new = generated[:, width:].tolist()
        return [finish(self.tokenizer, tokens, settings) for tokens in new]

    def _stop_watch(self, settings: SamplingSettings, width: int, rows: int) -> StoppingCriteriaList | None:
        if not settings.stop_strings:
            return None
        return StoppingCriteriaList([StopStringWatch(self.tokenizer, settings.stop_strings, width, rows)])


def finish(tokenizer: PreTrainedTokenizerBase, tokens: list[int], settings: SamplingSettings) -> Generation:
    """One row of `generate`'s output as a Generation: cut after the first stop string or stop token."""
    end_token = next((i for i, t in enumerate(tokens) if t in settings.stop_token_ids), None)
    before_token = tokens if end_token is None else tokens[:end_token]
    text = tokenizer.decode(before_token, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    stop = first_stop(text, settings.stop_strings)
    if stop is not None:
        kept = cut_ids_at_text(tokenizer, before_token, stop[0])
        return Generation(kept, text[: stop[0]], "stop", stop[1])
    if end_token is not None:
        kept = tokens[: end_token + 1]
        return Generation(kept, text, "eos", tokens[end_token])
    return Generation(tokens, text, "length", None)


class StopStringWatch(StoppingCriteria):
    """Marks a row done once its new text holds a stop string; checks only rows whose last token could end one."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_strings: tuple[str, ...], prompt_width: int, rows: int):
        self.tokenizer, self.stop_strings, self.prompt_width = tokenizer, stop_strings, prompt_width
        self.may_end = _tokens_holding(tokenizer, tuple(sorted({s[-1] for s in stop_strings})))
        self.done = torch.zeros(rows, dtype=torch.bool)
        self.window = 4 * max(len(s) for s in stop_strings)  # tokens enough to spell any stop string

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        last = input_ids[:, -1].cpu()
        for row in torch.nonzero(self.may_end[last] & ~self.done).flatten().tolist():
            start = max(self.prompt_width, input_ids.shape[1] - self.window)
            tail = self.tokenizer.decode(input_ids[row, start:], skip_special_tokens=False)
            if any(s in tail for s in self.stop_strings):
                self.done[row] = True
        return self.done.to(input_ids.device).clone()


@lru_cache(maxsize=8)
def _tokens_holding(tokenizer: PreTrainedTokenizerBase, chars: tuple[str, ...]) -> torch.Tensor:
    """[V] True for each token whose text holds one of `chars` (or may, as a partial byte)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
    return torch.tensor([any(c in t for c in chars) or "\ufffd" in t for t in texts], dtype=torch.bool)


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

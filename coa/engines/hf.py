"""Generation with Hugging Face `generate`, batched and left-padded: the CPU engine and the reference."""

from __future__ import annotations

import torch
from tqdm import tqdm

from coa.engines.base import GenerationEngine, SamplingSettings, cut_at_stop


class HFEngine(GenerationEngine):
    """Generates with a transformers model in micro-batches.

    Args:
        model: a causal LM (the policy's model, possibly with a LoRA adapter).
        pad_token_id: the tokenizer's pad id.
        batch_size: prompts per `generate` call.
        progress: show a progress bar over micro-batches.
    """

    def __init__(self, model: torch.nn.Module, pad_token_id: int, batch_size: int = 32, progress: bool = False) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.batch_size = batch_size
        self.progress = progress

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], settings: SamplingSettings) -> list[list[int]]:
        # Longest first, so each micro-batch pads little; results go back in the caller's order.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[list[int]] = [[] for _ in prompts]
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="generate", unit="batch", leave=False, disable=not self.progress):
            chunk = order[start : start + self.batch_size]
            for i, tokens in zip(chunk, self._generate_batch([prompts[i] for i in chunk], settings)):
                out[i] = tokens
        return out

    def _generate_batch(self, prompts: list[list[int]], settings: SamplingSettings) -> list[list[int]]:
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p)
            attention[row, width - len(p):] = 1
        sampling = settings.temperature > 0
        if sampling:
            torch.manual_seed(settings.seed)
        was_training = self.model.training
        self.model.eval()
        generated = self.model.generate(
            input_ids=ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=settings.max_new_tokens,
            do_sample=sampling,
            temperature=settings.temperature if sampling else None,
            top_p=settings.top_p if sampling else None,
            top_k=None,
            eos_token_id=list(settings.stop_token_ids) or None,
            pad_token_id=self.pad_token_id,
        )
        self.model.train(was_training)
        new = generated[:, width:].tolist()
        return [cut_at_stop(tokens, settings.stop_token_ids, self.pad_token_id) for tokens in new]

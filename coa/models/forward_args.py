"""How coa calls a transformers causal LM's forward: positions from the attention mask, the KV cache by its name."""

from __future__ import annotations

import inspect

import torch
from torch import Tensor


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """Positions that skip padding and holes (left, right or inside), as `generate` computes them, so padding
    never moves logits.

    Args:
        attention_mask: [B, T] 1 for real tokens.
    """
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)


def cache_argument(net: torch.nn.Module) -> str:
    """The name `forward` takes the cache by: transformers renamed `past_key_values` to `cache` in 5.x."""
    model = net.get_base_model() if hasattr(net, "get_base_model") else net  # a peft wrapper takes **kwargs
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def returned_cache(output: object) -> object | None:
    """The KV cache a transformers output holds (`cache`, `past_key_values` before the rename)."""
    cache = getattr(output, "cache", None)
    return getattr(output, "past_key_values", None) if cache is None else cache

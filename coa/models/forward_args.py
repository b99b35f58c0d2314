"""How coa calls a transformers causal LM's forward: positions from the attention mask, the KV cache by its name, the
decoder and the output layer apart."""

from __future__ import annotations

import inspect

import torch
from torch import Tensor

HEAD_EXTRAS = ("final_logit_softcapping", "logit_scale", "logits_scaling")  # heads that are more than a linear map


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


def body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(decoder, output layer) where the head is a plain linear map on the decoder's output; else (model, None)."""
    head = model.get_output_embeddings()
    decoder = decoder_of(model)
    if head is None or decoder is None or any(getattr(model.config, name, None) for name in HEAD_EXTRAS):
        return model, None
    return decoder, head


def decoder_of(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model without its output layer (its output: the last, normed hidden state), or None where none is found.

    Calling it instead of the whole model with `output_hidden_states=True` keeps no per-layer outputs alive.
    """
    get_decoder = getattr(model, "get_decoder", None)  # transformers' lookup; a peft model passes it through
    decoder = get_decoder() if get_decoder is not None else None
    if decoder is None or decoder is model or decoder.get_output_embeddings() is not None:
        return None  # transformers fell back to the model itself: it has a head, so it is no decoder
    return decoder

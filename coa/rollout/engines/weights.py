"""The policy's weights as an engine loads them: Hugging Face names, adapters merged, nothing of the policy written.

A LoRA weight is merged into a tensor of its own, in float32 (W + scaling * B @ A), then cast to the base's
dtype: merging into the base in place and unmerging afterwards does not give the base back in bfloat16 (each
round trip moves some elements by a rounding step), and the reference policy (the adapter disabled) would drift
with every sync. A quantised base (QLoRA) is dequantised layer by layer, so the engine gets the weights the
policy computes with, without loading anything from disk. Tensors are made one at a time, as the engine takes
them: the merged model never exists whole beside the policy.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

Named = tuple[str, Tensor]
QUANTISED = ("Params4bit", "Int8Params")  # bitsandbytes' parameter classes (4-bit NF4/FP4, LLM.int8)


def policy_weights(model: torch.nn.Module, dtype: torch.dtype | None = None) -> Iterator[Named]:
    """(Hugging Face name, tensor) for every weight of `model`, a transformers model or a peft model around one.

    Plain weights come as they are (detached views, no copies); a LoRA layer's weight comes merged, a
    trainable-tokens embedding with its trained rows, a `modules_to_save` layer as its trained copy, a
    quantised weight dequantised. A weight shared by two modules (tied embeddings) comes once.

    Args:
        model: the policy's model.
        dtype: of the merged and dequantised tensors; None keeps each base weight's own (quantised ones: the
            model's `dtype`).
    """
    from peft import PeftModel

    root = model.get_base_model() if isinstance(model, PeftModel) else model
    seen: set[int] = set()
    yield from _walk(root, "", dtype or getattr(root, "dtype", torch.float32), seen)


def _walk(module: torch.nn.Module, prefix: str, dtype: torch.dtype, seen: set[int]) -> Iterator[Named]:
    from peft.tuners.lora import LoraLayer
    from peft.tuners.trainable_tokens import TrainableTokensLayer
    from peft.utils.other import ModulesToSaveWrapper, TrainableTokensWrapper

    if isinstance(module, LoraLayer):
        yield from _once(_lora_weights(module, prefix, dtype), module.get_base_layer(), seen)
    elif isinstance(module, TrainableTokensLayer):
        yield from _once(_token_weights(module, prefix), module.get_base_layer(), seen)
    elif isinstance(module, TrainableTokensWrapper):
        yield from _walk(module.token_adapter, prefix, dtype, seen)
    elif isinstance(module, ModulesToSaveWrapper):
        active = module.active_adapters[0] if module.active_adapters else None
        inner = module.modules_to_save[active] if active in module.modules_to_save else module.original_module
        yield from _walk(inner, prefix, dtype, seen)
    else:
        for name, param in module.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                yield f"{prefix}{name}", _plain(module, param, dtype)
        for name, child in module.named_children():
            yield from _walk(child, f"{prefix}{name}.", dtype, seen)


def _once(weights: Iterator[Named], base: torch.nn.Module, seen: set[int]) -> Iterator[Named]:
    """`weights` of an adapter layer, unless its base weight was given already (tied to an earlier layer)."""
    key = id(base.weight)
    if key in seen:
        return
    seen.add(key)
    yield from weights


def _lora_weights(layer, prefix: str, dtype: torch.dtype) -> Iterator[Named]:
    """A LoRA layer's weight with its active adapters merged in float32, then its bias (untouched)."""
    base = layer.get_base_layer()
    weight = dequantized(base)
    merged = weight.float()
    if not layer.disable_adapters:
        for adapter in layer.active_adapters:
            if adapter in layer.lora_A or adapter in getattr(layer, "lora_embedding_A", {}):
                merged = merged + lora_delta(layer, adapter)
    out_dtype = weight.dtype if weight.is_floating_point() and not _is_quantised(base.weight) else dtype
    yield f"{prefix}weight", merged.to(out_dtype)
    if getattr(base, "bias", None) is not None:
        yield f"{prefix}bias", base.bias.detach()


def lora_delta(layer, adapter: str) -> Tensor:
    """scaling * B @ A of one adapter of a LoRA layer, in float32, shaped as the base weight.

    Raises:
        NotImplementedError: a DoRA adapter (its merge rescales the base's columns).
    """
    from peft.utils.other import transpose

    if layer.use_dora.get(adapter, False):
        raise NotImplementedError(f"{type(layer).__name__}: DoRA adapters cannot be merged for the engine here")
    if adapter in layer.lora_A:
        a, b = layer.lora_A[adapter].weight.float(), layer.lora_B[adapter].weight.float()
        if a.dim() == 2:
            return transpose(b @ a, layer.fan_in_fan_out) * layer.scaling[adapter]
    return layer.get_delta_weight(adapter).float()  # embeddings and convolutions: peft's own formula


def _token_weights(layer, prefix: str) -> Iterator[Named]:
    """A trainable-tokens embedding: a copy of the base's rows with the trained rows written in."""
    active = [] if layer.disable_adapters else list(layer.active_adapters)
    yield f"{prefix}weight", layer.get_merged_weights(active).detach()


def _plain(module: torch.nn.Module, param: Tensor, dtype: torch.dtype) -> Tensor:
    return dequantized(module).to(dtype) if _is_quantised(param) else param.detach()


def dequantized(module: torch.nn.Module) -> Tensor:
    """The module's weight as a dense tensor: bitsandbytes' 4- and 8-bit weights dequantised, others as they are."""
    if not _is_quantised(module.weight):
        return module.weight.detach()
    from peft.utils.integrations import dequantize_module_weight

    return dequantize_module_weight(module).detach()


def _is_quantised(param: Tensor) -> bool:
    return type(param).__name__ in QUANTISED

"""A small causal LM built from a config with random weights, saved as a Hugging Face directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerBase


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of a tiny model.

    Args:
        architecture: a transformers model type with a causal-LM head ("llama", "qwen2", ...).
        hidden_size: width of the residual stream.
        num_layers: transformer blocks.
        num_heads: attention heads (hidden_size must be a multiple).
        intermediate_size: MLP width.
        max_position_embeddings: longest sequence the model will see.
        seed: seeds the random initialisation.
    """

    architecture: str = "llama"
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 688
    max_position_embeddings: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"tiny model: hidden_size={self.hidden_size} must be a multiple of num_heads={self.num_heads}"
            )


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase, config: TinyModelConfig, out_dir: str | Path
) -> Path:
    """Initialises a model for `tokenizer` from `config` and saves model + tokenizer to `out_dir`."""
    hf_config = AutoConfig.for_model(
        config.architecture,
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_config(hf_config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out

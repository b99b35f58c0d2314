"""build_tiny_model: a directory AutoModelForCausalLM loads, identical for the same seed."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from coa.models.tiny import TinyModelConfig, build_tiny_model
from coa.models.tokenizer import train_tokenizer

TINY = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=64)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["Ada Moreau was born in Lisbon.", "Bob works at Nordwave in Oslo."] * 3, vocab_size=280)


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_loads_with_auto_classes(tokenizer, tmp_path: Path, architecture: str):
    out = build_tiny_model(tokenizer, TinyModelConfig(**{**TINY.__dict__, "architecture": architecture}), tmp_path)
    model = AutoModelForCausalLM.from_pretrained(out)
    loaded_tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == architecture
    assert model.config.vocab_size == len(loaded_tokenizer) == len(tokenizer)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    ids = loaded_tokenizer("Ada was born", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_same_seed_same_weights(tokenizer, tmp_path: Path):
    a = load_file(build_tiny_model(tokenizer, TINY, tmp_path / "a") / "model.safetensors")
    b = load_file(build_tiny_model(tokenizer, TINY, tmp_path / "b") / "model.safetensors")
    c = load_file(build_tiny_model(tokenizer, TinyModelConfig(**{**TINY.__dict__, "seed": 1}), tmp_path / "c")
                  / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_heads_must_divide_hidden_size():
    with pytest.raises(ValueError, match="num_heads=3"):
        TinyModelConfig(hidden_size=32, num_heads=3)

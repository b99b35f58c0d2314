"""A tokenizer trained on an embedded world and a random tiny model for it: the start of the quickstart and the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from coa.models.tiny import TinyModelConfig, build_tiny_model
from coa.models.tokenizer import train_tokenizer
from coa.prompts import INSTRUCTIONS, extract_question


def build_tokenizer_and_model(world_dir: Path, vocab_size: int, model: TinyModelConfig, out_dir: Path) -> Path:
    """A BPE tokenizer trained on the world's passages, questions and answers, and a random tiny model for it."""
    texts = [json.loads(line)["contents"] for line in open(world_dir / "corpus.jsonl", encoding="utf-8")]
    for line in open(world_dir / "sft" / "train.jsonl", encoding="utf-8"):
        messages = json.loads(line)["messages"]
        texts += [extract_question(messages[0]["content"]), messages[-1]["content"]]
    texts += list(INSTRUCTIONS.values())
    tokenizer = train_tokenizer(texts, vocab_size)
    return build_tiny_model(tokenizer, model, out_dir)

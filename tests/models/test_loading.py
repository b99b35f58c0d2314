"""One tokenizer set-up for the policy and the datamodules: pad fallback, a chat template for base models."""

import pytest

from coa.models.loading import DEFAULT_CHAT_TEMPLATE, load_tokenizer
from coa.models.tokenizer import train_tokenizer


def test_no_pad_and_no_chat_template_get_fallbacks(tmp_path):
    tok = train_tokenizer(["some words to learn from"] * 20, vocab_size=300)
    tok.pad_token, tok.chat_template = None, None
    tok.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no chat template"):
        loaded = load_tokenizer(str(tmp_path))
    assert loaded.pad_token == loaded.eos_token and loaded.padding_side == "left"
    assert loaded.chat_template == DEFAULT_CHAT_TEMPLATE
    text = loaded.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "User: hi\nAssistant:"

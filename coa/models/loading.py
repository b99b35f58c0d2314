"""Tokenizer set-up in one place, for the policy and every datamodule: pad fallback and a chat template."""

from __future__ import annotations

import warnings

from transformers import AutoTokenizer, PreTrainedTokenizerBase

# For base models that ship none: plain turns, the end-of-sequence token closes the assistant's.
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Assistant: {{ m['content'] }}{{ eos_token }}\n"
    "{% else %}{{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def load_tokenizer(path: str, trust_remote_code: bool = False, local_files_only: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer of `path` as coa uses it: left padding, a pad token, a chat template.

    No pad token (Llama-3, Mistral) falls back to end-of-sequence; no chat template (base models) gets
    `DEFAULT_CHAT_TEMPLATE`, with a warning.
    """
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=local_files_only)
    tokenizer.padding_side = "left"  # generation appends on the right
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{path}: the tokenizer has neither a pad nor an end-of-sequence token; add one of them")
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        warnings.warn(f"{path}: the tokenizer has no chat template; coa uses a plain 'User: / Assistant:' one")
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer

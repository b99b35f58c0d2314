"""Tokenizer set-up in one place, for the policy and every datamodule: pad fallback, a chat template, action tokens."""

from __future__ import annotations

import warnings
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from coa.models.action_tokens import action_format_of, add_tag_tokens

# For base models that ship none: plain turns, the end-of-sequence token closes the assistant's.
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Assistant: {{ m['content'] }}{{ eos_token }}\n"
    "{% else %}{{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
JINJA_MARKERS = ("{%", "{{")


def load_tokenizer(
    path: str,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    chat_template: str | None = None,
    add_action_tokens: bool = False,
) -> PreTrainedTokenizerBase:
    """The tokenizer of `path` as coa uses it: left padding, a pad token, a chat template, optionally the tags.

    No pad token (Llama-3, Mistral) falls back to end-of-sequence; no chat template (base models) gets
    `DEFAULT_CHAT_TEMPLATE`, with a warning.

    Args:
        path: directory or hub id.
        trust_remote_code: for tokenizers with custom code.
        local_files_only: read the local hub cache only.
        chat_template: a Jinja template, or the path of a .jinja file, used instead of the tokenizer's own.
        add_action_tokens: add the action tags (of `path`'s coa_agent.json, else AutoCoA's) as tokens, as
            `Policy(add_action_tokens=True)` does, so the ids agree with the policy's.
    """
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=local_files_only)
    tokenizer.padding_side = "left"  # generation appends on the right
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{path}: the tokenizer has neither a pad nor an end-of-sequence token; add one of them")
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template is not None:
        tokenizer.chat_template = read_chat_template(chat_template)
    elif not getattr(tokenizer, "chat_template", None):
        warnings.warn(
            f"{path}: the tokenizer has no chat template; coa uses a plain 'User: / Assistant:' one "
            "(set policy.chat_template to give another)"
        )
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if add_action_tokens:
        add_tag_tokens(tokenizer, action_format_of(path))
    return tokenizer


def read_chat_template(value: str) -> str:
    """`value` itself when it is a Jinja template (holds `{%` or `{{`), else the text of the file it names."""
    if any(marker in value for marker in JINJA_MARKERS):
        return value
    file = Path(value).expanduser()
    if not file.is_file():
        raise ValueError(
            f"chat_template={value!r} is neither a Jinja template (no '{{%' or '{{{{') nor an existing file; "
            "give the template's text or the path of a .jinja file"
        )
    return file.read_text(encoding="utf-8")


def check_same_tokenizer(policy_tokenizer: PreTrainedTokenizerBase, data_tokenizer: PreTrainedTokenizerBase) -> None:
    """Raises a ValueError when the datamodule's tokenizer would give other ids or another template than the
    policy's (one of them has `add_action_tokens` or `chat_template` the other lacks)."""
    if len(policy_tokenizer) != len(data_tokenizer):
        raise ValueError(
            f"the policy's tokenizer has {len(policy_tokenizer)} tokens and the datamodule's {len(data_tokenizer)}: "
            "policy.add_action_tokens and data.add_action_tokens differ; set them alike (the configs interpolate "
            "data's from the policy's)"
        )
    if policy_tokenizer.chat_template != data_tokenizer.chat_template:
        raise ValueError(
            "the policy's and the datamodule's chat templates differ: policy.chat_template and data.chat_template "
            "differ; set them alike (the configs interpolate data's from the policy's)"
        )

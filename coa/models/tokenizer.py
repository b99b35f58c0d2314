"""A BPE tokenizer trained locally, with the action tags as single tokens and a chat template."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from coa.formats.action_format import AUTOCOA, ActionFormat

PAD, EOS, USER, ASSISTANT = "<|pad|>", "<|eos|>", "<|user|>", "<|assistant|>"

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}" + USER + "{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}" + ASSISTANT + "{{ m['content'] }}" + EOS + "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, action_format: ActionFormat = AUTOCOA, tags_as_tokens: bool = True
) -> PreTrainedTokenizerFast:
    """Trains a byte-level BPE on `texts`; any string round-trips, the action tags are one token each by default.

    Args:
        texts: training text (the world's corpus and trajectories).
        vocab_size: total vocabulary size, special and tag tokens included.
        action_format: whose tags become added tokens.
        tags_as_tokens: False leaves the tags to BPE, so each is several tokens, as in every real model's
            tokenizer (tests of stop strings and masks use this).
    """
    specials = [PAD, EOS, USER, ASSISTANT]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, bos_token=None, unk_token=None,
        padding_side="left",  # generation pads on the left; set here so it is saved
    )
    if tags_as_tokens:
        fast.add_tokens(action_format.tags, special_tokens=False)
    fast.chat_template = CHAT_TEMPLATE
    return fast

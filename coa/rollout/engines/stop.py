"""Stop strings of any token length, token-exact: where a continuation ends and which ids spell exactly that."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


def first_stop(text: str, stop_strings: tuple[str, ...]) -> tuple[int, str] | None:
    """(end offset, stop string) of the earliest stop string in `text`, or None.

    >>> first_stop("a </end_search> b", ("</end_search>",))
    (15, '</end_search>')
    """
    best: tuple[int, str] | None = None
    for stop in stop_strings:
        i = text.find(stop)
        if i >= 0 and (best is None or i + len(stop) < best[0]):
            best = (i + len(stop), stop)
    return best


def cut_ids_at_text(tokenizer: PreTrainedTokenizerBase, ids: list[int], keep_chars: int) -> tuple[list[int], int]:
    """The ids that decode to exactly the first `keep_chars` characters of `decode(ids)`, and how many of the
    last of them were not in `ids` as given (0 when the cut falls between tokens).

    The tokens wholly inside the kept text are kept as generated; a token that runs past the cut is
    replaced by the encoding of its kept part alone (the prefix is never re-tokenised). Those re-encoded
    ids were never sampled: the caller gives them no policy-gradient loss (`Generation.unsampled`).

    Raises:
        ValueError: the kept ids do not decode to the kept text (a tokenizer that does not round-trip).
    """
    text = _decode(tokenizer, ids)
    kept_text = text[:keep_chars]
    n = _tokens_within(tokenizer, ids, kept_text)
    head = ids[:n]
    head_text = _decode(tokenizer, head)
    rest = kept_text[len(head_text):]
    tail = tokenizer.encode(rest, add_special_tokens=False) if rest else []
    kept = head + tail
    if _decode(tokenizer, kept) != kept_text:
        raise ValueError(f"cut at {keep_chars} characters: the kept ids do not decode to the kept text {kept_text[-40:]!r}")
    return kept, len(tail)


def _tokens_within(tokenizer: PreTrainedTokenizerBase, ids: list[int], kept_text: str) -> int:
    """The most leading tokens whose decoded text is a prefix of `kept_text` (binary search: prefixes grow)."""
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if kept_text.startswith(_decode(tokenizer, ids[:mid])) and len(_decode(tokenizer, ids[:mid])) <= len(kept_text):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def end_of_sequence_ids(tokenizer: PreTrainedTokenizerBase, extra: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The ids that end a generation: the tokenizer's end of sequence, its chat template's end of turn
    (`<|im_end|>` where eos is `<|endoftext|>`, as in base Qwen2.5), and `extra` (a generation_config's eos ids)."""
    ids = [tokenizer.eos_token_id, end_of_turn_id(tokenizer), *extra]
    return tuple(dict.fromkeys(i for i in ids if i is not None))


_TURN_MARKER = "\u2063coa\u2063"  # text no chat template writes by itself


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The special token the chat template writes right after an assistant message, or None."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _TURN_MARKER}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # templates may refuse this exchange (roles, system prompts): then no end-of-turn token
        return None
    _, marker, tail = text.partition(_TURN_MARKER)
    ids = tokenizer.encode(tail.lstrip(), add_special_tokens=False) if marker else []
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    return ids[0] if ids and ids[0] in special else None

"""The action tags as tokens of their own (`add_action_tokens`): added to the tokenizer, embedding rows grown and
initialised, and the rows peft trains under LoRA.

The tags are added as plain (non-special) tokens, so `decode(skip_special_tokens=True)` keeps them. A new tag's
embedding starts as the mean of the embeddings of the tokens its text was split into before: the model reads
`</end_search>` roughly as it read the pieces, and the start is deterministic (no random rows), so the base
reloaded for an export or a reference gets exactly the same rows.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.models.agent_card import read_card


def action_format_of(model_dir: str | Path) -> ActionFormat:
    """The tags of the model at `model_dir`: its `coa_agent.json`'s, else AutoCoA's (the policy and the datamodules
    both ask this, so they add the same tokens in the same order)."""
    card = read_card(model_dir) if Path(model_dir).is_dir() else None
    return card.tags() if card is not None else AUTOCOA


def add_tag_tokens(tokenizer: PreTrainedTokenizerBase, fmt: ActionFormat = AUTOCOA) -> dict[int, list[int]]:
    """Adds each tag of `fmt` that is not one token yet as a plain token; {new id: ids its text had before}.

    Tags already one token (a tokenizer coa built, or one exported after adding them) are left alone, so calling
    this again adds nothing and the ids stay the same.
    """
    pieces = {tag: tokenizer.encode(tag, add_special_tokens=False) for tag in fmt.tags}
    new = [tag for tag, ids in pieces.items() if len(ids) != 1]
    tokenizer.add_tokens(new, special_tokens=False)
    return {tokenizer.convert_tokens_to_ids(tag): pieces[tag] for tag in new}


def action_token_ids(tokenizer: PreTrainedTokenizerBase, fmt: ActionFormat = AUTOCOA) -> list[int]:
    """The ids of the tags that are one token each (after `add_tag_tokens`, all of them): the rows that train."""
    ids = [tokenizer.encode(tag, add_special_tokens=False) for tag in fmt.tags]
    return sorted({i[0] for i in ids if len(i) == 1})


def grow_embeddings(model: torch.nn.Module, vocab_size: int, pieces: dict[int, list[int]]) -> None:
    """Gives `model` at least `vocab_size` embedding rows and sets each new token's row to the mean of its pieces'.

    Input embeddings and an untied output head alike. A model with spare rows already (vocabularies padded to a
    multiple, as Qwen's) keeps its size: the new ids land on spare rows.

    Args:
        model: a transformers causal LM.
        vocab_size: len(tokenizer) after `add_tag_tokens`.
        pieces: {new id: [ids of the tag's text before]}, as `add_tag_tokens` returns.
    """
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    matrices = {id(m.weight): m.weight for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}
    with torch.no_grad():
        for weight in matrices.values():  # one tensor when input and output are tied
            for new_id, old_ids in pieces.items():
                weight[new_id] = weight[old_ids].mean(0)


def trainable_token_modules(model: torch.nn.Module) -> list[str]:
    """Names (last component) of the layers whose action-token rows train under LoRA: the input embedding, and the
    output head where it is a matrix of its own (tied, peft ties the head's rows to the embedding's)."""
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    names = {id(m): name.rsplit(".", 1)[-1] for name, m in model.named_modules()}
    tied = head is None or head.weight is embed.weight
    return [names[id(embed)]] if tied else [names[id(embed)], names[id(head)]]

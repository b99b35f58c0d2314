"""A group's shared prompt run once: its KV cache serves every completion of the group (GRPO rollouts).

Rows of a GRPO batch come in groups of G that start with the same prompt. Instead of N rows of
prompt + completion, the model reads the N/G prompts once, repeats their KV cache G times and reads
the N completions on top. The outputs at the target positions are the same as one pass over the
whole rows (up to float rounding); in backward, the cache's gradient sums the G rows' contributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from coa.models.forward_args import cache_argument, position_ids_from_mask, returned_cache


@dataclass(frozen=True)
class PromptGroups:
    """Rows that come in groups sharing their prompt.

    Args:
        lengths: [N] prompt length of each row; a group's rows are adjacent.
        size: rows per group (G); N is a multiple of it.
    """

    lengths: Tensor
    size: int


@dataclass(frozen=True)
class PrefixSplit:
    """A right-padded batch cut into its groups' prompts and its rows' completions (K = N / G groups).

    Args:
        prompt_ids: [K, P] each group's prompt, right-padded.
        prompt_mask: [K, P] 1 on real prompt tokens.
        completion_ids: [N, C] each row's tokens after its prompt, right-padded.
        completion_mask: [N, C] 1 on real completion tokens.
        targets: [N, C] True where completion token j is a target (predicted at position prompt length - 1 + j).
        group_size: G.
    """

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor
    targets: Tensor
    group_size: int


def split_shared_prefix(
    input_ids: Tensor, attention_mask: Tensor, target_mask: Tensor, groups: PromptGroups
) -> PrefixSplit | None:
    """The batch as group prompts + row completions; None where the rows of a group do not share their
    prompt or a target lies inside a prompt (the caller then runs the whole rows).

    Args:
        input_ids: [N, T] prompt + completion ids, right-padded.
        attention_mask: [N, T] 1 on real tokens.
        target_mask: [N, T-1] 1 where token t+1 is a target.
        groups: the prompt length of each row and the group size.
    """
    lengths = groups.lengths.to(input_ids.device).long()
    if not _prompts_shared(input_ids, attention_mask, lengths, groups.size):
        return None
    in_prompt = _in_prompt(lengths)
    completion_width = int((attention_mask.sum(-1) - lengths).max())
    if completion_width < 1:
        return None
    targets = _window(target_mask, lengths - 1, completion_width).bool()
    if int(targets.sum()) != int(target_mask.sum()):
        return None  # some targets predict prompt tokens: the prompt pass gives only each prompt's last logits
    return PrefixSplit(
        prompt_ids=(input_ids[:, : in_prompt.shape[1]] * in_prompt)[:: groups.size],
        prompt_mask=in_prompt[:: groups.size].to(attention_mask.dtype),
        completion_ids=_window(input_ids, lengths, completion_width),
        completion_mask=_window(attention_mask, lengths, completion_width),
        targets=targets,
        group_size=groups.size,
    )


def shared_prefix_outputs(net: torch.nn.Module, split: PrefixSplit, output: str) -> Tensor | None:
    """[M, F] the model's `output` ("logits" or "last_hidden_state") at the M targets, in the row-major order
    of the target mask; None where the model keeps no KV cache (gradient checkpointing while training).

    Args:
        net: a causal LM or its decoder (transformers) that takes and returns a KV cache.
        split: the batch from `split_shared_prefix`.
        output: the attribute of the model's output to gather.
    """
    if _checkpointing_drops_the_cache(net):
        return None
    prompt = net(
        input_ids=split.prompt_ids, attention_mask=split.prompt_mask,
        position_ids=position_ids_from_mask(split.prompt_mask), use_cache=True,
    )
    cache = returned_cache(prompt)
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return None
    groups = torch.arange(split.prompt_ids.shape[0], device=split.prompt_ids.device)
    prompt_last = getattr(prompt, output)[groups, split.prompt_mask.sum(-1) - 1]  # (K, F)
    cache.batch_repeat_interleave(split.group_size)
    mask = torch.cat([split.prompt_mask.repeat_interleave(split.group_size, 0), split.completion_mask], -1)
    completion = net(
        input_ids=split.completion_ids, attention_mask=mask,
        position_ids=position_ids_from_mask(mask)[:, split.prompt_ids.shape[1]:], use_cache=True, **{cache_argument(net): cache},
    )
    # Position j predicts completion token j: the prompt's last token for j = 0, completion token j-1 after.
    predictors = torch.cat(
        [prompt_last.repeat_interleave(split.group_size, 0)[:, None], getattr(completion, output)[:, :-1]], 1
    )  # (N, C, F)
    return predictors[split.targets]


def _prompts_shared(input_ids: Tensor, attention_mask: Tensor, lengths: Tensor, group_size: int) -> bool:
    """True when every row of each group starts with its group's first row's prompt (length and ids), unpadded."""
    rows, width = input_ids.shape
    if group_size < 1 or rows == 0 or rows % group_size or lengths.shape != (rows,):
        return False
    if int(lengths.min()) < 1 or int(lengths.max()) > width:
        return False
    in_prompt = _in_prompt(lengths)  # (N, P)
    unpadded = (attention_mask[:, : in_prompt.shape[1]].bool() | ~in_prompt).all()  # left padding is not
    ids = (input_ids[:, : in_prompt.shape[1]] * in_prompt).view(-1, group_size, in_prompt.shape[1])  # (K, G, P)
    sizes = lengths.view(-1, group_size)  # (K, G)
    return bool(unpadded) and bool((sizes == sizes[:, :1]).all()) and bool((ids == ids[:, :1]).all())


def _in_prompt(lengths: Tensor) -> Tensor:
    """[N, P] True on each row's prompt tokens, P the longest prompt."""
    return torch.arange(int(lengths.max()), device=lengths.device) < lengths[:, None]


def _window(x: Tensor, starts: Tensor, width: int) -> Tensor:
    """[N, width] out[i, j] = x[i, starts[i] + j], 0 past the end of x.

    Args:
        x: [N, T]
        starts: [N] first column of each row's window, 0 <= start <= T.
    """
    index = starts[:, None] + torch.arange(width, device=x.device)
    return F.pad(x, (0, width)).gather(1, index)


def _checkpointing_drops_the_cache(net: torch.nn.Module) -> bool:
    """transformers turns the cache off in checkpointed layers when they run for a backward."""
    if not (net.training and torch.is_grad_enabled()):
        return False
    return any(getattr(m, "gradient_checkpointing", False) is True for m in net.modules())

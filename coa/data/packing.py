"""Packing tokenised examples several to a row: less padding, the same loss.

A batch of trajectories of very different lengths (1 to 4 searches) is mostly padding when each gets a row
of the longest one's width (the embedded world: 1.52 padded tokens per real one at batch 8). Packed,
examples share rows of that same width, first fit, longest first (1.23 padded per real): fewer rows, the
same examples and targets. Positions restart at 0 with each example; from that, transformers' attention
masks (`masking_utils.find_packed_sequence_indices`, given position ids and no 2-D mask) keep each example
from attending to its row-mates, so every example's logits and loss are those it has alone.
"""

from __future__ import annotations

import torch

from coa.data.batch import SFTBatch, collate_examples, loss_mask_dtype
from coa.masking import TokenizedExample


def pack_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Example indices per row: first fit into rows of `width` tokens, longest example first."""
    rows: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, room in enumerate(free) if lengths[index] <= room), None)
        if row is None:
            rows.append([])
            free.append(width)
            row = len(rows) - 1
        rows[row].append(index)
        free[row] -= lengths[index]
    return rows


def pack_examples(examples: list[TokenizedExample], pad_id: int, min_width: int = 0) -> SFTBatch:
    """Examples packed into rows as wide as the longest one (or `min_width`, if wider: short texts of similar
    lengths then share rows too); `position_ids` restart with each example.

    Padding at a row's end counts from 0 again (a sequence of its own, which nothing reads), and no example's first
    token is a target: it would be predicted from the previous example's last.
    """
    lengths = [len(e.input_ids) for e in examples]
    width = max(max(lengths), min_width)
    rows = pack_rows(lengths, width)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    loss = torch.zeros((len(rows), width), dtype=loss_mask_dtype(examples))
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, members in enumerate(rows):
        start = 0
        for index in members:
            e, n = examples[index], lengths[index]
            ids[r, start : start + n] = torch.tensor(e.input_ids)
            attention[r, start : start + n] = 1
            loss[r, start : start + n] = torch.tensor(e.loss_mask)
            loss[r, start] = 0
            positions[r, start : start + n] = torch.arange(n)
            start += n
        positions[r, start:] = torch.arange(width - start)
    return SFTBatch(ids, attention, loss, positions)


def batch_examples(examples: list[TokenizedExample], pad_id: int, pack: bool, min_width: int = 0) -> SFTBatch:
    """A batch of `examples`: packed (`pack_examples`) or one per right-padded row (`collate_examples`)."""
    return pack_examples(examples, pad_id, min_width) if pack else collate_examples(examples, pad_id)


def check_packing_isolates(model: torch.nn.Module, vocab_size: int, tolerance: float = 1e-3) -> None:
    """Raises when `model` lets packed examples attend to each other (a model whose attention transformers does not
    mask by position ids, e.g. some remote code): two random sequences, packed into one row, must give the logits
    each gives alone, within `tolerance` or within 5% of what the second one's logits move when it does see the
    first (bfloat16 weights round the packed and the lone pass apart by more than any fixed tolerance)."""
    g = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    first, second = (torch.randint(0, vocab_size, (1, n), generator=g).to(device) for n in (7, 5))
    both = torch.cat([first, second], dim=1)
    positions = torch.cat([torch.arange(7), torch.arange(5)])[None].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = model(input_ids=both, position_ids=positions, use_cache=False).logits[:, 7:]
            seeing = model(input_ids=both, attention_mask=torch.ones_like(both), position_ids=positions,
                           use_cache=False).logits[:, 7:]
            alone = model(input_ids=second, use_cache=False).logits
    finally:
        model.train(was_training)
    gap, leak = (packed - alone).abs().max().item(), (seeing - alone).abs().max().item()
    if gap > max(tolerance, 0.05 * leak):
        raise ValueError(
            f"data.pack=true, but this model's attention lets packed examples see each other (logits differ by "
            f"{gap:.3g} from the example alone, {leak:.3g} where it sees the other; attn_implementation="
            f"{getattr(model.config, '_attn_implementation', None)}): set data.pack: false"
        )

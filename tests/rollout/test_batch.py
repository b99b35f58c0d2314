"""collate_rollouts / RolloutBatch: padding, masks and the prompt lengths the shared-prompt passes read."""

import torch

from coa.rollout.batch import collate_rollouts
from coa.rollout.runner import Rollout


def test_prompt_lengths_are_recorded_and_carried_by_select_and_to():
    rollouts = [Rollout([5, 6], [7, 8], [1, 0]), Rollout([5, 6], [9], [1]), Rollout([1, 2, 3], [4, 5, 6], [1, 1, 1])]
    batch = collate_rollouts(rollouts, [1.0, 0.0, 0.5], group_size=1, pad_id=0)
    assert batch.prompt_lengths.tolist() == [2, 2, 3]
    assert batch.loss_mask.tolist() == [[0, 0, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]
    first_two = batch.select(slice(0, 2))
    assert first_two.prompt_lengths.tolist() == [2, 2] and first_two.input_ids.shape == (2, 4)  # trimmed to 4
    assert torch.equal(batch.to("cpu").prompt_lengths, batch.prompt_lengths)

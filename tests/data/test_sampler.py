"""ResumableSampler: seeded epochs, whole batches, and a resume that continues the same stream."""

import pytest

from coa.data.sampler import ResumableSampler


def stream(sampler: ResumableSampler, epochs: int) -> list[int]:
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out += list(sampler)
    return out


def test_each_epoch_is_a_seeded_permutation_cut_to_whole_batches():
    sampler = ResumableSampler(10, batch_size=4, seed=3)
    sampler.set_epoch(0)
    first = list(sampler)
    assert len(first) == len(sampler) == 8 and len(set(first)) == 8
    assert first == list(ResumableSampler(10, batch_size=4, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != first


@pytest.mark.parametrize("consumed", [0, 4, 8, 12])
def test_skip_to_continues_the_uninterrupted_stream(consumed):
    full = stream(ResumableSampler(10, batch_size=4, seed=0), epochs=3)
    resumed = ResumableSampler(10, batch_size=4, seed=0)
    resumed.skip_to(consumed)
    start_epoch = consumed // 8
    tail = []
    for epoch in range(start_epoch, 3):
        resumed.set_epoch(epoch)
        tail += list(resumed)
    assert tail == full[consumed:]


def test_too_few_items_for_a_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="batch_size=8"):
        ResumableSampler(3, batch_size=8)


def test_grouping_by_length_gives_batches_of_similar_lengths_and_resumes_alike():
    lengths = [(i * 37) % 101 + 1 for i in range(400)]
    grouped = ResumableSampler(400, 8, seed=3, lengths=lengths)
    order = list(grouped)
    assert sorted(order) == sorted(set(order)) and len(order) == 400
    spread = lambda o: sum(max(lengths[i] for i in o[k:k + 8]) - min(lengths[i] for i in o[k:k + 8])
                           for k in range(0, len(o), 8))
    assert spread(order) < 0.2 * spread(list(ResumableSampler(400, 8, seed=3)))
    assert order == list(ResumableSampler(400, 8, seed=3, lengths=lengths))  # seeded
    resumed = ResumableSampler(400, 8, seed=3, lengths=lengths)
    resumed.skip_to(24)
    assert list(resumed) == order[24:]

"""PairDataModule: chosen rows first, loss on the continuation only, the prompt kept or rebuilt, long pairs left out."""

import json

import pytest

from coa.data.cota_pairs import read_cota_pairs
from coa.datamodules.sft1 import PairDataModule
from coa.prompts import AUTOCOA_QUESTION_MARKER


def module(world, model_dir, **kwargs) -> PairDataModule:
    data = PairDataModule(str(world / "pairs" / "train.json"), tokenizer_path=str(model_dir), batch_size=2, **kwargs)
    data.setup("fit")
    return data


def test_batch_holds_chosen_rows_then_rejected_rows_with_loss_on_the_continuation(small_world, small_model_dir):
    data = module(small_world, small_model_dir, prompt="short")
    pairs = read_cota_pairs(small_world / "pairs" / "train.json")
    loader = data.train_dataloader()
    batch = next(iter(loader))
    assert batch.input_ids.shape[0] == 4  # 2 pairs
    for row, index in enumerate(loader.sampler.order(0)[:2]):  # the shuffle's first two pairs
        for side, offset in (("chosen", 0), ("rejected", 2)):
            ids, mask = batch.input_ids[row + offset], batch.loss_mask[row + offset]
            assert data.tokenizer.decode(ids[mask.bool()]) == getattr(pairs[index], side)
    first = data.tokenizer.decode(data.train_set[0].chosen.input_ids)
    assert first.startswith("<|user|>Search with")  # rebuilt with the short instruction
    assert first.endswith("<|assistant|><think>" + pairs[0].prefix + pairs[0].chosen)


def test_prompt_none_keeps_the_files_prompt(small_world, small_model_dir):
    data = module(small_world, small_model_dir, prompt=None, max_length=4096)  # AutoCoA's instruction is long
    text = data.tokenizer.decode(data.train_set[0].rejected.input_ids)
    assert AUTOCOA_QUESTION_MARKER in text and "<|assistant|><think>" in text


def test_pairs_over_max_length_are_left_out_with_a_warning(small_world, small_model_dir, tmp_path):
    path = tmp_path / "five.json"
    path.write_text(json.dumps(json.loads((small_world / "pairs" / "train.json").read_text())[:5]))
    full = PairDataModule(str(path), tokenizer_path=str(small_model_dir), batch_size=2, prompt="short")
    full.setup("fit")
    longer_side = sorted(max(len(p.chosen.input_ids), len(p.rejected.input_ids)) for p in full.train_set)
    assert longer_side[2] < longer_side[3]  # the draw has 3 shorter and 2 longer pairs around this cut
    data = PairDataModule(
        str(path), tokenizer_path=str(small_model_dir), batch_size=2, max_length=longer_side[2], prompt="short"
    )
    with pytest.warns(UserWarning, match=r"five.json: 2 examples longer than data.max_length"):
        data.setup("fit")
    assert len(data.train_set) == 3


def test_a_bad_pair_names_the_file_and_the_field(small_world, small_model_dir, tmp_path):
    rows = json.loads((small_world / "pairs" / "train.json").read_text())[:3]
    del rows[1]["rejected"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    data = PairDataModule(str(path), tokenizer_path=str(small_model_dir), batch_size=2)
    with pytest.raises(ValueError, match=r"bad.json: item 1: field 'rejected' missing"):
        data.setup("fit")

"""TextDataModule: a corpus file's texts as packed examples with loss on every token but the first; bad lines named."""

import json

import pytest

from coa.datamodules.text import TextDataModule


def test_texts_become_packed_examples_with_loss_on_every_next_token(small_world, small_model_dir):
    corpus = small_world / "corpus.jsonl"
    data = TextDataModule(str(corpus), tokenizer_path=str(small_model_dir), batch_size=6)
    data.setup("fit")
    first = json.loads(corpus.read_text().splitlines()[0])["contents"]
    example = data.train_set[0]
    assert data.tokenizer.decode(example.input_ids[:-1]).strip() == first
    assert example.input_ids[-1] == data.tokenizer.eos_token_id
    assert example.loss_mask == [0] + [1] * (len(example.input_ids) - 1)
    batch = data._collate(data.train_set[:6])
    assert batch.position_ids is not None and batch.input_ids.shape[0] < 6  # passages of a few dozen tokens share rows
    assert int(batch.attention_mask.sum()) == sum(len(e.input_ids) for e in data.train_set[:6])


def test_a_line_without_text_is_named(tmp_path, small_model_dir):
    path = tmp_path / "texts.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"title": "no text"}) + "\n")
    data = TextDataModule(str(path), tokenizer_path=str(small_model_dir))
    with pytest.raises(ValueError, match=r"texts.jsonl:2: needs a non-empty string in one of \['contents', 'text'\]"):
        data.setup("fit")

"""PromptDataModule: questions from world QA JSONL, FlashRAG JSONL and AutoCoA's own verl parquet, as prompt batches."""

import json

import pytest

from coa.data.questions import read_questions
from coa.datamodules.prompts import PromptDataModule
from coa.prompts import AUTOCOA_QUESTION_MARKER


def test_world_qa_jsonl_becomes_prompt_batches(small_world, small_model_dir):
    dm = PromptDataModule(str(small_world / "qa" / "train.jsonl"), tokenizer_path=str(small_model_dir), batch_size=4, prompt="short")
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 4 and all(item.golds for item in batch)
    tok = dm.tokenizer
    assert tok.decode(batch[0].prompt_ids) == batch[0].prompt_text and batch[0].prompt_text.endswith("<|assistant|>")
    assert "kind" in batch[0].meta


def test_flashrag_jsonl(tmp_path, small_model_dir):
    path = tmp_path / "nq.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"n{i}", "question": f"who is {i}?", "golden_answers": [f"A{i}"]}) for i in range(3)))
    dm = PromptDataModule(str(path), tokenizer_path=str(small_model_dir), batch_size=3, prompt="short")
    dm.setup()
    assert [item.golds for item in dm.train_set] == [["A0"], ["A1"], ["A2"]]
    assert "Question: who is 0?" in dm.train_set[0].prompt_text


def test_autocoa_rl_parquet_loads_as_is(real_autocoa, small_model_dir):
    questions = read_questions(str(real_autocoa / "hotpotqa_train.parquet"))
    assert len(questions) == 6144 and all(q.golds for q in questions)
    dm = PromptDataModule(str(real_autocoa / "hotpotqa_train.parquet"), tokenizer_path=str(small_model_dir),
                          batch_size=8, prompt="autocoa", max_length=100_000)
    dm.setup()
    assert len(dm.train_set) == 6144
    first = dm.train_set[0]
    assert AUTOCOA_QUESTION_MARKER in first.prompt_text and questions[0].question in first.prompt_text
    assert first.golds == questions[0].golds


def test_unknown_extension_names_the_file_and_the_readers(tmp_path):
    path = tmp_path / "questions.csv"
    path.write_text("q,a\n")
    with pytest.raises(ValueError, match=r"questions.csv: no reader for '.csv' files; known: .jsonl"):
        read_questions(str(path))


@pytest.mark.parametrize("model_fixture", ["small_model_dir", "multi_token_model_dir"])  # tags as one token / several
def test_kinds_keeps_only_the_questions_of_those_kinds(small_world, model_fixture, request):
    path = small_world / "qa" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    model_dir = request.getfixturevalue(model_fixture)
    dm = PromptDataModule(str(path), tokenizer_path=str(model_dir), batch_size=2, prompt="short", kinds=["comparison"])
    dm.setup()
    assert [item.id for item in dm.train_set] == [r["id"] for r in rows if r["kind"] == "comparison"]
    assert {item.meta["kind"] for item in dm.train_set} == {"comparison"}


def test_kinds_that_match_nothing_name_the_file_and_the_kinds_it_has(tmp_path, small_model_dir):
    path = tmp_path / "nq.jsonl"
    path.write_text(json.dumps({"id": "n0", "question": "who?", "golden_answers": ["A"]}))
    dm = PromptDataModule(str(path), tokenizer_path=str(small_model_dir), batch_size=1, prompt="short", kinds=["comparison"])
    with pytest.raises(ValueError, match=r"nq.jsonl: no question of the kinds \['comparison'\] \(data.kinds\); the file's kinds: \['None'\]"):
        dm.setup()

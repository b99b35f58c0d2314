"""AutoCoA CoT+A pairs: the sharegpt ranking layout, prefix split at the last <think>, errors name file, item/line, field."""

import json
from pathlib import Path

import pytest

from coa.data.autocoa_parquet import read_verl_parquet
from coa.data.cota_pairs import ContrastivePair, read_cota_pairs, split_prefix, write_cota_pairs
from coa.prompts import PromptTemplate

PREFIX = "\nI need the author of the novel. "
CHOSEN = "<begin_search> Chocolat novel author </end_search>"
REJECTED = "The author is surely Alice Walker. </think> \\boxed{Alice Walker}"


def autocoa_user_message(autocoa_dir: Path | None) -> str:
    """A real AutoCoA prompt (the release's first training row) when present, else the same template."""
    if autocoa_dir is not None:
        import pyarrow.parquet as pq

        return pq.read_table(autocoa_dir / "hotpotqa_train.parquet").slice(0, 1).to_pylist()[0]["prompt"][-1]["content"]
    return PromptTemplate("autocoa").user_message("Who wrote Chocolat, Joanne Harris or Alice Walker?")


def sharegpt_row(user: str, **over) -> dict:
    # AutoCoA's stage-1 layout: the prefix rides in the human turn after "<think>"
    return {"conversation": [{"from": "human", "value": user + "<think>" + PREFIX}],
            "chosen": {"from": "gpt", "value": CHOSEN}, "rejected": {"from": "gpt", "value": REJECTED}, **over}


def test_reads_the_autocoa_layout_and_splits_the_prefix(tmp_path, autocoa_dir):
    user = autocoa_user_message(autocoa_dir)
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([sharegpt_row(user, id="p0")]))
    (pair,) = read_cota_pairs(path)
    assert (pair.id, pair.prompt, pair.prefix, pair.chosen, pair.rejected) == ("p0", user, PREFIX, CHOSEN, REJECTED)
    assert "<think></think>" in pair.prompt  # the instruction's own mention of the tags is not the split point
    if autocoa_dir is not None:
        assert pair.question == read_verl_parquet(autocoa_dir / "hotpotqa_train.parquet", limit=1)[0].question


def test_jsonl_chat_keys_and_string_continuations(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"conversation": [{"role": "user", "content": "Q: 2+2?"}], "chosen": "4", "rejected": "<begin_search>"},
            {"conversation": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "Q?<think>so"}],
             "chosen": {"role": "assistant", "content": "a"}, "rejected": "b"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    first, second = read_cota_pairs(path)
    assert (first.id, first.prompt, first.prefix, first.chosen) == (f"{path}:1", "Q: 2+2?", "", "4")
    assert (second.prompt, second.prefix, second.history) == ("Q?", "so", ({"role": "system", "content": "be brief"},))


def test_write_then_read_gives_the_same_pairs(tmp_path, autocoa_dir):
    pairs = [ContrastivePair("a", autocoa_user_message(autocoa_dir), "", PREFIX, CHOSEN, REJECTED),
             ContrastivePair("b", "Q?", "Q?", "", "x", "y", ({"role": "system", "content": "s"},))]
    write_cota_pairs(tmp_path / "out.json", pairs)
    back = read_cota_pairs(tmp_path / "out.json")
    assert [(p.id, p.prompt, p.prefix, p.chosen, p.rejected, p.history) for p in back] == \
        [(p.id, p.prompt, p.prefix, p.chosen, p.rejected, p.history) for p in pairs]
    assert json.loads((tmp_path / "out.json").read_text())[0]["chosen"] == {"from": "gpt", "value": CHOSEN}


def test_split_prefix_without_think_keeps_the_whole_prompt():
    assert split_prefix("just a question") == ("just a question", "")


@pytest.mark.parametrize(
    "change, field",
    [({"chosen": None}, "chosen"),
     ({"rejected": {"from": "gpt", "value": "  "}}, "rejected"),
     ({"conversation": [{"from": "robot", "value": "x"}]}, r"conversation\[0\]"),
     ({"conversation": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]}, "conversation")],
)
def test_bad_pair_names_file_item_and_field(tmp_path, change, field):
    bad = {k: v for k, v in {**sharegpt_row("Q?"), **change}.items() if v is not None}
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([sharegpt_row("Q?"), bad]))
    with pytest.raises(ValueError, match=rf"pairs.json: item 1: field '{field}'"):
        read_cota_pairs(path)
    lines = tmp_path / "pairs.jsonl"
    lines.write_text(json.dumps(sharegpt_row("Q?")) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=rf"pairs.jsonl:2: field '{field}'"):
        read_cota_pairs(lines)


def test_broken_json_names_the_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(sharegpt_row("Q?")) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: not valid JSON"):
        read_cota_pairs(path)

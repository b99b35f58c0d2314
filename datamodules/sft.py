"""Messages JSONL (AutoCoA CoA/CoT trajectories) -> padded, loss-masked batches for SFT stages 2 and 3."""

from __future__ import annotations

from coa.data.packing import batch_examples
from coa.data.messages import Trajectory, read_messages
from coa.datamodules.tokenized import TokenizedDataModule
from coa.masking import TokenizedExample, tokenize_chat
from coa.models.agent_card import resolve_prompt
from coa.prompts import PromptTemplate


class SFTDataModule(TokenizedDataModule):
    """Reads trajectories, rebuilds each prompt with `prompt`, masks the loss, batches with a resumable shuffle.

    Args:
        train_path: messages JSONL for training.
        val_path: messages JSONL for validation (optional).
        tokenizer_path: directory or hub id of the tokenizer (usually the policy's).
        trust_remote_code: for tokenizers with custom code (the policy's setting).
        chat_template: a Jinja template or .jinja file instead of the tokenizer's own (the policy's setting).
        add_action_tokens: the action tags as tokens of their own, as the policy adds them (the policy's setting).
        batch_size: examples per batch and process (a DDP run's global batch is batch_size x processes).
        max_length: examples longer than this many tokens are left out (with a warning).
        prompt: instruction template ("autocoa", "short", or a text with `{question}`); None takes the
            model's own (`coa_agent.json` beside the tokenizer), else "autocoa".
        mask_observations: True for stage 2 (observations get no loss), False for stage 3.
        mask_observation_open: with `mask_observations` False, each observation's open tag still gets no loss
            (coa's variant of stage 3: the simulated environment writes that tag, the policy writes the rest).
        observation_weight: with `mask_observations` False, the observations' tokens count this much in the loss
            (in (0, 1]; coa's variant of stage 3, the paper's is 1): the world model costs the policy's text less.
        seed: seeds the shuffle.
        group_by_length: batches of similar lengths (transformers' `group_by_length`), in random order: ~30% less
            time per step where lengths vary as much as the embedded world's (1 to 4 searches), but batches of one
            kind of trajectory each learn less per step (quick preset, 1,500 SFT2 steps: needs-search EM 0.35 -> 0.26).
        pack: several examples per row (`coa.data.packing`): the same batches, less padding (embedded world, batch 8:
            1.52 -> 1.23 padded tokens per real one), each example's loss as it is alone. Needs a model whose
            attention transformers masks by position ids (its own models: sdpa, eager, flex, flash).
    """

    def __init__(
        self,
        train_path: str,
        val_path: str | None = None,
        tokenizer_path: str = "",
        trust_remote_code: bool = False,
        chat_template: str | None = None,
        add_action_tokens: bool = False,
        batch_size: int = 8,
        max_length: int = 1024,
        prompt: str | None = None,
        mask_observations: bool = True,
        mask_observation_open: bool = False,
        observation_weight: float = 1.0,
        seed: int = 0,
        group_by_length: bool = False,
        pack: bool = False,
    ) -> None:
        super().__init__(batch_size)
        if not 0.0 < observation_weight <= 1.0:
            raise ValueError(f"data.init_args.observation_weight: {observation_weight} is not in (0, 1]")
        if observation_weight != 1.0 and mask_observations:
            raise ValueError("data.init_args.observation_weight weighs observations that mask_observations: true leaves "
                             "out of the loss; set mask_observations: false (stage 3)")
        self.save_hyperparameters()
        self.template = PromptTemplate(resolve_prompt(prompt, tokenizer_path, "data.prompt"))

    def read(self, path: str):
        for trajectory in read_messages(path):
            yield trajectory.id, self.tokenize(trajectory)

    def num_tokens(self, example: TokenizedExample) -> int:
        return len(example.input_ids)

    def tokenize(self, trajectory: Trajectory) -> TokenizedExample:
        return tokenize_chat(
            self.tokenizer, self.template.messages(trajectory.question), trajectory.response,
            self.hparams.mask_observations, mask_observation_open=self.hparams.mask_observation_open,
            observation_weight=self.hparams.observation_weight,
        )

    def _collate(self, examples: list[TokenizedExample]):
        return batch_examples(examples, self.tokenizer.pad_token_id, self.hparams.pack)

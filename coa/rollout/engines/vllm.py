"""Generation with a colocated vLLM engine that takes the policy's weights after each optimizer step (CUDA only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedTokenizerBase

from coa.rollout.engines.base import Generation, GenerationEngine, SamplingSettings
from coa.rollout.engines.stop import cut_ids_at_text, first_stop
from coa.rollout.engines.streams import RowStreams, as_streams
from coa.rollout.engines.tensor_parallel import TensorParallelGroup
from coa.rollout.engines.vllm_setup import VLLMSettings, _launcher_env, _settings  # noqa: F401 (VLLMSettings: API)
from coa.rollout.engines.weights import policy_weights

if TYPE_CHECKING:
    from coa.policy import Policy

INSTALL_HINT = (
    "VLLMEngine needs vLLM: pip install 'coa[vllm]' on a machine with a CUDA GPU, "
    "or generate with the HF engine (coa.rollout.engines.hf.HFEngine), which runs anywhere"
)
Request = tuple[list[int], int]  # (prompt token ids, sampling seed)
SLEEP_TAGS = ("weights", "kv_cache")  # what vLLM's sleep frees; wake_up takes them back by name, weights first


class VLLMEngine(GenerationEngine):
    """A vLLM `LLM` in this process, on this process's GPU, generating from token ids.

    The engine runs in-process (vLLM's external-launcher executor), so `sync_weights` copies the
    policy's tensors straight into vLLM's model, as TRL's colocate mode does.

    Args:
        model_dir: a Hugging Face model directory (the policy's `model_name_or_path`, or one it exported).
        tokenizer: the policy's tokenizer (cuts stop strings token-exactly); None loads the one in `model_dir`.
        trust_remote_code: passed to vLLM for models with custom code.
        **settings: `VLLMSettings` fields (gpu_memory_utilization=0.3, ...), as a RolloutCallback's `engine_args`.
    """

    def __init__(
        self,
        model_dir: str,
        tokenizer: PreTrainedTokenizerBase | None = None,
        trust_remote_code: bool = False,
        **settings: Any,
    ) -> None:
        self.settings = settings = _settings(settings)  # a config error shows before vLLM is looked for
        try:
            import vllm
        except ImportError as err:
            raise RuntimeError(INSTALL_HINT) from err
        if not torch.cuda.is_available():
            raise RuntimeError(
                "VLLMEngine needs a CUDA GPU and none is visible (torch.cuda.is_available() is False); "
                "run on a GPU machine, or generate with the HF engine (coa.rollout.engines.hf.HFEngine) on CPU"
            )
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        self.tokenizer = tokenizer
        self._asleep: set[str] = set()
        self._weights_lost = False  # a level-2 sleep dropped them and no sync has filled them since
        self._tp_group = TensorParallelGroup.of_size(settings.tensor_parallel_size)
        with _launcher_env():
            self.llm = vllm.LLM(
                model=str(model_dir),
                tensor_parallel_size=settings.tensor_parallel_size,
                dtype=settings.dtype or "auto",
                gpu_memory_utilization=settings.gpu_memory_utilization,
                max_model_len=settings.max_model_len,
                enable_sleep_mode=settings.enable_sleep_mode,
                seed=settings.seed,
                enforce_eager=settings.enforce_eager,
                trust_remote_code=trust_remote_code,
                # One engine per training process, in that process: weights are copied, never serialised.
                distributed_executor_backend="external_launcher",
            )
        if getattr(self.llm.llm_engine, "model_executor", None) is None:
            raise RuntimeError(
                "vLLM built its engine in another process, so weights cannot be pushed in place; "
                "set VLLM_ENABLE_V1_MULTIPROCESSING=0 (the external launcher should have)"
            )

    @classmethod
    def from_policy(cls, policy: Policy, **settings: Any) -> VLLMEngine:
        """An engine on the policy's model directory and tokenizer, in the policy's dtype unless `settings` names one.

        It starts from the weights on disk: call `sync_weights(policy)` before generating from a policy that trained.
        """
        if getattr(policy, "new_token_pieces", None):
            raise ValueError(
                f"{policy.model_name_or_path}: policy.add_action_tokens added {len(policy.new_token_pieces)} tag tokens in "
                "this run, and vLLM starts from the model directory on disk, which lacks their rows. Add the tags in an "
                "earlier stage (SFT) and start this one from its export (the tags are tokens there; nothing is added again)"
            )
        if settings.get("dtype") is None:
            settings["dtype"] = policy.dtype_name
        return cls(policy.model_name_or_path, policy.tokenizer, policy.trust_remote_code, **settings)

    @property
    def holds_own_weights(self) -> bool:
        return True

    def generate(
        self, prompts: list[list[int]], settings: SamplingSettings, generator: torch.Generator | RowStreams | None = None
    ) -> list[Generation]:
        """One continuation per prompt. Under tensor parallelism every process of the group must call it, with
        an empty list when it has nothing to ask (`any_active` says when all are done)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # One seed per request from the row's own stream, so a repeated prompt (a GRPO group) samples apart,
        # reproducibly, and the same whichever rows share the call.
        requests: list[Request] = list(zip((list(p) for p in prompts), as_streams(generator, len(prompts)).seeds()))
        everyone, mine = self._tp_group.gather(requests) if self._tp_group else (requests, slice(0, len(requests)))
        if not everyone:
            return []
        self.wake_up()
        params = [_sampling_params(SamplingParams, settings, seed) for _, seed in everyone]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p, _ in everyone], params, use_tqdm=False)
        out = [o.outputs[0] for o in outputs[mine]]
        return [to_generation(self.tokenizer, list(o.token_ids), o.finish_reason, o.stop_reason, settings) for o in out]

    def any_active(self, active: bool) -> bool:
        return self._tp_group.any(active) if self._tp_group else active

    def token_logprobs(self, sequences: list[list[int]]) -> list[list[float]]:
        """[len - 1] log p(token t | tokens before it) of each sequence under the engine's current weights: vLLM's
        prompt log-probs (of the raw logits, temperature 1), to compare with the policy's after a weight sync."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        everyone, mine = self._tp_group.gather([list(s) for s in sequences]) if self._tp_group else (
            [list(s) for s in sequences], slice(0, len(sequences)))
        if not everyone:
            return []
        self.wake_up()
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in everyone], params, use_tqdm=False)
        return [[o.prompt_logprobs[t][token].logprob for t, token in enumerate(s) if t > 0]
                for o, s in zip(outputs[mine], everyone[mine])]

    @torch.no_grad()
    def sync_weights(self, policy: Policy) -> None:
        """Copies the policy's current weights into vLLM's model, one tensor at a time (LoRA merged into copies,
        a quantised base dequantised: the policy is never written), and forgets cached prefixes."""
        if "weights" in self._asleep:  # loading into slept (unmapped) memory would crash or be lost
            self._wake(["weights"])
        weights = policy_weights(policy.model, policy.torch_dtype)
        self.llm.apply_model(lambda model: model.load_weights(weights))
        self._weights_lost = False
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights

    def sleep(self) -> None:
        """Frees vLLM's GPU memory: the KV cache, and the weights (to CPU memory at level 1, dropped at level 2);
        a no-op without sleep mode or when asleep already."""
        if self.settings.enable_sleep_mode and not self._asleep:
            self.llm.sleep(level=self.settings.sleep_level)
            self._asleep = set(SLEEP_TAGS)
            self._weights_lost = self.settings.sleep_level == 2

    def wake_up(self) -> None:
        """Takes the GPU memory back after `sleep()`; no-op when awake. `generate` calls it itself.

        Raises:
            RuntimeError: a level-2 sleep dropped the weights and no `sync_weights` has put them back.
        """
        if self._weights_lost:
            raise RuntimeError(
                "vLLM slept at level 2 (vllm.sleep_level: 2), which drops its weights, and no weight sync has "
                "filled them since: sync after every optimizer step (WeightSync every_n_steps: 1) or use sleep_level: 1"
            )
        if self._asleep:
            self._wake([t for t in SLEEP_TAGS if t in self._asleep])  # weights first, as vLLM advises

    def _wake(self, tags: list[str]) -> None:
        torch.cuda.empty_cache()  # hand the trainer's cached blocks back so vLLM can map its own
        self.llm.wake_up(tags=tags)
        self._asleep -= set(tags)


def to_generation(
    tokenizer: PreTrainedTokenizerBase,
    token_ids: list[int],
    finish_reason: str | None,
    stop_reason: int | str | None,
    settings: SamplingSettings,
) -> Generation:
    """One vLLM completion as a Generation, token-exact, as the HF engine reports it.

    vLLM cuts its text at a stop string but not its ids: the token that completed the stop string (and,
    with several tokens a step, some after it) stays. Here the ids are cut too: the tokens wholly before
    the end of the stop string are kept and the rest of the straddling token is re-encoded.

    Args:
        token_ids: [N] vLLM's `CompletionOutput.token_ids`.
        finish_reason: vLLM's "stop" (a stop string or stop token), "length" or "abort".
        stop_reason: the stop string (str), the stop token id (int), or None (length, or the model's EOS).
        settings: the call's settings (its stop strings).
    Raises:
        RuntimeError: vLLM aborted the request.
        ValueError: vLLM reported a stop string that the decoded ids do not hold (tokenizer mismatch).
    """
    if finish_reason == "length":
        return Generation(token_ids, _decode(tokenizer, token_ids), "length", None)
    if finish_reason != "stop":
        raise RuntimeError(f"vLLM ended a request with finish_reason={finish_reason!r} after {len(token_ids)} tokens")
    if isinstance(stop_reason, str):
        text = _decode(tokenizer, token_ids)
        hit = first_stop(text, settings.stop_strings)
        if hit is None:
            raise ValueError(
                f"vLLM stopped on {stop_reason!r} but the decoded tokens do not hold it: {text[-60:]!r}; "
                "vLLM's tokenizer and the engine's must be the same"
            )
        kept, unsampled = cut_ids_at_text(tokenizer, token_ids, hit[0])
        return Generation(kept, text[: hit[0]], "stop", hit[1], unsampled)
    # A stop token (stop_reason is its id) or the model's own EOS (None): kept as the last id, not in the text.
    return Generation(token_ids, _decode(tokenizer, token_ids[:-1]), "eos", token_ids[-1])


def _sampling_params(sampling_params_cls: Any, settings: SamplingSettings, seed: int) -> Any:
    """vLLM SamplingParams for one request: coa's stops only (the model's EOS stops only when listed)."""
    return sampling_params_cls(
        n=1,
        max_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p if settings.temperature > 0 else 1.0,
        seed=seed,
        stop=list(settings.stop_strings),
        include_stop_str_in_output=True,
        stop_token_ids=list(settings.stop_token_ids),
        ignore_eos=True,  # only settings.stop_token_ids stop: callers list the EOS there
        detokenize=True,  # stop strings are matched in text
        skip_special_tokens=False,  # match stop strings in the text `tokenizer.decode` gives
        spaces_between_special_tokens=False,
    )


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

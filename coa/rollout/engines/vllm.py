"""Generation with a colocated vLLM engine that takes the policy's weights after each optimizer step (CUDA only)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedTokenizerBase

from coa.rollout.engines.base import Generation, GenerationEngine, SamplingSettings
from coa.rollout.engines.stop import cut_ids_at_text, first_stop
from coa.rollout.engines.streams import RowStreams, as_streams

if TYPE_CHECKING:
    from coa.policy import Policy

INSTALL_HINT = (
    "VLLMEngine needs vLLM: pip install 'coa[vllm]' on a machine with a CUDA GPU, "
    "or generate with the HF engine (coa.rollout.engines.hf.HFEngine), which runs anywhere"
)
DTYPES = ("auto", "float32", "bfloat16", "float16")
Request = tuple[list[int], int]  # (prompt token ids, sampling seed)
SLEEP_TAGS = ("weights", "kv_cache")  # what vLLM's level-1 sleep frees; wake_up takes them back by name


@dataclass(frozen=True)
class VLLMSettings:
    """How the colocated vLLM engine is built.

    Args:
        gpu_memory_utilization: fraction of the GPU's memory vLLM may take (weights + KV cache); the rest is
            the trainer's, so it stays well under vLLM's serving default of 0.9.
        tensor_parallel_size: GPUs one engine spans; above 1 it needs torch.distributed (torchrun / DDP)
            over a multiple of it, and the ranks of a group generate their prompts together.
        dtype: weight and activation dtype ("auto", "float32", "bfloat16", "float16"); None takes the
            policy's dtype in `from_policy` and "auto" otherwise (vLLM's "auto" runs float32 configs in float16).
        max_model_len: longest prompt + continuation in tokens; None takes the model's.
        enable_sleep_mode: lets `sleep()` free the GPU memory vLLM holds while the trainer steps.
        seed: vLLM's engine seed (each request also carries its own seed, drawn per call).
        enforce_eager: no CUDA graphs: slower decoding, faster start and less memory.
    """

    gpu_memory_utilization: float = 0.3
    tensor_parallel_size: int = 1
    dtype: str | None = None
    max_model_len: int | None = None
    enable_sleep_mode: bool = False
    seed: int = 0
    enforce_eager: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(
                f"vllm.gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1]; "
                "colocated with training, 0.2-0.5 leaves the trainer room"
            )
        if self.tensor_parallel_size < 1:
            raise ValueError(f"vllm.tensor_parallel_size={self.tensor_parallel_size} must be at least 1")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"vllm.dtype={self.dtype!r} is not one of {', '.join(DTYPES)} (or null for the policy's)")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"vllm.max_model_len={self.max_model_len} must be positive, or null for the model's")


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
        self._tp_group = _tensor_parallel_group(settings.tensor_parallel_size)
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

    def generate(
        self, prompts: list[list[int]], settings: SamplingSettings, generator: torch.Generator | RowStreams | None = None
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self.wake_up()
        # One seed per request from the row's own stream, so a repeated prompt (a GRPO group) samples apart,
        # reproducibly, and the same whichever rows share the call.
        requests: list[Request] = list(zip((list(p) for p in prompts), as_streams(generator, len(prompts)).seeds()))
        everyone, mine = self._gather_tensor_parallel(requests)
        if not everyone:
            return []
        params = [_sampling_params(SamplingParams, settings, seed) for _, seed in everyone]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p, _ in everyone], params, use_tqdm=False)
        out = [o.outputs[0] for o in outputs[mine]]
        return [to_generation(self.tokenizer, list(o.token_ids), o.finish_reason, o.stop_reason, settings) for o in out]

    @torch.no_grad()
    def sync_weights(self, policy: Policy) -> None:
        """Copies the policy's current weights (LoRA merged in) into vLLM's model and forgets cached prefixes."""
        if "weights" in self._asleep:  # loading into slept (unmapped) memory would crash or be lost
            self._wake(["weights"])
        with policy_weights(policy) as weights:
            self.llm.apply_model(lambda model: model.load_weights(weights))
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights

    def sleep(self) -> None:
        """Frees vLLM's GPU memory (level 1: weights to CPU, KV cache dropped); no-op without sleep mode."""
        if self.settings.enable_sleep_mode and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = set(SLEEP_TAGS)

    def wake_up(self) -> None:
        """Takes the GPU memory back after `sleep()`; no-op when awake. `generate` calls it itself."""
        if self._asleep:
            self._wake([t for t in SLEEP_TAGS if t in self._asleep])  # weights first, as vLLM advises

    def _wake(self, tags: list[str]) -> None:
        torch.cuda.empty_cache()  # hand the trainer's cached blocks back so vLLM can map its own
        self.llm.wake_up(tags=tags)
        self._asleep -= set(tags)

    def _gather_tensor_parallel(self, requests: list[Request]) -> tuple[list[Request], slice]:
        """Every request of this rank's tensor-parallel group (its engines must all run them) and this rank's part."""
        if self._tp_group is None:
            return requests, slice(0, len(requests))
        import torch.distributed as dist

        parts: list[Any] = [None] * self.settings.tensor_parallel_size
        dist.all_gather_object(parts, requests, group=self._tp_group)
        start = sum(len(p) for p in parts[: dist.get_rank(group=self._tp_group)])
        return [r for p in parts for r in p], slice(start, start + len(requests))


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
        return Generation(cut_ids_at_text(tokenizer, token_ids, hit[0]), text[: hit[0]], "stop", hit[1])
    # A stop token (stop_reason is its id) or the model's own EOS (None): kept as the last id, not in the text.
    return Generation(token_ids, _decode(tokenizer, token_ids[:-1]), "eos", token_ids[-1])


def vllm_weight_name(name: str, adapter_prefix: str = "lora_") -> str | None:
    """The name vLLM's `load_weights` knows for a (peft) parameter name, or None for adapter-only weights.

    >>> vllm_weight_name("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight")
    'model.layers.0.self_attn.q_proj.weight'
    >>> vllm_weight_name("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight") is None
    True
    """
    if adapter_prefix in name or "original_module" in name:
        return None  # the adapter (merged into its base layer) and the copy that modules_to_save shadows
    name = name.removeprefix("base_model.model.").replace(".base_layer", "")
    return name.replace("modules_to_save.default.", "")


@contextmanager
def policy_weights(policy: Policy) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """The policy's weights under Hugging Face names, LoRA merged in (views, not copies), while the context is open.

    With LoRA the adapter is merged into the base weights in place and unmerged on exit, even on error;
    a quantised base (QLoRA) cannot hold the merge, so a merged copy is built on CPU instead (slow).
    """
    model = policy.model
    if policy.lora is None:
        yield [(name, p.detach()) for name, p in model.named_parameters()]
    elif policy.load_in_bits is not None:
        yield [(name, p.detach()) for name, p in policy._merged_copy().named_parameters()]
    else:
        prefix = getattr(model, "prefix", "lora_")
        with torch.no_grad():
            model.merge_adapter()
        try:
            named = ((vllm_weight_name(n, prefix), p) for n, p in model.named_parameters())
            yield [(name, p.detach()) for name, p in named if name is not None]
        finally:
            with torch.no_grad():
                model.unmerge_adapter()


def _settings(given: dict[str, Any]) -> VLLMSettings:
    """`VLLMSettings` from keyword arguments; an unknown one is named with the known ones."""
    known = [f.name for f in fields(VLLMSettings)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"VLLMEngine: unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(known)}")
    return VLLMSettings(**given)


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


def _tensor_parallel_group(size: int) -> Any:
    """This rank's tensor-parallel process group, or None for one GPU per engine."""
    if size == 1:
        return None
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if world % size or world < size:
        raise ValueError(
            f"vllm.tensor_parallel_size={size} needs torch.distributed over a multiple of {size} GPUs (world size "
            f"{world}); launch with torchrun or Lightning DDP, or set tensor_parallel_size: 1"
        )
    group, _ = dist.new_subgroups_by_enumeration([list(range(i, i + size)) for i in range(0, world, size)])
    return group


@contextmanager
def _launcher_env() -> Iterator[None]:
    """The torchrun variables vLLM's external launcher reads while it starts, restored afterwards.

    Under DDP they describe this rank (vLLM then reuses the running process group); alone, a world of one.
    The device is the one this process trains on.
    """
    import torch.distributed as dist

    running = dist.is_available() and dist.is_initialized()
    wanted = {
        "RANK": str(dist.get_rank() if running else 0),
        "WORLD_SIZE": str(dist.get_world_size() if running else 1),
        "LOCAL_RANK": str(torch.cuda.current_device()),
    }
    if not running:  # vLLM starts a process group of one over these
        wanted["MASTER_ADDR"] = os.environ.get("MASTER_ADDR") or "127.0.0.1"
        wanted["MASTER_PORT"] = os.environ.get("MASTER_PORT") or str(_free_port())
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

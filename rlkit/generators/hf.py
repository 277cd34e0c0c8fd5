"""In-process sampling with a transformers causal LM and a KV cache.

The decode loop is written out rather than calling ``model.generate`` so that it
returns exactly what online RL needs (per-token log-probs of the sampling
distribution, EOS kept, stop strings cut) with little per-step overhead.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any, Mapping, Sequence

import torch
from transformers import DynamicCache

from rlkit.data.templates import encode_prompt
from rlkit.generators.base import Generator
from rlkit.generators.config import HFGeneratorConfig
from rlkit.types import Completion, Prompt, SamplingParams


class HFGenerator(Generator):
    """Samples from ``model`` (a transformers causal LM) on the model's device.

    ``model`` may be the trainer's policy module itself (weights shared, nothing to
    sync) or a separate copy refreshed through ``update_weights``.
    """

    Config = HFGeneratorConfig

    def __init__(self, config: HFGeneratorConfig, model: Any, tokenizer: Any):
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        eos = {tokenizer.eos_token_id}
        # Instruct models often end turns with a token other than the tokenizer's EOS
        # (e.g. both <|im_end|> and <|endoftext|>); generation_config lists them all.
        model_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos.update(model_eos if isinstance(model_eos, list) else [model_eos])
        eos.discard(None)
        if not eos:
            raise ValueError("HFGenerator needs a tokenizer with an eos_token")
        self._eos = sorted(eos)
        # The pad id only fills masked positions and finished rows, so any id works.
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos[0]
        # Computing logits only at the last prompt position avoids a
        # (batch x prompt length x vocab) tensor in the prefill.
        self._prefill_kwargs = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
        # transformers renamed past_key_values to cache (5.x); older versions only know the former.
        self._cache_arg = "cache" if _accepts(model, "cache") else "past_key_values"

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        # Same ids as the trainer's, so generated log-probs and trainer log-probs line up.
        return self.generate_tokens([encode_prompt(self.tokenizer, p) for p in prompts], params)

    def generate_tokens(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        encoded = [list(p) for p in prompts]
        rows = [i for i in range(len(encoded)) for _ in range(params.n)]
        device = self.model.device
        # Seeding a private generator from the global RNG makes results reproducible under
        # torch.manual_seed on any device, without consuming the CUDA RNG state.
        seed = int(torch.randint(2**62, (1,)).item())
        rng = torch.Generator(device=device).manual_seed(seed)
        was_training = self.model.training
        self.model.eval()
        completions: list[Completion] = []
        try:
            with torch.inference_mode():
                for start in range(0, len(rows), self.config.batch_size):
                    chunk = rows[start : start + self.config.batch_size]
                    # Rows of a chunk are grouped by prompt: each prompt is prefilled once
                    # and its KV cache copied to its rows.
                    groups = [(i, len(list(g))) for i, g in itertools.groupby(chunk)]
                    completions += self._generate_chunk(encoded, groups, params, rng)
        finally:
            self.model.train(was_training)
        return completions

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Copy ``state_dict`` into the model; a no-op when it holds the model's own tensors."""
        own = self.model.state_dict()
        if own.keys() == state_dict.keys() and all(
            v.data_ptr() == own[k].data_ptr() for k, v in state_dict.items()
        ):
            return
        with torch.no_grad():
            self.model.load_state_dict(state_dict, strict=True)

    def _generate_chunk(
        self,
        encoded: list[list[int]],
        groups: list[tuple[int, int]],
        params: SamplingParams,
        rng: torch.Generator,
    ) -> list[Completion]:
        """Decode ``copies`` samples of each ``(prompt index, copies)`` in ``groups``."""
        device = self.model.device
        prompts = [encoded[i] for i, _ in groups]
        width, steps = max(map(len, prompts)), params.max_new_tokens
        ids = torch.full((len(prompts), width), self._pad, dtype=torch.long)
        # One mask for prompt and generated positions, sliced per step instead of grown.
        mask = torch.ones((len(prompts), width + steps), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[r, : width - len(p)] = 0
        ids, mask = ids.to(device), mask.to(device)
        # Left padding shifts each prompt; position ids restore 0-based positions so
        # results match an unpadded forward.
        positions = (mask[:, :width].cumsum(-1) - 1).clamp(min=0)

        cache = DynamicCache(config=self.model.config)
        logits = self.model(
            input_ids=ids,
            attention_mask=mask[:, :width],
            position_ids=positions,
            use_cache=True,
            **{self._cache_arg: cache},
            **self._prefill_kwargs,
        ).logits[:, -1]
        copies = [c for _, c in groups]
        if len(groups) != sum(copies):
            select = torch.repeat_interleave(
                torch.arange(len(groups), device=device), torch.tensor(copies, device=device)
            )
            cache.batch_select_indices(select)
            logits, mask, positions = logits[select], mask[select], positions[select]
        next_position = positions[:, -1:] + 1

        batch = logits.shape[0]
        tokens = torch.full((batch, steps), self._pad, dtype=torch.long, device=device)
        logprobs = torch.zeros((batch, steps), dtype=torch.float32, device=device)
        lengths = torch.zeros(batch, dtype=torch.long, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        # Rows still decoded (indices into the batch); ``logits``, ``mask``, ``next_position``
        # and the cache hold these rows only.
        live = torch.arange(batch, device=device)
        eos = torch.tensor(self._eos, device=device)
        stops = _StopChecker(self.tokenizer, params.stop, batch) if params.stop else None
        stopped: set[int] = set()
        used = 0
        for t in range(steps):
            used = t + 1
            token, logprob = _sample(logits, params, rng, rows=(live, batch))
            # Finished rows still live are fed pad until the next compaction.
            done = finished[live]
            token = token.masked_fill(done, self._pad)
            tokens[live, t], logprobs[live, t] = token, logprob
            lengths[live] += ~done
            finished[live] = done | torch.isin(token, eos)
            if stops is not None:
                hits = stops.update(tokens[:, t].tolist(), finished.tolist())
                if hits:
                    finished[hits] = True
                    stopped.update(hits)
            if used == steps or bool(finished.all()):
                break
            done = finished[live]
            if 2 * int(done.sum()) >= len(live):
                # Half the rows have finished: drop them (cache included) rather than
                # decode pad for them until the longest row ends; it happens at most
                # log2(batch) times.
                keep = (~done).nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                live, token, mask, next_position = live[keep], token[keep], mask[keep], next_position[keep]
            logits = self.model(
                input_ids=token[:, None],
                attention_mask=mask[:, : width + t + 1],
                position_ids=next_position + t,
                use_cache=True,
                **{self._cache_arg: cache},
            ).logits[:, -1]

        token_ids = tokens[:, :used].tolist()
        token_logprobs = logprobs[:, :used].tolist()
        kept = [token_ids[b][:n] for b, n in enumerate(lengths.tolist())]
        texts = self.tokenizer.batch_decode(kept, skip_special_tokens=True)
        prompt_index = [i for i, c in groups for _ in range(c)]
        return [
            Completion(
                prompt_index=prompt_index[b],
                token_ids=kept[b],
                text=_cut_at_stop(texts[b], params.stop) if b in stopped else texts[b],
                logprobs=token_logprobs[b][: len(kept[b])],
                truncated=not done,
            )
            for b, done in enumerate(finished.tolist())
        ]


def _sample(
    logits: torch.Tensor, params: SamplingParams, rng: torch.Generator,
    rows: tuple[torch.Tensor, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens for a (batch, vocab) logits tensor, with their log-probs.

    ``rows`` = ``(indices, batch)``: the logits are these rows of a batch of that size.
    The random draw is then the whole batch's, so a row samples the same token whichever
    other rows are still decoded.

    The log-prob is log_softmax(logits / temperature) at the chosen token (temperature
    1 for greedy), taken before top-k/top-p truncation: that is what the trainer
    recomputes from a full forward pass, so generator and trainer log-probs agree and
    importance ratios start at exactly 1.
    """
    logits = logits.float()
    if params.temperature == 0:
        logprobs = logits.log_softmax(-1)
        token = logits.argmax(-1)
    else:
        logprobs = (logits / params.temperature).log_softmax(-1)
        # Exponential race: argmax(p / E) with E ~ Exp(1) samples from p, unnormalised p
        # included; cheaper than softmax + torch.multinomial, notably on CPU.
        weights = _truncate(logprobs, params.top_k, params.top_p).exp()
        if rows is None:
            noise = torch.empty_like(weights).exponential_(generator=rng)
        else:
            indices, batch = rows
            noise = weights.new_empty((batch, weights.shape[-1])).exponential_(generator=rng)[indices]
        token = (weights / noise).argmax(-1)
    return token, logprobs.gather(-1, token[:, None]).squeeze(-1)


def _truncate(logprobs: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set log-probs outside the top-k, then outside the top-p nucleus, to -inf."""
    if 0 < top_k < logprobs.shape[-1]:
        kth = logprobs.topk(top_k, dim=-1).values[:, -1:]
        logprobs = logprobs.masked_fill(logprobs < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = logprobs.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass;
        # the most likely token is always kept.
        drop = probs.cumsum(-1) - probs > top_p
        logprobs = logprobs.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    return logprobs


class _StopChecker:
    """Finds rows whose newest token completed a stop string.

    Only the last few tokens of each row are decoded: a stop string of b UTF-8 bytes
    spans at most b + 1 tokens, since every non-special token carries at least one
    byte. That keeps the per-step cost independent of the completion length.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], batch: int):
        self.tokenizer = tokenizer
        self.stop = stop
        self.window = max(len(s.encode()) for s in stop) + 1
        self.history: list[list[int]] = [[] for _ in range(batch)]

    def update(self, tokens: list[int], finished: list[bool]) -> list[int]:
        """Record this step's tokens; return the unfinished rows that now contain a stop string."""
        active = [b for b, done in enumerate(finished) if not done]
        for b in active:
            self.history[b].append(tokens[b])
        tails = [self.history[b][-self.window :] for b in active]
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return [b for b, text in zip(active, texts) if any(s in text for s in self.stop)]


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    return text[: min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))]


def _accepts(model: Any, argument: str) -> bool:
    return argument in inspect.signature(model.forward).parameters

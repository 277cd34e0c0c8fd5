"""Supervised fine-tuning: negative log-likelihood of completion tokens only."""

from __future__ import annotations

from typing import Sequence

from rlkit.algorithms.base import Algorithm, LossOutput, StepPlan, TrainContext
from rlkit.algorithms.config import SFTConfig
from rlkit.algorithms.losses import sft_loss
from rlkit.data.collate import TokenBatch, TokenizedSample, collate, length_grouped_chunks, pack, tokenize
from rlkit.models.forward import target_logprobs
from rlkit.trainer.evaluation import greedy_accuracy
from rlkit.types import SampleKind, SFTSample


class SFT(Algorithm):
    Config = SFTConfig
    sample_kind = SampleKind.SFT
    plot_keys = ("loss", "eval/loss", "eval/accuracy")

    def __init__(self, config: SFTConfig, ctx: TrainContext):
        super().__init__(config, ctx)
        # Every epoch revisits the same samples; rendering chat templates and tokenising
        # them again each time costs about a third of a tiny model's step on CPU.
        self._token_ids: dict[SFTSample, TokenizedSample] = {}

    def tokenized(self, sample: SFTSample) -> TokenizedSample:
        ids = self._token_ids.get(sample)
        if ids is None:
            ids = self._token_ids[sample] = tokenize(self.ctx.tokenizer, sample.prompt, sample.completion,
                                                     self.config.max_length)
        return ids

    def batches(self, samples: Sequence[SFTSample], micro_batch_size: int) -> list[TokenBatch]:
        tokenized = [self.tokenized(s) for s in samples]
        rows = length_grouped_chunks(tokenized, [len(t) for t in tokenized], micro_batch_size,
                                     self.ctx.trainer.micro_batch_tokens)
        pad = self.ctx.tokenizer.pad_token_id
        if self.config.packing:
            return [pack(chunk, pad, self.config.max_length) for chunk in rows]
        return [collate(chunk, pad) for chunk in rows]

    def prepare(self, samples: Sequence[SFTSample]) -> StepPlan:
        return StepPlan([self.batches(samples, self.ctx.trainer.micro_batch_size)])

    def counts(self, batch: TokenBatch) -> dict[str, float]:
        return {"tokens": float(batch.num_targets)}

    def loss(self, batch: TokenBatch, totals: dict[str, float]) -> LossOutput:
        logps, mask, _ = target_logprobs(self.ctx.policy, batch)
        return LossOutput(sft_loss(logps, mask, totals["tokens"]), {"tokens": float(mask.sum())})

    def evaluate(self, samples: Sequence[SFTSample]) -> dict[str, float]:
        nll, count = 0.0, 0
        for batch in self.batches(samples, self.ctx.trainer.eval_batch_size):
            logps, mask, _ = target_logprobs(self.ctx.policy, batch.to(self.ctx.backend.device))
            nll -= float(logps[mask].sum())
            count += int(mask.sum())
        metrics = {"loss": nll / max(count, 1)}
        if self.ctx.judge is not None and any(s.answer is not None for s in samples):
            # Full weights for decoding (a no-op on one process; gathers shards under fsdp2).
            with self.ctx.backend.generation_model(self.ctx.policy):
                accuracy = greedy_accuracy(self.ctx.generator, samples, self.ctx.judge,
                                           self.ctx.trainer.eval_max_new_tokens)
            if accuracy is not None:
                metrics["accuracy"] = accuracy
        return metrics

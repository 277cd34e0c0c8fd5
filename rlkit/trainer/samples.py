"""Sample completions at an evaluation: what the model answers to a few held-out prompts.

One row per prompt (greedy decoding): the prompt, the completion, the reference answer and
whether the completion states it, and the reward with its named parts when the run has a
reward. The loop hands the rows to every logger (``Logger.log_samples``).
"""

from __future__ import annotations

from typing import Any, Sequence

from rlkit.environments.rollout import EpisodeRunner, episode_scores
from rlkit.generators.base import Generator
from rlkit.rewards.base import Reward
from rlkit.types import Message, Prompt, PromptSample, Sample, SamplingParams


def sample_rows(
    generator: Generator, samples: Sequence[Sample], reward: Reward | None, judge: Reward | None, max_new_tokens: int,
    episodes: EpisodeRunner | None = None,
) -> list[dict[str, Any]]:
    """Greedy completions of ``samples``' prompts as rows of a table (see the module doc);
    with ``episodes``, greedy episodes in its environment (the row's completion is the
    conversation after the prompt)."""
    prompts = [s if isinstance(s, PromptSample) else PromptSample(prompt=s.prompt, answer=getattr(s, "answer", None))
               for s in samples]  # a prompt sample keeps its metadata (a code task's unit tests)
    if episodes is not None:
        return episode_rows(episodes, prompts, reward, judge, max_new_tokens)
    completions = generator.generate([p.prompt for p in prompts],
                                     SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    rows: list[dict[str, Any]] = [
        {
            "prompt": prompt_text(p.prompt),
            "completion": c.text,
            "answer": p.answer,
            "correct": None if judge is None else judge.is_correct(p, c),  # None: it cannot tell
            "truncated": c.truncated,
        }
        for p, c in zip(prompts, completions)
    ]
    if reward is not None:
        scored = reward(prompts, completions)
        for i, row in enumerate(rows):
            row["reward"] = scored.scores[i]
            row.update({f"reward/{name}": values[i] for name, values in scored.parts.items()})
    return rows


def episode_rows(runner: EpisodeRunner, prompts: Sequence[PromptSample], reward: Reward | None,
                 judge: Reward | None, max_new_tokens: int) -> list[dict[str, Any]]:
    played = runner.run(prompts, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    scores, _ = episode_scores(played, reward)
    return [
        {
            "prompt": prompt_text(p.prompt),
            "completion": prompt_text(tuple(e.messages)),
            "answer": p.answer,
            "correct": None if judge is None or e.failed else judge.is_correct(p, e.completion()),
            "truncated": e.truncated,
            "turns": e.turns,
            "tool_calls": e.tool_calls,
            "reward": score,
        }
        for p, e, score in zip(prompts, played, scores)
    ]


def prompt_text(prompt: Prompt) -> str:
    """A prompt as one string: raw text as is, chat messages as ``role: content`` lines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.role}: {m.content}" for m in prompt if isinstance(m, Message))

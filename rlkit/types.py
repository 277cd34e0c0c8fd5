"""Typed data passed between stages: datasets -> algorithms -> generators -> rewards.

Everything here is plain Python (no torch) so that datasets, rewards and the
registry can be used and tested without importing a deep-learning stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: str
    content: str


#: A prompt is either raw text (used verbatim) or chat messages (rendered with the
#: tokenizer's chat template, ending with the generation prompt).
Prompt = Union[str, tuple[Message, ...]]


class SampleKind(str, Enum):
    """What an algorithm consumes; a dataset turns its rows into samples of this kind."""

    SFT = "sft"
    PREFERENCE = "preference"
    PROMPT = "prompt"


@dataclass(frozen=True)
class SFTSample:
    """A prompt and the completion to imitate. The loss covers completion tokens only."""

    prompt: Prompt
    completion: str
    answer: str | None = None


@dataclass(frozen=True)
class PreferenceSample:
    """A prompt with a preferred and a dispreferred completion."""

    prompt: Prompt
    chosen: str
    rejected: str
    margin: float | None = None


@dataclass(frozen=True)
class PromptSample:
    """A prompt for online RL or evaluation, with the reference answer when one exists."""

    prompt: Prompt
    answer: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


Sample = Union[SFTSample, PreferenceSample, PromptSample]


@dataclass(frozen=True)
class SamplingParams:
    """How a generator samples. temperature == 0 means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    n: int = 1


@dataclass
class Completion:
    """One sampled continuation of a prompt.

    ``logprobs[i]`` is the generator's log-probability of ``token_ids[i]`` under the
    distribution it sampled from (after temperature; before top-p/top-k truncation).
    ``truncated`` is True when generation stopped at ``max_new_tokens`` rather than at
    EOS or a stop string.
    """

    prompt_index: int
    token_ids: list[int]
    text: str
    logprobs: list[float]
    truncated: bool


@dataclass
class RewardOutput:
    """Scores for a batch of completions, with named parts for combined rewards.

    ``failures`` counts completions whose reward raised and was scored 0 because the
    reward was configured to tolerate errors.
    """

    scores: list[float]
    parts: dict[str, list[float]] = field(default_factory=dict)
    failures: int = 0

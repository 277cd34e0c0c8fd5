"""The environment interface: multi-turn episodes of assistant turns and observations.

An environment starts an episode from a prompt sample and answers every assistant turn
with a :class:`Turn`: an observation (a tool result or a user message, appended to the
conversation as the next message through the chat template), a reward for that turn, and
whether the episode is done. The multi-turn rollout (``rlkit.environments.rollout``) steps
many episodes as one batch, generates each assistant turn up to EOS or one of the
environment's ``stop_strings``, and ends an episode when it is done, after
``env.max_turns`` assistant turns, or when it has used ``env.max_tokens`` tokens.

Bad input from the model -- a tool call that does not parse, an unknown tool -- is
reported by raising :class:`ToolError` from ``step``; an environment that raises anything
else is handled the same way. :meth:`Environment.safe_step` applies ``env.on_error``:

* ``observation`` (default): the error text is the observation and the episode goes on;
* ``zero_reward``: the episode ends and scores 0.

Either way the turn counts a tool error (``env/tool_errors``) and the run goes on.

The rollout starts and steps a round's episodes together (:meth:`Environment.start_all`,
:meth:`Environment.step_all`): an environment whose steps wait on something (subprocesses,
a service) overrides ``step_all`` to run them concurrently, and with ``env.num_workers > 0``
they run in a pool of Ray actors (:mod:`rlkit.environments.workers`), each holding an
environment built from the same typed config -- so an environment's class must be importable
and its config and episode states picklable.

A plugin environment subclasses :class:`Environment`, derives its ``Config`` from
:class:`EnvironmentConfig` and is registered under the ``rlkit.environments`` entry-point
group, like rewards: ``python -m rlkit algo=grpo env=my_env``.

Torch-free: configs are checked while composing and episodes can be stepped anywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Sequence

from rlkit.schema import Choice, at_least
from rlkit.types import PromptSample


#: The chat role of observation messages unless ``env.observation_role`` says otherwise.
OBSERVATION_ROLE = "tool"


class OnError(Choice):
    """What an episode does when a turn's tool call is bad or the environment raises."""

    observation = "observation"
    zero_reward = "zero_reward"


@dataclass
class EnvironmentConfig:
    """What every environment's ``Config`` has (subclass it to add fields)."""

    #: Assistant turns per episode at most; an episode cut there counts as truncated.
    max_turns: int = field(default=4, metadata=at_least(1))
    #: Tokens of an episode after its prompt, assistant and observation tokens together
    #: (null: ``max_turns`` x the sampling's ``max_new_tokens``).
    max_tokens: Optional[int] = field(default=None, metadata=at_least(1))
    #: observation | zero_reward, see rlkit.environments.base.
    on_error: OnError = OnError.observation
    #: The role of observation messages in the chat template.
    observation_role: str = OBSERVATION_ROLE
    #: Ray actors that start and step the episodes (one CPU each, per trainer rank); 0: in
    #: this process. For environments whose steps are slow: rlkit.environments.workers.
    num_workers: int = field(default=0, metadata=at_least(0))


@dataclass
class Turn:
    """An environment's answer to one assistant turn."""

    #: Text appended as the next message (role ``env.observation_role``); None: nothing.
    observation: Optional[str] = None
    reward: float = 0.0
    #: The episode is over (e.g. the assistant gave its final answer).
    done: bool = False
    tool_calls: int = 0
    tool_errors: int = 0
    #: Set by :meth:`Environment.safe_step` when the turn failed: the error's message.
    error: Optional[str] = None


class ToolError(ValueError):
    """Bad input from the model: a tool call that does not parse, an unknown tool, bad arguments."""


class Environment(ABC):
    """A multi-turn environment, built as ``Environment(config)``.

    Implementations set ``Config`` to a dataclass derived from :class:`EnvironmentConfig`.
    """

    Config: ClassVar[type] = EnvironmentConfig

    def __init__(self, config: EnvironmentConfig):
        self.config = config

    @property
    def name(self) -> str:
        """How errors and warnings refer to this environment."""
        return type(self).__name__

    def stop_strings(self) -> tuple[str, ...]:
        """Strings that end an assistant turn besides EOS (e.g. the end of a tool call)."""
        return ()

    def start(self, sample: PromptSample) -> Any:
        """The state of a new episode for ``sample`` (passed back to every ``step``)."""
        return sample

    @abstractmethod
    def step(self, state: Any, assistant_text: str) -> Turn:
        """Answer one assistant turn; raise :class:`ToolError` for a bad tool call."""

    def close(self) -> None:
        """Release what the environment holds (processes, sandboxes)."""

    def start_all(self, samples: Sequence[PromptSample]) -> list[Any]:
        """``start`` of each sample, in order."""
        return [self.start(sample) for sample in samples]

    def step_all(self, states: Sequence[Any], assistant_texts: Sequence[str]) -> list[Turn]:
        """``safe_step`` of each episode's turn, in order (one round of the rollout). Override
        it to run the steps concurrently; each episode's state is used by one step only."""
        return [self.safe_step(state, text) for state, text in zip(states, assistant_texts)]

    def safe_step(self, state: Any, assistant_text: str) -> Turn:
        """``step``, with a failure turned into a turn per ``on_error`` (see the module docstring)."""
        try:
            turn = self.step(state, assistant_text)
        except Exception as exc:  # bad tool calls and environment bugs alike must not stop the run
            kind = "" if isinstance(exc, ToolError) else f"{self.name} raised {type(exc).__name__}: "
            return self.error_turn(f"error: {kind}{exc}")
        if not isinstance(turn, Turn):
            raise TypeError(f"{self.name}.step must return a Turn, got {type(turn).__name__}")
        return turn

    def error_turn(self, message: str) -> Turn:
        """The turn of a failed step per ``on_error``: ``message`` as the observation, or the end at 0."""
        if self.config.on_error == OnError.zero_reward:
            return Turn(observation=None, reward=0.0, done=True, tool_errors=1, error=message)
        return Turn(observation=message, reward=0.0, done=False, tool_errors=1, error=message)

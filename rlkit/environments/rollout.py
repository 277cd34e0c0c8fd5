"""Multi-turn rollouts: many episodes stepped as one batch.

Each round generates the next assistant turn of every unfinished episode in one
``Generator.generate_tokens`` call -- up to EOS, one of the environment's stop strings or
``max_new_tokens`` -- and hands each turn to the environment. Its observation is appended
as the next message through the chat template (the tokens between the end of the
assistant's text and the start of the next assistant turn: end-of-turn marker, the
observation message, the next assistant header), and the episode goes on until the
environment says it is done, ``env.max_turns`` turns were taken, or the episode's tokens
(assistant and observation tokens after the prompt) would exceed ``env.max_tokens``.

An episode becomes one :class:`~rlkit.types.Completion` whose token ids are exactly what
the policy was conditioned on and generated, with the generator's log-probabilities of the
assistant tokens and ``loss_mask`` False at the observation tokens: the trainer scores
only what the policy generated, and ``mismatch/logprob_abs_diff`` compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from statistics import fmean
from typing import Any, Sequence

from rlkit.data.templates import encode_prompt, has_chat_template, render_prompt
from rlkit.environments.base import Environment, OnError
from rlkit.generators.base import Generator
from rlkit.types import Completion, Message, PromptSample, SamplingParams

#: Stands for the assistant's text while the chat template renders a turn boundary.
_MARK = "\u2063rlkit-assistant-turn\u2063"


@dataclass
class Episode:
    """One conversation after its prompt: the tokens, who produced them, and its tallies."""

    sample_index: int
    sample: PromptSample
    state: Any
    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    loss_mask: list[bool] = field(default_factory=list)
    #: The assistant turns (their tokens' text) and observations, in order.
    messages: list[Message] = field(default_factory=list)
    reward: float = 0.0
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    done: bool = False
    #: Ended by max_turns, the token budget or a turn cut at max_new_tokens.
    truncated: bool = False
    #: A tool error under ``on_error=zero_reward``: the episode scores 0.
    failed: bool = False

    @property
    def final_text(self) -> str:
        """The last assistant turn (what a reward judges)."""
        return next((m.content for m in reversed(self.messages) if m.role == "assistant"), "")

    def completion(self) -> Completion:
        return Completion(prompt_index=self.sample_index, token_ids=list(self.token_ids), text=self.final_text,
                          logprobs=list(self.logprobs), truncated=self.truncated, loss_mask=list(self.loss_mask))


class EpisodeRunner:
    """Runs episodes of ``environment`` with ``generator`` (see the module docstring)."""

    def __init__(self, environment: Environment, generator: Generator, tokenizer: Any):
        if not generator.supports_token_prompts:
            raise ValueError(f"env={type(environment).__name__}: generator {type(generator).__name__} cannot continue "
                             "token-id prompts (Generator.generate_tokens), which multi-turn episodes need; use generator=hf")
        self.environment = environment
        self.generator = generator
        self.tokenizer = tokenizer

    def run(self, samples: Sequence[PromptSample], params: SamplingParams) -> list[Episode]:
        """``params.n`` episodes per sample, ordered sample by sample."""
        env, config = self.environment, self.environment.config
        stops = tuple(dict.fromkeys((*params.stop, *env.stop_strings())))
        budget = config.max_tokens or config.max_turns * params.max_new_tokens
        episodes = []
        states = iter(env.start_all([sample for sample in samples for _ in range(params.n)]))
        for index, sample in enumerate(samples):
            prompt_ids = encode_prompt(self.tokenizer, sample.prompt)
            episodes += [Episode(index, sample, next(states), prompt_ids) for _ in range(params.n)]
        # The first turn samples n continuations of each prompt (one prefill per prompt).
        first = self.generator.generate_tokens([e.prompt_ids for e in episodes[:: params.n]],
                                               replace(params, stop=stops))
        active = self._step(episodes, first, stops, budget)
        while active:
            room = max(budget - len(e.token_ids) for e in active)
            turn_params = replace(params, stop=stops, n=1, max_new_tokens=min(params.max_new_tokens, room))
            completions = self.generator.generate_tokens([e.prompt_ids + e.token_ids for e in active], turn_params)
            active = self._step(active, completions, stops, budget)
        return episodes

    def _step(self, episodes: list[Episode], completions: list[Completion], stops: tuple[str, ...],
              budget: int) -> list[Episode]:
        """Add one assistant turn to each episode and the environment's answer; the episodes that go on."""
        config = self.environment.config
        answered, last_ids = [], []
        for episode, completion in zip(episodes, completions):
            room = budget - len(episode.token_ids)
            ids, logps = completion.token_ids[:room], completion.logprobs[:room]
            episode.token_ids += ids
            episode.logprobs += logps
            episode.loss_mask += [True] * len(ids)
            episode.turns += 1
            said = self.tokenizer.decode(ids, skip_special_tokens=True)
            episode.messages.append(Message("assistant", said))
            if completion.truncated or len(ids) < len(completion.token_ids):
                episode.done = episode.truncated = True  # a turn cut mid-way is not a turn to answer
                continue
            answered.append(episode)
            last_ids.append(ids[-1] if ids else None)
        # The environment answers the round's turns together (concurrently, or in Ray actors).
        turns = self.environment.step_all([e.state for e in answered],
                                          [_through_stop(e.messages[-1].content, stops) for e in answered])
        if len(turns) != len(answered):
            raise ValueError(f"{self.environment.name}.step_all returned {len(turns)} turns for {len(answered)} episodes")
        for episode, turn, last_id in zip(answered, turns, last_ids):
            episode.reward += turn.reward
            episode.tool_calls += turn.tool_calls
            episode.tool_errors += turn.tool_errors
            if turn.error is not None and config.on_error == OnError.zero_reward:
                episode.failed = True
            if turn.done:
                episode.done = True
                continue
            if episode.turns >= config.max_turns:
                episode.done = episode.truncated = True
                continue
            boundary = self._boundary(turn.observation, last_id)
            if len(episode.token_ids) + len(boundary) >= budget:  # no room left for another turn
                episode.done = episode.truncated = True
                continue
            if turn.observation is not None:
                episode.messages.append(Message(config.observation_role, turn.observation))
            episode.token_ids += boundary
            episode.logprobs += [0.0] * len(boundary)
            episode.loss_mask += [False] * len(boundary)
        return [e for e in episodes if not e.done]

    def _boundary(self, observation: str | None, last_token: int | None) -> list[int]:
        """Token ids from the end of an assistant turn's text to the start of the next one's:
        what the chat template writes between them, with the observation as a message."""
        text = self._boundary_text(observation, self.environment.config.observation_role)
        if last_token is not None and last_token in self.tokenizer.all_special_ids:
            # A turn that ended with the model's own end-of-turn token (EOS, <|im_end|>)
            # already holds the template's first boundary token.
            text = text.removeprefix(self.tokenizer.decode([last_token]))
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _boundary_text(self, observation: str | None, role: str) -> str:
        if not has_chat_template(self.tokenizer):
            return f"\n\n{observation}\n\n" if observation is not None else "\n\n"
        before = (Message("user", "?"), Message("assistant", _MARK))
        after = before + ((Message(role, observation),) if observation is not None else ())
        rendered = render_prompt(self.tokenizer, after)
        return rendered[rendered.index(_MARK) + len(_MARK):]


def _through_stop(text: str, stops: tuple[str, ...]) -> str:
    """A turn's text through the stop string that ended it: what the environment reads (the
    generator's own ``text`` leaves the stop string out, and a tool call needs it; the last
    token may run past it)."""
    ends = [text.find(s) + len(s) for s in stops if s in text]
    return text[: min(ends)] if ends else text


def episode_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """Per episode means: ``env/turns``, ``env/tool_calls``, ``env/tool_errors``,
    ``env/episode_reward`` (the environment's rewards), ``env/truncated``; and
    ``env/tool_call_share``, the share of episodes that called a tool at least once."""
    if not episodes:
        return {}
    return {
        "env/turns": fmean(e.turns for e in episodes),
        "env/tool_calls": fmean(e.tool_calls for e in episodes),
        "env/tool_errors": fmean(e.tool_errors for e in episodes),
        "env/episode_reward": fmean(0.0 if e.failed else e.reward for e in episodes),
        "env/truncated": fmean(e.truncated for e in episodes),
        "env/tool_call_share": fmean(e.tool_calls > 0 for e in episodes),
    }


def episode_scores(episodes: Sequence[Episode], reward: Any = None) -> tuple[list[float], Any]:
    """Each episode's score -- the environment's rewards plus, when a reward is configured,
    its score of the final answer; 0 for an episode failed under ``on_error=zero_reward``
    -- and the reward's output (None without a reward)."""
    scored = reward([e.sample for e in episodes], [e.completion() for e in episodes]) if reward is not None else None
    scores = [0.0 if e.failed else e.reward + (scored.scores[i] if scored is not None else 0.0)
              for i, e in enumerate(episodes)]
    return scores, scored

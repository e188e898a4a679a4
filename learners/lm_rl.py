"""RL on the language-model agent (``--learner rl --agent lm``): MaskablePPO whose policy
logits are the LM's own command scores, with a value head on its last hidden state.

:mod:`learners.rl` runs it; this module holds the two pieces that differ from the policy
model's:

1. :class:`LMTokenizedEnv` encodes a state as the agent's prompt and each admissible command
   as the tokens the model writes for it (:meth:`agents.LMAgent.encode_prompt`,
   :meth:`~agents.LMAgent.encode_command`), with their lengths, since a language model's
   tokenizer has no id reserved for padding that a text cannot contain.
2. :class:`LMCandidatePolicy` scores each state's candidates with
   :meth:`agents.LMAgent.command_logprobs` -- the log-likelihood that ranks commands when
   the agent acts -- so a BC or IWM checkpoint's greedy actions are the policy's before any
   update. The policy trains the agent's model in place (the optimizer holds its trainable
   parameters: every weight of a tiny model, the LoRA adapters of a pretrained one) and one
   new linear value head on the hidden state at the prompt's last token; the head is RL's
   own and is not saved in the agent's checkpoint.

A minibatch costs two forward passes: the prompts, left-padded, build a key/value cache
whose rows are repeated for each state's candidates (as one state's are when acting; the
scores match per-state scoring up to float rounding). On CPU it suits the tiny model.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from agents import MASKED_LOGIT, LMAgent, autocast
from learners.rl import CandidateScoringPolicy, TokenizedEnv


class LMTokenizedEnv(TokenizedEnv):
    """:class:`learners.rl.TokenizedEnv` for a language-model agent.

    Observation: ``state_ids`` ``int64[max_prompt_tokens]`` (the prompt of
    :meth:`agents.LMAgent.encode_prompt`, history and admissible commands included, as the
    agent sees it when it acts), ``state_len`` ``int64[1]``, ``action_ids``
    ``int64[max_actions, max_command_tokens]`` (row ``i``: the ``i``-th admissible
    command's tokens, end token included) and ``action_lens`` ``int64[max_actions]`` (0 for
    absent commands). Ids past a length are 0 and never read.
    """

    agent: LMAgent

    def __init__(self, env: gym.Env, agent: LMAgent, max_actions: int = 64) -> None:
        if not isinstance(agent, LMAgent):
            raise TypeError(f"LMTokenizedEnv needs an LMAgent, got {type(agent).__name__}")
        super().__init__(env, agent, max_actions)  # type: ignore[arg-type]

    def _observation_space(self) -> spaces.Dict:
        cfg, top = self.agent.config, self.agent.tokenizer.vocab_size - 1
        prompt, command = cfg.max_prompt_tokens, cfg.max_command_tokens
        return spaces.Dict(
            {
                "state_ids": spaces.Box(0, top, (prompt,), np.int64),
                "state_len": spaces.Box(1, prompt, (1,), np.int64),
                "action_ids": spaces.Box(0, top, (self.max_actions, command), np.int64),
                "action_lens": spaces.Box(0, command, (self.max_actions,), np.int64),
            }
        )

    def _encode(self, goal: str, text: str, commands: list[str]) -> dict[str, np.ndarray]:
        cfg = self.agent.config
        prompt = self.agent.encode_prompt(goal, text, self._history, commands)
        state_ids = np.zeros(cfg.max_prompt_tokens, dtype=np.int64)
        state_ids[: len(prompt)] = prompt
        action_ids = np.zeros((self.max_actions, cfg.max_command_tokens), dtype=np.int64)
        action_lens = np.zeros(self.max_actions, dtype=np.int64)
        for i, command in enumerate(commands):
            ids = self.agent.encode_command(command)
            action_ids[i, : len(ids)], action_lens[i] = ids, len(ids)
        return {
            "state_ids": state_ids,
            "state_len": np.array([len(prompt)], dtype=np.int64),
            "action_ids": action_ids,
            "action_lens": action_lens,
        }


class LMCandidatePolicy(CandidateScoringPolicy):
    """MaskablePPO's actor-critic over a language-model agent's candidate commands.

    A candidate's logit is its log-likelihood given the state's prompt
    (:meth:`agents.LMAgent.command_logprobs`); the value is a linear head on the last layer's
    hidden state at the prompt's last token. Pass ``policy_kwargs={"lm_agent": agent}``.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        lm_agent: LMAgent | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(lm_agent, LMAgent):
            raise TypeError("LMCandidatePolicy needs policy_kwargs={'lm_agent': an LMAgent}")
        self.lm_agent = lm_agent
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        """The agent's model and a value head; the optimizer holds their trainable weights."""
        self.lm = self.lm_agent.model
        self.value_head = nn.Linear(self.lm.config.hidden_size, 1)
        trainable = [p for p in self.parameters() if p.requires_grad]
        self.optimizer = self.optimizer_class(trainable, lr=lr_schedule(1), **self.optimizer_kwargs)

    def export_to(self, agent: LMAgent) -> None:
        """Nothing to copy: the policy trains ``agent``'s own model."""
        if agent.model is not self.lm:
            raise ValueError("this policy trains another agent's model than the one given")

    def _states(
        self, obs: dict[str, torch.Tensor]
    ) -> tuple[list[list[int]], list[list[list[int]]]]:
        """Each observation's prompt ids and its candidates' ids, padding cut off."""
        state_ids, action_ids = obs["state_ids"].long().cpu(), obs["action_ids"].long().cpu()
        state_len = obs["state_len"].long().cpu()[:, 0]
        action_lens = obs["action_lens"].long().cpu()
        prompts, commands = [], []
        for b in range(len(state_ids)):
            lens = action_lens[b][action_lens[b] > 0].tolist()
            commands.append([action_ids[b, i, :n].tolist() for i, n in enumerate(lens)])
            prompts.append(state_ids[b, : int(state_len[b])].tolist())
        return prompts, commands

    def logits_and_values(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, max_actions]`` (absent candidates at ``MASKED_LOGIT``), values ``[B, 1]``."""
        prompts, commands = self._states(obs)
        with autocast(self.device):
            scores, hidden = self.lm_agent.command_logprobs(prompts, commands, last_hidden=True)
            values = self.value_head(hidden.float())
        n = self.action_space.n
        logits = torch.stack(
            [F.pad(s.float(), (0, n - len(s)), value=MASKED_LOGIT) for s in scores]
        )
        return logits, values

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Values ``[B, 1]`` from the prompts alone (bootstrapping)."""
        prompts, _ = self._states(obs)
        with autocast(self.device):
            return self.value_head(self.lm_agent.prompt_states(prompts).float())

"""RL with action-masked PPO (stable-baselines3 + sb3-contrib ``MaskablePPO``), from scratch or
warm-started from a BC / IWM agent checkpoint.

Reads top to bottom:

1. :class:`TokenizedEnv` turns a contract env (text observations, a changing list of
   admissible commands) into what SB3 accepts: a ``Dict`` of fixed-size token-id arrays and a
   ``Discrete(max_actions)`` action space, index ``i`` meaning the ``i``-th admissible command,
   with ``action_masks()`` marking the real ones.
2. :class:`CandidatePolicy` is a ``MaskableActorCriticPolicy`` that holds the project's
   :class:`~agents.model.PolicyModel` -- the same network BC and IWM train -- and scores the
   candidate commands with it; so a BC or IWM checkpoint loads into it with every weight in
   place, and its weights go back into an :class:`~agents.Agent` unchanged.
3. :func:`train_rl` builds the agent (fresh or from ``init_from``), runs ``MaskablePPO`` on
   the train split, evaluates on the test split every ``eval_every`` env steps (and before
   the first update, and at the end), and saves ``agent.pt`` and ``metrics.json``.

SB3 is used only at its public seams: a policy class passed as ``policy=``, a callback, a
logger output format, and ``load_state_dict`` for the warm start.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents import (
    MASKED_LOGIT,
    Agent,
    AgentConfig,
    LMAgent,
    LMConfig,
    ModelConfig,
    PolicyModel,
    autocast,
    load_agent,
)
from agents.tokenizer import PAD
from envs import make
from envs.progress import progress_bar
from learners.config import RunConfig, option
from learners.evaluate import EvalResult, evaluate_agent
from learners.lifecycle import Run, log_evaluation, new_agent
from learners.training import epoch_batches


@dataclass
class RLConfig(RunConfig):
    """Action-masked PPO. Every field is a flag of ``earlyexp train --learner rl``.

    ``model`` is a fresh agent's architecture; with ``init_from`` it must be None (take the
    checkpoint's) or the checkpoint's own.
    """

    learner: str = option("rl", "the registered learner this run trains as")
    out: str = option("runs/rl", "directory for ``agent.pt`` and ``metrics.json``")
    steps: int = option(
        20_000,
        "total env steps of PPO (rounded up to a whole number of rollouts of n_steps)",
        low=1,
    )
    init_from: str | None = option(
        None, "warm start from this agent checkpoint (BC or IWM ``agent.pt``); None = scratch"
    )
    env_kwargs: dict[str, Any] = option(
        None,
        "extra ``envs.make`` arguments of the train and test envs, as JSON",
        default_factory=dict,
    )
    max_actions: int = option(
        64, "action-space size: most admissible commands a state may have (more is an error)", low=1
    )
    n_steps: int = option(
        512, "env steps per rollout (all envs together), between PPO updates", low=1
    )
    n_envs: int = option(
        8, "train envs stepped in lockstep, one batched forward per step; divides n_steps", low=1
    )
    batch_size: int = option(64, "states per PPO minibatch", low=1)
    n_epochs: int = option(4, "passes over each rollout", low=1)
    learning_rate: float = option(
        3e-4, "Adam step size (a warm start often keeps its imitation skill better at 1e-4)", low=0
    )
    gamma: float = option(0.99, "discount factor", low=0)
    gae_lambda: float = option(0.95, "GAE lambda", low=0)
    ent_coef: float = option(0.01, "entropy bonus coefficient", low=0)
    clip_range: float = option(0.2, "PPO ratio clipping", low=0)
    eval_every: int = option(
        2000,
        "env steps between test-split evaluations (also evaluated at step 0 and at the end)",
        low=1,
    )

    def problems(self) -> list[str]:
        """The base checks, and a rollout that the envs cannot share evenly."""
        problems = super().problems()
        numbers = isinstance(self.n_steps, int) and isinstance(self.n_envs, int)
        if numbers and self.n_envs >= 1 and self.n_steps % self.n_envs:
            problems.append(
                f"n_steps ({self.n_steps}) must be a multiple of n_envs ({self.n_envs}): "
                "each env steps n_steps / n_envs times per rollout"
            )
        if isinstance(self.model, LMConfig) and self.model.reflect:
            problems.append(
                "--lm-reflect: PPO scores the admissible commands, not the thought an agent "
                "that reflects writes before them; RL trains a language-model agent without it"
            )
        return problems


# -- 1. the env adapter ----------------------------------------------------------------------
class TokenizedEnv(gym.Env):
    """A contract env seen through an agent's tokenizer, with a discrete, maskable action space.

    Observation: ``{"state_ids": int64[max_state_tokens], "action_ids": int64[max_actions,
    max_action_tokens]}``, PAD (0) padded. ``state_ids`` is ``agent.encode_state(goal, text,
    history)`` with the episode's history kept exactly as :meth:`Agent.act` keeps it
    (``(observation text, command taken)`` pairs, oldest first); row ``i`` of ``action_ids``
    is ``agent.encode_action`` of the ``i``-th admissible command. So the policy sees what the
    agent sees when it acts.

    Action: ``Discrete(max_actions)``; index ``i`` executes ``commands[i]``.
    :meth:`action_masks` is True for the indices of real commands (MaskablePPO reads it). A
    masked index is still accepted, as Gymnasium requires of every action in the space: it
    is passed on as a command the env cannot admit (``""``), which by the env contract is a
    step that changes nothing and sets ``info["invalid_action"]``.

    More admissible commands than ``max_actions``: a ``ValueError`` that names the count and
    says to raise ``max_actions`` (``--max-actions``). The adapter never drops commands: the
    agent scores every admissible command when it is evaluated, so RL must see them all.

    ``info`` is the env's own, plus ``"command"`` (the text executed, after a step) and
    ``"is_success"`` (= ``info["success"]``, which SB3 averages into its success rate).

    Args:
        env: a made contract env (``envs.make(...)``, TimeLimit included).
        agent: supplies the tokenizer and the token limits (its weights are not used).
        max_actions: size of the action space.
    """

    metadata = {"render_modes": []}

    def __init__(self, env: gym.Env, agent: Agent, max_actions: int = 64) -> None:
        if max_actions < 1:
            raise ValueError(f"max_actions must be >= 1, got {max_actions}")
        self.env, self.agent, self.max_actions = env, agent, max_actions
        self.observation_space = self._observation_space()
        self.action_space = spaces.Discrete(max_actions)
        #: The contract observation the current state was encoded from.
        self.last_observation: dict[str, Any] = {}
        #: The commands admissible now; action ``i`` is ``commands[i]``.
        self.commands: list[str] = []
        self._history: list[tuple[str, str]] = []

    @property
    def history(self) -> tuple[tuple[str, str], ...]:
        """This episode's ``(observation text, command taken)`` pairs, oldest first."""
        return tuple(self._history)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the wrapped env and forget the episode's history."""
        super().reset(seed=seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self._history = []
        return self._observe(obs, info), self._info(info)

    def step(
        self, action: int | np.integer
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Execute command ``action`` (an index into :attr:`commands`)."""
        index = int(action)
        if not 0 <= index < self.max_actions:
            raise ValueError(f"action {index} is outside Discrete({self.max_actions})")
        command = self.commands[index] if index < len(self.commands) else ""
        self._history.append((self.last_observation["text"], command))
        obs, reward, terminated, truncated, info = self.env.step(command)
        info = {**self._info(info), "command": command}
        return self._observe(obs, info), float(reward), terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """``bool[max_actions]``: True where an index names an admissible command."""
        return np.arange(self.max_actions) < len(self.commands)

    def close(self) -> None:
        """Close the wrapped env."""
        self.env.close()

    def _observe(self, obs: dict[str, Any], info: dict[str, Any]) -> dict[str, np.ndarray]:
        commands = list(info["admissible_actions"])
        if len(commands) > self.max_actions:
            raise ValueError(
                f"{self.env.spec.id if self.env.spec else 'the env'} offers "
                f"{len(commands)} admissible commands here, more than max_actions="
                f"{self.max_actions}; raise max_actions (--max-actions) to at least "
                f"{len(commands)}: commands are never dropped, since the agent scores them all "
                "when evaluated"
            )
        self.last_observation, self.commands = obs, commands
        return self._encode(obs["goal"], obs["text"], commands)

    def _observation_space(self) -> spaces.Dict:
        cfg = self.agent.config.model
        top = cfg.vocab_size - 1
        return spaces.Dict(
            {
                "state_ids": spaces.Box(0, top, (cfg.max_state_tokens,), np.int64),
                "action_ids": spaces.Box(
                    0, top, (self.max_actions, cfg.max_action_tokens), np.int64
                ),
            }
        )

    def _encode(self, goal: str, text: str, commands: list[str]) -> dict[str, np.ndarray]:
        cfg = self.agent.config.model
        state = self.agent.encode_state(goal, text, self._history)
        state_ids = np.full(cfg.max_state_tokens, PAD, dtype=np.int64)
        state_ids[: len(state)] = state
        action_ids = np.full((self.max_actions, cfg.max_action_tokens), PAD, dtype=np.int64)
        for row, command in zip(action_ids, commands, strict=False):
            ids = self.agent.encode_action(command)
            row[: len(ids)] = ids
        return {"state_ids": state_ids, "action_ids": action_ids}

    @staticmethod
    def _info(info: dict[str, Any]) -> dict[str, Any]:
        return {**info, "is_success": bool(info.get("success", False))}


# -- 2. the policy ---------------------------------------------------------------------------
class CandidateScoringPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's actor-critic over candidate commands: a subclass computes, for a batch of
    observations, the logits of the admissible commands (``[B, max_actions]``, absent ones at
    ``MASKED_LOGIT``) and the state values (``[B, 1]``); MaskablePPO's masks go on top, so a
    masked action has probability zero. :class:`CandidatePolicy` scores with the policy model,
    :class:`learners.lm_rl.LMCandidatePolicy` with a language model."""

    def logits_and_values(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, max_actions]`` (absent candidates at ``MASKED_LOGIT``), values ``[B, 1]``."""
        raise NotImplementedError

    def export_to(self, agent: Any) -> None:
        """Put the policy's current weights into ``agent`` (evaluations, the end of RL)."""
        raise NotImplementedError

    def _distribution(
        self, logits: torch.Tensor, action_masks: np.ndarray | torch.Tensor | None
    ) -> MaskableDistribution:
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        return distribution

    def forward(
        self,
        obs: dict[str, torch.Tensor],
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, values ``[B, 1]`` and log-probabilities of the actions (rollouts)."""
        logits, values = self.logits_and_values(obs)
        distribution = self._distribution(logits, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, values, distribution.log_prob(actions)

    def evaluate_actions(
        self,
        obs: dict[str, torch.Tensor],
        actions: torch.Tensor,
        action_masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities of ``actions`` and entropies (PPO's loss)."""
        logits, values = self.logits_and_values(obs)
        distribution = self._distribution(logits, action_masks)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(
        self, obs: dict[str, torch.Tensor], action_masks: np.ndarray | None = None
    ) -> MaskableDistribution:
        """The masked action distribution (``predict`` samples or takes its mode)."""
        return self._distribution(self.logits_and_values(obs)[0], action_masks)


class CandidatePolicy(CandidateScoringPolicy):
    """The actor-critic computed by a :class:`PolicyModel` over candidate commands.

    Logits are ``model.policy_logits(enc.z, action_mask)`` and values ``model.value(enc.state)``
    with ``enc = model.encode(batch)``: the network BC and IWM train, nothing added, so
    ``policy.model.load_state_dict(agent.model.state_dict())`` is a complete warm start. The
    optimizer covers exactly the model's parameters (SB3's own MLP extractor, action and value
    nets are never built). Padded candidates get ``MASKED_LOGIT`` from the model.

    Pass ``policy_kwargs={"model_config": ModelConfig(...)}`` to MaskablePPO.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        model_config: ModelConfig | None = None,
        **kwargs: Any,
    ) -> None:
        self.model_config = model_config if model_config is not None else ModelConfig()
        # SB3 hands observations over as float32; ids round-trip exactly below 2**24.
        if self.model_config.vocab_size > 2**24:
            raise ValueError("vocab_size above 2**24 does not survive SB3's float32 buffers")
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        """Replace SB3's networks with the policy model; its parameters are the optimizer's."""
        self.model = PolicyModel(self.model_config)
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "model_config": self.model_config}

    def export_to(self, agent: Agent) -> None:
        """Copy the policy model's weights into ``agent``'s model (the same architecture)."""
        agent.model.load_state_dict(self.model.state_dict())

    def model_inputs(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's batch (as :func:`agents.collate` builds it) from a batch of observations.

        Ids come back to long; padding that every row shares is cut off, so a single state
        gives exactly the tensors :meth:`Agent.act` builds (and runs as fast).
        """
        state_ids, action_ids = obs["state_ids"].long(), obs["action_ids"].long()
        state_mask = state_ids != PAD
        state_mask[:, 0] = True  # [CLS]
        action_real = action_ids != PAD
        action_mask = action_real.any(-1)
        length = _extent(state_mask.any(0))
        n_cands = _extent(action_mask.any(0))
        n_tokens = _extent(action_real.flatten(0, 1).any(0))
        return {
            "state_ids": state_ids[:, :length],
            "state_mask": state_mask[:, :length],
            "action_ids": action_ids[:, :n_cands, :n_tokens],
            "action_mask": action_mask[:, :n_cands],
        }

    def logits_and_values(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, max_actions]`` (absent candidates at ``MASKED_LOGIT``), values ``[B, 1]``."""
        batch = self.model_inputs(obs)
        with autocast(self.device):
            enc = self.model.encode(batch)
            logits = self.model.policy_logits(enc.z, batch["action_mask"]).float()
            values = self.model.value(enc.state).float().unsqueeze(-1)
        logits = F.pad(logits, (0, self.action_space.n - logits.shape[1]), value=MASKED_LOGIT)
        return logits, values

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Values ``[B, 1]`` from the state encoder alone (bootstrapping)."""
        batch = self.model_inputs(obs)
        with autocast(self.device):
            state = self.model.encode_state(batch["state_ids"], batch["state_mask"])
            return self.model.value(state).float().unsqueeze(-1)


def _extent(used: torch.Tensor) -> int:
    """One past the last True of a 1-D bool tensor (at least 1)."""
    index = used.nonzero()
    return int(index.max()) + 1 if len(index) else 1


class BucketedRolloutBuffer(MaskableDictRolloutBuffer):
    """MaskablePPO's rollout buffer with length-bucketed minibatches (as BC's,
    :func:`learners.training.epoch_batches`): each PPO minibatch holds states of similar
    length, so :meth:`CandidatePolicy.model_inputs` cuts almost all padding. Same states,
    same number of minibatches per epoch; only which states share a minibatch changes."""

    def get(self, batch_size: int | None = None) -> Any:
        """Minibatches of the rollout, every state once (SB3's seeded global RNG picks them)."""
        if batch_size is None:
            yield from super().get(None)
            return
        if not self.generator_ready:
            # SB3's own preparation: [steps, envs, ...] -> [steps * envs, ...].
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
            for name in ("actions", "values", "log_probs", "advantages", "returns"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.action_masks = self.swap_and_flatten(self.action_masks)
            self.generator_ready = True
        observations = self.observations
        if "state_len" in observations:  # a language model's prompts (learners.lm_rl)
            lengths = observations["state_len"][:, 0]
        else:
            lengths = (observations["state_ids"] != PAD).sum(1)
        rng = np.random.default_rng(np.random.randint(2**31))
        for batch in epoch_batches(len(lengths), batch_size, rng, lengths):
            yield self._get_samples(batch)


# -- 3. training -----------------------------------------------------------------------------
def initial_agent(config: RLConfig) -> Agent | LMAgent:
    """The agent RL starts from: ``init_from`` when given (either agent type), else a fresh
    one of ``config.model``.

    Raises:
        ValueError: the checkpoint was trained on another env than ``config.env_id``; its
            model differs from an explicitly given ``config.model``; or it is a language-model
            agent that reflects (self-reflection's), whose thoughts PPO cannot train. The
            message says which.
    """
    if config.init_from is None:
        agent = new_agent(config, language_model=True, env_kwargs=config.env_kwargs)
    else:
        agent = load_agent(config.init_from)
        _check_warm_start(agent, config)
    if isinstance(agent, LMAgent) and agent.config.reflect:
        raise ValueError(
            "RL does not train a language-model agent that reflects (--lm-reflect; an sr "
            "checkpoint): PPO scores the admissible commands, not the thought written before "
            "them. Warm-start from a bc or iwm checkpoint, or drop --lm-reflect."
        )
    return agent


def _check_warm_start(agent: Agent | LMAgent, config: RLConfig) -> None:
    """A warm start's checkpoint must fit the flags given and the env."""
    if config.model is not None:
        mine = agent.config.model if isinstance(agent, Agent) else agent.config
        if type(mine) is not type(config.model):
            kinds = {ModelConfig: "the policy model (--agent model)", LMConfig: "--agent lm"}
            raise ValueError(
                f"cannot warm-start RL from {config.init_from}: it is an agent of "
                f"{kinds[type(mine)]}, the flags given describe {kinds[type(config.model)]}. "
                "Give no model flags to take the checkpoint's own."
            )
        if isinstance(agent, Agent):  # diff whole agent configs: "model.d_model: ..."
            mine, given = agent.config, AgentConfig(model=config.model)
        else:
            given = config.model
        if mine != given:
            raise ValueError(
                f"cannot warm-start RL from {config.init_from}: its model config differs from "
                f"the one given (checkpoint != given: {'; '.join(mine.diff(given))}). "
                "Give no model flags to take the checkpoint's own, or give the checkpoint's."
            )
    trained_on = agent.meta.get("env_id")
    if trained_on is None:
        warnings.warn(
            f"{config.init_from} does not record the env it was trained on (meta['env_id']); "
            f"cannot check that it fits {config.env_id}",
            stacklevel=3,
        )
    elif _bare_id(trained_on) != _bare_id(config.env_id):
        raise ValueError(
            f"cannot warm-start RL on {config.env_id} from {config.init_from}: that agent was "
            f"trained on {trained_on}. Use a checkpoint trained on {config.env_id}, or run RL "
            f"on {trained_on} (--env-id {trained_on})."
        )


def _bare_id(env_id: str) -> str:
    """``module:earlyexp/X-v0`` and ``earlyexp/X-v0`` name the same env."""
    return env_id.split(":", 1)[-1]


def train_envs(config: RLConfig, agent: Agent | LMAgent) -> VecEnv:
    """``config.n_envs`` train-split envs, each a monitored :class:`TokenizedEnv` (for a
    language-model agent :class:`learners.lm_rl.LMTokenizedEnv`), stepped in lockstep (SB3
    seeds env ``i`` with ``seed + i``)."""
    adapter: type[TokenizedEnv] = TokenizedEnv
    if isinstance(agent, LMAgent):
        from learners.lm_rl import LMTokenizedEnv  # it imports this module

        adapter = LMTokenizedEnv

    def make_one() -> gym.Env:
        env = make(config.env_id, split="train", **config.env_kwargs)
        return Monitor(adapter(env, agent, config.max_actions))

    return DummyVecEnv([make_one] * config.n_envs)


def build_ppo(agent: Agent | LMAgent, env: gym.Env | VecEnv, config: RLConfig) -> MaskablePPO:
    """MaskablePPO with a :class:`CandidatePolicy` that starts from ``agent``'s weights (for a
    language-model agent a :class:`learners.lm_rl.LMCandidatePolicy` that trains the agent's
    own model, with a fresh value head).

    ``env`` is one :class:`TokenizedEnv` or a vector of them (:func:`train_envs`); a
    rollout is ``config.n_steps`` env steps in all, shared evenly by the envs. PPO runs on
    the agent's device.
    """
    n_envs = env.num_envs if isinstance(env, VecEnv) else 1
    policy: type[CandidateScoringPolicy] = CandidatePolicy
    # SB3's own Adam settings for PPO (eps 1e-5), with the fused kernel that the supervised
    # stages use too (learners.training.adam).
    policy_kwargs: dict[str, Any] = {"optimizer_kwargs": {"eps": 1e-5, "fused": True}}
    if isinstance(agent, LMAgent):
        from learners.lm_rl import LMCandidatePolicy  # it imports this module

        policy, policy_kwargs["lm_agent"] = LMCandidatePolicy, agent
    else:
        policy_kwargs["model_config"] = agent.config.model
    ppo = MaskablePPO(
        policy,
        env,
        learning_rate=config.learning_rate,
        n_steps=config.n_steps // n_envs,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        ent_coef=config.ent_coef,
        clip_range=config.clip_range,
        policy_kwargs=policy_kwargs,
        rollout_buffer_class=BucketedRolloutBuffer,
        seed=config.seed,
        device=agent.device,
        verbose=0,
    )
    if isinstance(agent, Agent):
        ppo.policy.model.load_state_dict(agent.model.state_dict())  # strict: every weight
    return ppo


class CleanRLOutput(KVWriter):
    """An SB3 logger output that writes PPO's statistics to our TensorBoard writer under
    CleanRL's names: ``train/<x>`` becomes ``losses/<x>`` (the learning rate becomes
    ``charts/learning_rate``) and ``rollout/success_rate`` (the last 100 train episodes)
    ``charts/train_success_rate``; episodes, SPS and evaluations are :class:`RLCallback`'s."""

    def __init__(self, writer: SummaryWriter) -> None:
        self.writer = writer

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        """Log one dump of SB3's logger at env step ``step``."""
        for key, value in key_values.items():
            if "tensorboard" in (key_excluded.get(key) or ()):
                continue
            if key == "train/learning_rate":
                self.writer.add_scalar("charts/learning_rate", value, step)
            elif key.startswith("train/"):
                self.writer.add_scalar("losses/" + key.removeprefix("train/"), value, step)
            elif key == "rollout/success_rate":
                self.writer.add_scalar("charts/train_success_rate", value, step)

    def close(self) -> None:
        """The writer belongs to the run; :func:`train_rl` closes it."""


class RLCallback(BaseCallback):
    """Logs episodes and throughput, and evaluates + checkpoints the agent on the test split
    before the first update, every ``eval_every`` env steps, and at the end."""

    def __init__(
        self, agent: Agent, config: RLConfig, writer: SummaryWriter, meta: dict[str, Any]
    ) -> None:
        super().__init__()
        self.agent, self.config, self.writer, self.meta = agent, config, writer, meta
        #: One point per evaluation: ``{"steps", "success_rate", "success_rate_sampled"}``.
        self.curve: list[dict[str, float]] = []
        #: The latest evaluation's results (greedy, sampled, random).
        self.results: dict[str, EvalResult] | None = None
        self.episodes = 0
        self.eval_seconds = 0.0
        self._next_eval = 0
        #: Env steps at the end: ``steps`` rounded up to whole rollouts.
        self._final_steps = math.ceil(config.steps / config.n_steps) * config.n_steps
        self._last_eval: int | None = None
        self._start = time.perf_counter()
        self._bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._bar = progress_bar(
            total=self._final_steps,
            desc="rl",
            unit="step",
            disable=not self.config.progress,
        )
        self.evaluate()

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:  # added by SB3's Monitor when an episode ends
                self.episodes += 1
                self.writer.add_scalar(
                    "charts/episodic_return", info["episode"]["r"], self.num_timesteps
                )
                self.writer.add_scalar(
                    "charts/episodic_length", info["episode"]["l"], self.num_timesteps
                )
        if self._bar is not None:
            self._bar.update(self.training_env.num_envs)
        # The last rollout's final step comes before its PPO update: the evaluation of the
        # final weights is _on_training_end's.
        if self._next_eval <= self.num_timesteps < self._final_steps:
            self.evaluate()
        return True

    def _on_rollout_end(self) -> None:
        self.writer.add_scalar(
            "charts/env_steps_per_s", self.steps_per_second(), self.num_timesteps
        )

    def _on_training_end(self) -> None:
        if self._last_eval != self.num_timesteps:
            self.evaluate()
        if self._bar is not None:
            self._bar.close()

    def steps_per_second(self) -> float:
        """Training throughput: env steps per second, evaluation time left out."""
        seconds = time.perf_counter() - self._start - self.eval_seconds
        return self.num_timesteps / max(seconds, 1e-9)

    def evaluate(self) -> None:
        """Copy the policy's weights into the agent, evaluate it, log, and checkpoint it."""
        steps = self.num_timesteps
        self._last_eval = steps
        self._next_eval = (steps // self.config.eval_every + 1) * self.config.eval_every
        self.model.policy.export_to(self.agent)
        if self.config.eval_episodes < 1:
            return
        began = time.perf_counter()
        self.results = results = evaluate_agent(
            self.agent,
            self.config.env_id,
            split=self.config.eval_split,
            seed=self.config.eval_seed,
            episodes=self.config.eval_episodes,
            env_kwargs=self.config.env_kwargs,
            progress=False,
        )
        greedy, sampled = results["greedy"], results["sampled"]
        self.curve.append(
            {
                "steps": steps,
                "success_rate": greedy.success_rate,
                "success_rate_sampled": sampled.success_rate,
            }
        )
        log_evaluation(self.writer, results, steps)
        if self._bar is not None:
            self._bar.set_postfix(success=f"{greedy.success_rate:.2f}")
        self.agent.save(
            Path(self.config.out) / "agent.pt",
            meta={**self.meta, "env_steps": steps, "curve": self.curve},
        )
        self.eval_seconds += time.perf_counter() - began


def train_rl(config: RLConfig) -> dict[str, Any]:
    """Run MaskablePPO end to end; write ``agent.pt`` and ``metrics.json`` to ``config.out``.

    Returns:
        The metrics written to ``metrics.json``: env_id, learner, seed, init_from,
        init_learner, steps (asked), env_steps (done), train_episodes, curve, eval (final
        greedy / sampled / random results), wall_seconds, eval_seconds and
        env_steps_per_second (training only, evaluation left out).
    """
    with Run(config) as run:
        agent = initial_agent(config).to(run.device)
        env = train_envs(config, agent)
        ppo = build_ppo(agent, env, config)
        ppo.set_logger(Logger(folder=None, output_formats=[CleanRLOutput(run.writer)]))
        meta = {
            "env_id": config.env_id,
            "learner": config.learner,
            "seed": config.seed,
            "init_from": config.init_from,
            "init_learner": agent.meta.get("learner") if config.init_from else None,
        }
        callback = RLCallback(agent, config, run.writer, meta)
        try:
            ppo.learn(total_timesteps=config.steps, callback=callback)
            ppo.logger.dump(ppo.num_timesteps)  # the last update's losses
        finally:
            env.close()
        ppo.policy.export_to(agent)
        metrics = {
            "init_from": config.init_from,
            "init_learner": meta["init_learner"],
            "steps": config.steps,
            "env_steps": ppo.num_timesteps,
            "train_episodes": callback.episodes,
            "curve": callback.curve,
            "eval_seconds": callback.eval_seconds,
            "env_steps_per_second": callback.steps_per_second(),
        }
        return run.finish(
            agent,
            metrics,
            step=ppo.num_timesteps,
            env_kwargs=config.env_kwargs,
            evaluation=callback.results,
        )

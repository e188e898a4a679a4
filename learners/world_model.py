"""Implicit world modeling (IWM): learn what actions do, then imitate, in the same network.

Early experience's first recipe (Zhang et al., 2025). Stage 1 trains the world-model head
of the policy model to predict the next observation from the consequence representation
``z = f(state, action)`` on the rollouts (the K alternatives branched at every expert state,
plus the expert's own transition); no reward is used. Stage 2 is behaviour cloning on the
expert demos, starting from the stage-1 weights, with the same early stopping as BC.

Reads top to bottom: load the demo budget -> rollouts (read, or collect them from the demos)
-> stream them, tokenized with their next-observation targets, into on-disk stores -> stage 1 (world modeling) ->
stage 2 (BC) -> save the agent -> evaluate on the test split beside a random policy.

Targets (``--target``). The next observation is a bag of hashed tokens, predicted per token
of the vocabulary by the head's two channels:

* ``delta`` (default): what changed. Channel 0: tokens of the next observation that are not
  in the current one (appear); channel 1, over the current observation's tokens only: tokens
  that are gone from the next one (disappear). The prediction is ``(current - disappear) |
  appear``. An action's effect is a few tokens; the head does not spend itself re-predicting
  the room description the state encoder already holds.
* ``next``: the whole next observation. Channel 0: every token of the next observation.
  A probe on BabyAI with a bag-of-words policy found this target gave no gain over BC.

Both are scored the same way, as token-set F1 of the predicted next observation against the
real one, beside the baseline of copying the current observation (``wm_val_f1`` vs
``wm_copy_f1``): a world model that does not beat copying has not learned what actions do.

Look-ahead (``--scorer lookahead``, registered as ``iwm-lookahead``; it is the model's
``--lookahead``, and either flag turns the other on). The policy scores a command from ``z``
*and* from its outcome, the tokens that appear in the next observation (the world-model
head's channel 0: what changes under ``delta``, the whole next observation under ``next``),
so that what the world model knows can change a choice. At test time (acting, evaluation,
RL) the outcome is always the world model's prediction. In stage 2 every demo decision is
joined with the rollouts by (episode, step): a candidate the rollouts tried there is scored
with its *observed* outcome with probability ``--lookahead-observed`` (seeded), else with the
prediction, as is every candidate they did not try. Observed outcomes teach the look-ahead
what outcomes mean; predicted ones teach it how far to trust the prediction it gets at test
time (validation and early stopping use the prediction only). The prediction is detached,
so the imitation loss never turns the world-model head into a second policy head; with the
``sequential`` mode nothing trains the head in stage 2, and ``wm_final_val_f1`` shows what is
left of it (``--mode sequential-joint`` keeps the world-model loss, at its cost per update).
The run also reports ``val_accuracy_observed``: the policy's validation accuracy when fed
the observed outcomes of every candidate the rollouts tried, the ceiling a perfect world
model would give beside ``val_accuracy`` with the prediction.

Budgets (``--budget``), with BC's ``--max-updates`` as the unit:

* ``matched``: stage 1 takes ``--wm-updates``, stage 2 at most ``max_updates - wm_updates``,
  so total updates equal BC's (the paper's protocol). The matching BC control is
  ``earlyexp train --learner bc --max-updates {max_updates - wm_updates}``.
* ``extra``: stage 1 takes ``--wm-updates``, then the full BC budget.

Both stages stop early on validation, so the BC stage's cap rarely binds: whenever the
``matched`` run's BC stage stopped before ``max_updates - wm_updates``, the ``extra`` run
with the same seed is the very same run (on Household every run of the 25-200 demo grid
stopped by 1,500 BC updates, under the 2,000 cap). Giving world modeling itself more updates
is ``--wm-updates``.

A language-model agent (``--agent lm``) trains through learners/lm_world_model.py: the
next observation's text after (prompt, command), by the LM's own next-token loss, in the
modes ``sequential`` and ``mixed`` (its own: world-model and imitation examples shuffled
together in the same minibatches); the budgets are the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from torch.utils.tensorboard import SummaryWriter

from agents import Agent, LMConfig, ModelConfig, collate
from agents.model import Outcome
from agents.tokenizer import PAD
from learners.config import option
from learners.data import Dataset, Decision, Episode, encode_decisions
from learners.imitation import (
    BCConfig,
    PolicyLoss,
    demo_metrics,
    fit_policy,
    load_demos,
    policy_nll,
    state_length,
)
from learners.lifecycle import Run
from learners.rollouts import PROPOSERS, BranchedState, collect_rollouts, load_rollouts
from learners.store import TokenStore
from learners.training import adam, fit_early_stopped

TARGETS = ("delta", "next")
BUDGETS = ("matched", "extra")
MODES = ("sequential", "joint", "sequential-joint", "mixed")
#: The modes of the language-model agent (``--agent lm``; see learners/lm_world_model.py).
LM_MODES = ("sequential", "mixed")
#: Modes without a world-modeling stage: the whole budget is the imitation stage's.
ONE_STAGE = ("joint", "mixed")
OUTCOMES = ("observed", "shuffled")
BRANCHES = ("all", "expert")
SCORERS = ("consequence", "lookahead")


@dataclass
class IWMConfig(BCConfig):
    """Implicit world modeling; BC's flags apply to stage 2."""

    learner: str = option("iwm", "the registered learner this run trains as")
    out: str = option("runs/iwm", "directory for ``agent.pt`` and ``metrics.json``")
    rollout_file: str | None = option(
        None,
        "rollout file from `earlyexp rollouts`; None = collect into OUT/rollouts.jsonl",
    )
    k: str = option("8", "alternatives per state when collecting (an integer, or 'all')")
    proposer: str = option("uniform", "how alternatives are chosen", choices=PROPOSERS)
    proposer_agent: str | None = option(None, "agent checkpoint the policy proposer samples from")
    temperature: float = option(1.0, "the policy proposer's sampling temperature", low=0)
    budget: str = option("matched", "see learners/world_model.py", choices=BUDGETS)
    target: str = option("delta", "next-observation target", choices=TARGETS)
    wm_updates: int = option(1000, "world-model updates at most (stage 1)", low=1)
    wm_batch_size: int = option(
        16, "states per world-model minibatch (with all their branches)", low=1
    )
    wm_learning_rate: float = option(1e-3, "world-model Adam step size (stage 1)", low=0)
    mode: str = option(
        "sequential",
        "sequential: world modeling, then BC; joint: BC + wm_weight x world-model loss on "
        "every update, no stage 1; sequential-joint: stage 1, then joint updates; mixed "
        "(--agent lm only, which takes sequential or mixed): one stage whose minibatches mix "
        "world-model and imitation examples (see learners/lm_world_model.py)",
        choices=MODES,
    )
    wm_weight: float = option(
        1.0,
        "weight of the world-model loss: in iwm's joint updates; in sr's stage 1 beside the "
        "teacher's cross-entropy (and its stage 2 with --mode sequential-joint)",
        low=0,
    )
    keep_optimizer: bool = option(
        False, "stage 2 continues stage 1's Adam state (at learning_rate); default: a fresh Adam"
    )
    outcomes: str = option(
        "observed",
        "control: 'shuffled' pairs every move with the next observation of a random move of "
        "another state (same data, no action-to-outcome information)",
        choices=OUTCOMES,
    )
    branches: str = option(
        "all", "control: 'expert' keeps only the expert's own transitions", choices=BRANCHES
    )
    scorer: str = option(
        "consequence",
        "how the policy scores a command: from z alone (consequence), or also from the "
        "command's outcome, observed or predicted (lookahead: the model's --lookahead, which "
        "it turns on; see learners/world_model.py); sr needs lookahead",
        choices=SCORERS,
    )
    lookahead_observed: float = option(
        0.5,
        "scorer lookahead: the chance that a stage-2 candidate the rollouts tried is scored "
        "with its observed outcome rather than the world model's prediction (in [0, 1])",
        low=0,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.model, LMConfig):
            return  # no look-ahead flag to keep in step (problems() refuses that scorer)
        # The learner's scorer and the model's flag are one choice: either turns the other on.
        model = self.model if self.model is not None else ModelConfig()
        if self.scorer == "lookahead" and not model.lookahead:
            self.model = replace(model, lookahead=True)
        elif model.lookahead:
            self.scorer = "lookahead"

    def problems(self) -> list[str]:
        """BC's problems, a bad ``k``, a ``matched`` budget that leaves BC no updates, a
        look-ahead share outside [0, 1], and a mode or option of the other agent type's."""
        problems = super().problems()
        if isinstance(self.model, LMConfig):
            from learners.lm_world_model import lm_problems  # it imports this module

            problems.extend(lm_problems(self))
        elif self.mode == "mixed":
            problems.append(
                "mode 'mixed' is the language-model agent's (--agent lm); the policy model "
                "mixes the losses with --mode joint"
            )
        if isinstance(self.lookahead_observed, int | float) and self.lookahead_observed > 1:
            problems.append(f"lookahead_observed must be <= 1, got {self.lookahead_observed}")
        try:
            parse_k(self.k)
        except ValueError as exc:
            problems.append(str(exc))
        if (
            self.budget == "matched"
            and self.two_stages
            and isinstance(self.wm_updates, int)
            and isinstance(self.max_updates, int)
            and self.wm_updates >= self.max_updates
        ):
            problems.append(
                f"budget 'matched' splits max_updates ({self.max_updates}) between the stages, "
                f"so wm_updates ({self.wm_updates}) must be smaller; or use --budget extra"
            )
        return problems

    @property
    def two_stages(self) -> bool:
        """A world-model stage comes before the policy's (joint and mixed have one stage)."""
        return self.mode not in ONE_STAGE

    @property
    def bc_updates(self) -> int:
        """Stage 2's update cap under the budget mode (one-stage runs: ``max_updates``)."""
        if self.budget == "matched" and self.two_stages:
            return self.max_updates - self.wm_updates
        return self.max_updates


def parse_k(text: str | int | None) -> int | None:
    """``"all"`` (or None) -> None (every admissible command); else a positive integer."""
    if text is None or text == "all":
        return None
    try:
        k = int(text)
    except (TypeError, ValueError):
        k = 0
    if k < 1 or isinstance(text, bool):
        raise ValueError(f"k must be a positive integer or 'all', got {text!r}")
    return k


@dataclass
class Transitions:
    """Every transition branched from one state, tokenized, with next-observation targets."""

    state: list[int]
    candidates: list[list[int]]  # the expert's command first, then the alternatives
    current: list[int]  # distinct token ids of the current observation
    nexts: list[list[int]]  # distinct token ids of each candidate's next observation


def encode_transition(agent: Agent, episode: Episode, state: BranchedState) -> Transitions:
    """Tokenize a state branched from ``episode`` the way ``agent`` sees states (goal,
    observation, history), with the next-observation token sets of every move from it."""
    step = episode.steps[state.step]
    history = [(s.text, s.executed) for s in episode.steps[: state.step]]
    moves = [state.expert, *state.branches]
    return Transitions(
        agent.encode_state(episode.goal, step.text, history),
        [agent.encode_action(m.action) for m in moves],
        _token_set(agent, step.text),
        [_token_set(agent, m.next_text) for m in moves],
    )


def _token_set(agent: Agent, text: str) -> list[int]:
    return sorted(set(agent.tokenizer.token_ids(text)))


def appearing(transitions: Transitions, target: str) -> list[list[int]]:
    """Each move's observed outcome as the look-ahead reads it, the target of the world-model
    head's channel 0: the next observation's tokens that are not in the current one
    (``delta``), or all of them (``next``)."""
    if target == "next":
        return transitions.nexts
    current = set(transitions.current)
    return [[i for i in ids if i not in current] for ids in transitions.nexts]


@dataclass
class OutcomeDecision:
    """A demo decision with the observed outcome of each candidate the rollouts tried there."""

    state: list[int]
    candidates: list[list[int]]
    target: int
    outcomes: list[list[int]]  # per candidate: its observed outcome tokens (empty if untried)
    observed: list[int]  # per candidate: 1 if the rollouts tried it from this state, else 0


def outcome_decisions(
    agent: Agent,
    episodes: Sequence[tuple[int, Episode]],
    transitions: Sequence[Transitions],
    positions: dict[tuple[int, int], int],
    target: str,
) -> Iterator[OutcomeDecision]:
    """The decisions of ``episodes`` (``(index in the dataset, episode)``), each joined with the
    branched state of the same (episode, step): ``transitions[positions[episode, step]]``.
    A candidate is matched to a move by its tokens (what the model tells apart)."""
    for index, episode in episodes:
        for step, decision in enumerate(encode_decisions(agent, [episode])):
            n = len(decision.candidates)
            outcomes: list[list[int]] = [[] for _ in range(n)]
            observed = [0] * n
            where = positions.get((index, step))
            if where is not None:
                moves = transitions[where]
                tried = dict(
                    zip(map(tuple, moves.candidates), appearing(moves, target), strict=True)
                )
                for j, command in enumerate(decision.candidates):
                    outcome = tried.get(tuple(command))
                    if outcome is not None:
                        outcomes[j], observed[j] = outcome, 1
            yield OutcomeDecision(
                decision.state, decision.candidates, decision.target, outcomes, observed
            )


def observed_outcome(
    outcomes: Sequence[Sequence[Sequence[int]]], candidates: int, device: torch.device
) -> Outcome:
    """Observed outcomes (per state, per candidate: token ids) as an :class:`Outcome` of
    ``candidates`` columns, every token with weight 1 (PAD where absent)."""
    width = max((len(o) for per_state in outcomes for o in per_state), default=0) or 1
    ids = np.full((len(outcomes), candidates, width), PAD, dtype=np.int64)
    for b, per_state in enumerate(outcomes):
        for a, tokens in enumerate(per_state):
            ids[b, a, : len(tokens)] = tokens
    ids_t = torch.from_numpy(ids).to(device)
    return Outcome(ids_t, (ids_t != PAD).float())


def mixed_outcome(
    agent: Agent,
    z: torch.Tensor,
    action_mask: torch.Tensor,
    chunk: Sequence[OutcomeDecision],
    share: float,
    rng: np.random.Generator,
) -> Outcome:
    """Each candidate's observed outcome where it has one and a draw of ``rng`` falls under
    ``share``, the world model's prediction elsewhere (predicted only where needed)."""
    batch, candidates = action_mask.shape
    use = np.zeros((batch, candidates), dtype=bool)
    for b, decision in enumerate(chunk):
        use[b, : len(decision.observed)] = np.asarray(decision.observed, dtype=bool)
    use &= rng.random((batch, candidates)) < share
    pick = torch.from_numpy(use).to(z.device)
    predicted = agent.model.predicted_outcome(z, action_mask & ~pick)
    if not use.any():
        return predicted
    observed = observed_outcome([d.outcomes for d in chunk], candidates, z.device)
    width = max(predicted.ids.shape[-1], observed.ids.shape[-1])

    def padded(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, width - t.shape[-1]))

    pick = pick.unsqueeze(-1)
    ids = torch.where(pick, padded(observed.ids), padded(predicted.ids))
    weights = torch.where(pick, padded(observed.weights), padded(predicted.weights))
    return Outcome(ids, weights)


def outcome_nll(
    agent: Agent,
    chunk: Sequence[OutcomeDecision],
    share: float,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Mean negative log-likelihood of the expert's commands under the look-ahead policy,
    candidates scored with observed or predicted outcomes (:func:`mixed_outcome`)."""
    device = agent.device
    batch = collate([d.state for d in chunk], [d.candidates for d in chunk], device)
    z = agent.model.encode(batch).z
    outcome = mixed_outcome(agent, z, batch["action_mask"], chunk, share, rng)
    logits = agent.model.policy_logits(z, batch["action_mask"], outcome)
    targets = torch.tensor([d.target for d in chunk], device=device)
    return F.cross_entropy(logits.float(), targets)


@torch.no_grad()
def validate_observed(agent: Agent, decisions: Sequence[OutcomeDecision]) -> float:
    """The policy's accuracy when every candidate the rollouts tried is scored with its
    observed outcome (the others with the prediction): what a perfect world model would give."""
    agent.model.eval()
    correct, rng = 0, np.random.default_rng(0)  # share 1: the draws decide nothing
    for i in range(0, len(decisions), 64):
        chunk = decisions[i : i + 64]
        batch = collate([d.state for d in chunk], [d.candidates for d in chunk], agent.device)
        z = agent.model.encode(batch).z
        outcome = mixed_outcome(agent, z, batch["action_mask"], chunk, 1.0, rng)
        logits = agent.model.policy_logits(z, batch["action_mask"], outcome)
        targets = torch.tensor([d.target for d in chunk], device=logits.device)
        correct += (logits.argmax(-1) == targets).sum().item()
    return correct / max(len(decisions), 1)


def world_model_loss(
    agent: Agent,
    chunk: list[Transitions],
    target: str,
    batch: dict[str, torch.Tensor] | None = None,
    z: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean over the moves tried of the per-token binary cross-entropy (summed over tokens),
    and each move's predicted next-observation token set's F1 beside copying the current
    observation's.

    The loss of :meth:`~agents.model.EarlyExpModel.world_model_logits` over every token,
    computed where it counts: only on the moves tried (not the batch's padding), and the
    "disappear" channel of target ``delta`` only at the current observation's tokens, the
    only ones its loss reads (scoring the whole vocabulary there was half the cost).

    ``batch`` (the chunk collated) and ``z`` (its consequence representation) are computed
    here unless a caller that already has them for another loss passes them in.
    """
    device = agent.device
    if batch is None:
        batch = collate([t.state for t in chunk], [t.candidates for t in chunk], device)
    if z is None:
        z = agent.model.encode(batch).z
    model = agent.model
    moves = batch["action_mask"]  # [B, A]: the moves tried, in each state's order
    state_of = moves.nonzero()[:, 0]  # [N]
    queries = model.world_model_queries(z[moves])  # [N, channels, d]
    embeddings = model.token_emb.weight
    appear_logits = (queries[:, 0] @ embeddings.T + model.world_model_bias[0]).float()  # [N, V]
    vocab = appear_logits.shape[-1]
    nexts = _multi_hot([ids for t in chunk for ids in t.nexts], vocab).to(device)  # [N, V]
    current_ids = pad_sequence(
        [torch.tensor(t.current, dtype=torch.long) for t in chunk], True, PAD
    ).to(device)[state_of]  # [N, C]
    is_current = current_ids != PAD
    stays = (nexts.gather(1, current_ids) > 0) & is_current  # a current token still there next
    if target == "next":
        total = F.binary_cross_entropy_with_logits(appear_logits, nexts, reduction="sum")
        predicted = appear_logits > 0
    else:
        current = _multi_hot([t.current for t in chunk], vocab).to(device)[state_of]
        loss_appear = F.binary_cross_entropy_with_logits(
            appear_logits, nexts * (1 - current), reduction="sum"
        )
        disappear_logits = (queries[:, 1, None, :] * embeddings[current_ids]).sum(-1)
        disappear_logits = (disappear_logits + model.world_model_bias[1][current_ids]).float()
        loss_disappear = F.binary_cross_entropy_with_logits(
            disappear_logits, (~stays).float(), reduction="none"
        )
        total = loss_appear + (loss_disappear * is_current).sum()
        kept = is_current & ~(disappear_logits > 0)
        predicted = appear_logits > 0
        rows = torch.arange(len(kept), device=device)[:, None].expand_as(kept)
        predicted[rows[kept], current_ids[kept]] = True
    loss = total / len(state_of)
    actual = nexts > 0
    with torch.no_grad():

        def count(tokens: torch.Tensor) -> torch.Tensor:
            return tokens.sum(-1, dtype=torch.int32)  # summing bools as int64 is 3x slower

        stats = {
            "f1": _f1(count(predicted & actual), count(predicted) + count(actual)),
            "copy_f1": _f1(count(stays), count(is_current) + count(actual)),
        }
    return loss, stats


def _multi_hot(id_lists: list[list[int]], vocab: int) -> torch.Tensor:
    """``[len(id_lists), vocab]``: row ``i`` is 1 at the ids of ``id_lists[i]``."""
    out = torch.zeros(len(id_lists), vocab)
    counts = torch.tensor([len(ids) for ids in id_lists], dtype=torch.long)
    rows = torch.repeat_interleave(torch.arange(len(id_lists)), counts)
    out[rows, torch.tensor([i for ids in id_lists for i in ids], dtype=torch.long)] = 1.0
    return out


def _f1(hits: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Token-set F1 from the intersection's size and the two sets' sizes summed (1 when both
    sets are empty)."""
    hits = hits.float()
    return torch.where(size > 0, 2 * hits / size.clamp(min=1), torch.ones_like(hits))


@torch.no_grad()
def validate_world_model(
    agent: Agent, val: Sequence[Transitions], target: str, batch_size: int = 16
) -> dict[str, float]:
    """Validation loss, token F1 of the predicted next observation, and copying's F1."""
    agent.model.eval()
    losses, f1s, copies = [], [], []
    for i in range(0, len(val), batch_size):
        chunk = val[i : i + batch_size]
        loss, stats = world_model_loss(agent, chunk, target)
        losses.append(loss.item() * len(stats["f1"]))
        f1s.append(stats["f1"])
        copies.append(stats["copy_f1"])
    n = sum(len(f) for f in f1s)
    return {
        "loss": sum(losses) / n,
        "f1": torch.cat(f1s).mean().item(),
        "copy_f1": torch.cat(copies).mean().item(),
    }


def world_modeling(
    agent: Agent,
    train: Sequence[Transitions],
    val: Sequence[Transitions],
    *,
    target: str,
    max_updates: int,
    batch_size: int,
    learning_rate: float,
    val_every: int,
    patience: int,
    seed: int,
    writer: SummaryWriter | None = None,
    progress: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Stage 1: fit the world-model head (and the encoders under it) to ``train`` in place;
    keep the weights of the lowest validation loss; stop early after ``patience`` passes."""
    initial = validate_world_model(agent, val, target)

    def loss_fn(chunk: list[Transitions]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, stats = world_model_loss(agent, chunk, target)
        return loss, {"losses/wm_loss": loss.item(), "wm/train_f1": stats["f1"].mean().item()}

    def validation() -> dict[str, float]:
        result = validate_world_model(agent, val, target)
        return {
            "losses/wm_val_loss": result["loss"],
            "wm/val_f1": result["f1"],
            "wm/val_copy_f1": result["copy_f1"],
        }

    started = time.perf_counter()
    fit = fit_early_stopped(
        agent.model,
        train,
        loss_fn,
        validation,
        lambda result: (-result["losses/wm_val_loss"],),
        max_updates=max_updates,
        batch_size=batch_size,
        learning_rate=learning_rate,
        val_every=val_every,
        patience=patience,
        seed=seed,
        writer=writer,
        desc="world model",
        progress=progress,
        optimizer=optimizer,
        length=state_length,
    )
    best = fit["best"]
    return {
        "wm_updates": fit["updates"],
        "wm_best_update": fit["best_update"],
        "wm_hit_cap": fit["hit_cap"],
        "wm_initial_val_loss": initial["loss"],
        "wm_val_loss": best["losses/wm_val_loss"],
        "wm_val_f1": best["wm/val_f1"],
        "wm_copy_f1": best["wm/val_copy_f1"],
        "wm_transitions": sum(len(t.candidates) for t in train),
        "wm_seconds": time.perf_counter() - started,
    }


def train_iwm(config: IWMConfig) -> dict[str, Any]:
    """Run implicit world modeling end to end; write ``agent.pt`` and ``metrics.json`` (and
    ``rollouts.jsonl`` when it collects them) to ``config.out``. A language-model agent
    (``--agent lm``) trains through :func:`learners.lm_world_model.train_lm_iwm`."""
    if isinstance(config.model, LMConfig):
        from learners.lm_world_model import train_lm_iwm  # it imports this module

        return train_lm_iwm(config)
    with Run(config) as run:
        dataset, agent, train_eps, val = load_demos(run)
        wm_train, wm_val, positions = load_transitions(config, dataset, agent, train_eps)

        optimizer = None
        if config.keep_optimizer:
            optimizer = adam(agent.model, config.wm_learning_rate)
        wm: dict[str, Any] = {"wm_updates": 0}
        if config.mode != "joint":  # stage 1: world modeling
            wm = world_modeling(
                agent,
                wm_train,
                wm_val,
                target=config.target,
                max_updates=config.wm_updates,
                batch_size=config.wm_batch_size,
                learning_rate=config.wm_learning_rate,
                val_every=config.val_every,
                patience=config.patience,
                seed=config.seed,
                writer=run.writer,
                progress=config.progress,
                optimizer=optimizer,
            )

        # Stage 2: imitation, alone (sequential) or with the world-model loss (joint); with
        # look-ahead, on decisions that carry the observed outcomes of the tried candidates.
        loss = None  # BC's
        if config.scorer == "lookahead":
            indexed = indexed_episodes(dataset, train_eps)
            decisions = TokenStore(
                OutcomeDecision,
                outcome_decisions(agent, indexed, wm_train, positions, config.target),
                config.out,
            )
            loss = lookahead_loss(config)
        else:
            decisions = TokenStore(Decision, encode_decisions(agent, train_eps), config.out)
        if config.mode in ("joint", "sequential-joint"):
            loss = joint_loss(wm_train, config, loss)
        fit = fit_policy(
            agent, decisions, val, config, run.writer, wm["wm_updates"], loss, optimizer
        )
        # What stage 2 left of the world model (it can overwrite what stage 1 learned).
        after = validate_world_model(agent, wm_val, config.target)
        metrics = {
            **demo_metrics(dataset, config.val_episodes),
            **wm,
            **fit,
            "bc_updates": fit["updates"],
            "updates": wm["wm_updates"] + fit["updates"],
            # Converged means the evaluated policy's stage stopped on validation; stage 1's
            # cap is a fixed budget by design (matched updates), reported as wm_hit_cap.
            "hit_cap": fit["hit_cap"],
            "budget": config.budget,
            "target": config.target,
            "mode": config.mode,
            "wm_final_val_f1": after["f1"],
            "wm_final_copy_f1": after["copy_f1"],
        }
        if config.scorer == "lookahead":
            metrics.update(lookahead_metrics(agent, dataset, train_eps, wm_val, positions, config))
        for name, value in (("val_f1", after["f1"]), ("val_copy_f1", after["copy_f1"])):
            run.writer.add_scalar(f"wm/final_{name}", value, metrics["updates"])
        return run.finish(agent, metrics, step=metrics["updates"], env_kwargs=dataset.env_kwargs)


def load_transitions(
    config: IWMConfig, dataset: Dataset, agent: Agent, train_eps: Sequence[Episode]
) -> tuple[Sequence[Transitions], Sequence[Transitions], dict[tuple[int, int], int]]:
    """The rollouts of ``dataset`` (read, or collected now), tokenized into on-disk stores:
    those of ``train_eps`` to train on, those of the validation episodes to validate the
    world model; and where each branched state went, ``(episode, step) -> index`` in its
    store (streamed one branched state at a time; the controls applied)."""
    wm_train = TokenStore(Transitions, directory=config.out)
    wm_val = TokenStore(Transitions, directory=config.out)
    positions: dict[tuple[int, int], int] = {}
    for training, episode, state in branched_states(config, dataset, train_eps):
        store = wm_train if training else wm_val
        positions[(state.episode, state.step)] = len(store)
        store.append(encode_transition(agent, episode, state))
    if config.outcomes == "shuffled":
        return (
            ShuffledOutcomes(wm_train, config.seed),
            ShuffledOutcomes(wm_val, config.seed + 1),
            positions,
        )
    return wm_train, wm_val, positions


def branched_states(
    config: IWMConfig, dataset: Dataset, train_eps: Sequence[Episode]
) -> Iterator[tuple[bool, Episode, BranchedState]]:
    """The rollouts of ``dataset`` (read, or collected now), one branched state at a time:
    whether it is from ``train_eps`` (else from a validation episode), its demo episode and
    the state, with the ``branches`` control applied."""
    train_seeds = {e.seed for e in train_eps}
    for state in load_rollouts(_rollouts_file(config, dataset), dataset):
        if config.branches == "expert":
            state = replace(state, branches=[])
        episode = dataset.episodes[state.episode]
        yield episode.seed in train_seeds, episode, state


def indexed_episodes(dataset: Dataset, episodes: Sequence[Episode]) -> list[tuple[int, Episode]]:
    """``(index in the dataset, episode)`` of each of ``episodes`` (rollouts name episodes
    by their index)."""
    wanted = {e.seed for e in episodes}
    return [(i, e) for i, e in enumerate(dataset.episodes) if e.seed in wanted]


def lookahead_loss(config: IWMConfig) -> PolicyLoss:
    """:func:`outcome_nll` at ``config.lookahead_observed``, its draws seeded by the run's seed."""
    rng = np.random.default_rng([config.seed, 2])

    def loss(agent: Agent, chunk: list[OutcomeDecision]) -> tuple[torch.Tensor, dict[str, float]]:
        nll = outcome_nll(agent, chunk, config.lookahead_observed, rng)
        return nll, {"losses/bc_nll": nll.item()}

    return loss


def lookahead_metrics(
    agent: Agent,
    dataset: Dataset,
    train_eps: Sequence[Episode],
    wm_val: Sequence[Transitions],
    positions: dict[tuple[int, int], int],
    config: IWMConfig,
) -> dict[str, Any]:
    """What a look-ahead run reports beside BC's: its scorer, and the validation accuracy
    with the observed outcomes of the tried candidates (``val_accuracy`` has the prediction)."""
    train_seeds = {e.seed for e in train_eps}
    val_eps = [e for e in dataset.episodes if e.seed not in train_seeds]
    indexed = indexed_episodes(dataset, val_eps)
    with TokenStore(
        OutcomeDecision,
        outcome_decisions(agent, indexed, wm_val, positions, config.target),
        config.out,
    ) as decisions:
        return {
            "scorer": config.scorer,
            "lookahead_observed": config.lookahead_observed,
            "val_accuracy_observed": validate_observed(agent, decisions),
        }


def joint_loss(
    wm_train: Sequence[Transitions], config: IWMConfig, imitation: PolicyLoss | None = None
) -> PolicyLoss:
    """The imitation loss (``imitation``; default: BC's NLL) plus ``wm_weight`` times the
    world-model loss on a random minibatch of ``wm_batch_size`` states (seeded by
    ``config.seed``), for every imitation update."""
    rng = np.random.default_rng([config.seed, 1])
    size = min(config.wm_batch_size, len(wm_train))

    def loss(agent: Agent, chunk: list[Any]) -> tuple[torch.Tensor, dict[str, float]]:
        if imitation is None:
            value = policy_nll(agent, chunk)
            scalars = {"losses/bc_nll": value.item()}
        else:
            value, scalars = imitation(agent, chunk)
        picked = [wm_train[int(i)] for i in rng.choice(len(wm_train), size, replace=False)]
        wm_loss, _ = world_model_loss(agent, picked, config.target)
        scalars = {**scalars, "losses/wm_loss": wm_loss.item()}
        return value + config.wm_weight * wm_loss, scalars

    return loss


class ShuffledOutcomes(Sequence[Transitions]):
    """Transitions whose moves each get the next observation of a random move anywhere in the
    set (one seeded permutation of all moves): the same states, commands and outcome tokens as
    the real data, with the link between a command and what it did broken. The control that
    tells whether a world model's gain comes from that link."""

    def __init__(self, transitions: Sequence[Transitions], seed: int) -> None:
        self.transitions = transitions
        counts = np.array([len(t.nexts) for t in transitions], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.owner = np.repeat(np.arange(len(counts)), counts)
        self.slot = np.arange(self.offsets[-1]) - self.offsets[self.owner]
        self.source = np.random.default_rng(seed).permutation(self.offsets[-1])

    def __len__(self) -> int:
        return len(self.transitions)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item = self.transitions[index]
        moves = self.source[self.offsets[index] : self.offsets[index + 1]]
        nexts = [self.transitions[int(self.owner[m])].nexts[int(self.slot[m])] for m in moves]
        return replace(item, nexts=nexts)


def _rollouts_file(config: IWMConfig, dataset: Dataset) -> Path:
    """The rollout file to train on: the given one, or collected from the demo budget now."""
    if config.rollout_file is not None:
        return Path(config.rollout_file)
    proposer_agent = None
    if config.proposer_agent is not None:
        proposer_agent = Agent.load(config.proposer_agent)
    path = Path(config.out) / "rollouts.jsonl"
    collect_rollouts(
        dataset,
        config.demos,
        path,
        k=parse_k(config.k),
        seed=config.seed,
        proposer=config.proposer,
        agent=proposer_agent,
        temperature=config.temperature,
        progress=config.progress,
    )
    return path

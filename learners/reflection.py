"""Self-reflection (SR): choose the expert's command from the outcomes of the alternatives,
then carry that choice into a policy that has to predict those outcomes itself.

Early experience's second recipe (Zhang et al., 2025), as a small-model analog without a
language model. Registered as ``sr``.

The paper. At each expert state the agent executes alternative actions and observes what
they do; a language model is prompted with the state, the expert's action, the alternatives
and their outcomes, and writes a *rationale*: why the expert's action is the better one given
those outcomes ("If I 'go to cabinet 1': the cabinet 1 is closed. If I 'go to countertop 2':
on the countertop 2 I see a plate 2. The goal needs a plate, so: go to countertop 2"). The
policy is then trained to produce the rationale and the expert's action from the state
alone, so at test time it has to anticipate the outcomes it no longer sees.

Here, in one network (``agents/model.py`` with look-ahead):

* the *evidence* is what the rationale is written from: the observed outcome of each
  command tried from the state, the expert's and the branched alternatives' (the tokens
  that appear in its next observation; ``learners/world_model.py``'s ``appearing``);
* stage 1, *reflection* (the teacher): at every branched state the look-ahead scorer reads
  the evidence of each of {expert, alternatives} and is trained to pick the expert's command
  (cross-entropy), together with world modeling on the same transitions (``wm_weight`` x the
  world-model loss, from the same forward pass), which is what later lets the policy
  produce the evidence itself. The world-model loss sums over the vocabulary (10-100 per
  move where the cross-entropy is 0-3) and shapes the token embeddings the scorer reads the
  evidence with (they are its tied output weights), so at IWM's weight of 1 it drowns the
  teacher: on ``toy/Boxes-v0`` (tests/learners/test_reflection.py; no benchmark setting was
  used to choose it) the teacher found the right box 0.38-0.56 of the time at weights 1 and
  0.1, 0.88-0.94 at 0.05 and 0.02, and 0.94 without world modeling; the default is 0.05;
* the teacher's verdicts are then frozen: at every branched train state, its distribution
  over the tried commands given their evidence (at ``teacher_temperature``), kept on disk;
* stage 2, *distillation* (the policy): the same network, now scoring every command with the
  world model's *predicted* outcome as it will at test time, is trained by BC on the demos
  plus ``distill_weight`` x KL(teacher || policy over the tried commands) at every branched
  state. Validation and early stopping use the predicted outcomes only.

Where it differs from the paper:

* no language: nothing is generated or read as text; the "rationale" is not written by a
  model at all, it is the raw evidence itself, a bag of appearing tokens per command;
  there is no stated reason ("the goal needs X") - the scorer has to learn that match;
* the teacher is the same network (the same weights, reading observed instead of predicted
  outcomes), learned from the demos, not a separate, prompted (and possibly stronger) model;
  its verdict is a distribution over the tried commands (how good each one's outcome looks),
  where the paper's rationale names one action;
* the policy does not generate its rationale before acting: it predicts the evidence with
  the world-model head (trained in stage 1; in stage 2 only with ``--mode
  sequential-joint``), and the look-ahead reads the prediction, which is detached, so
  neither BC nor the distillation trains the world model;
* the paper trains on rationale-augmented expert data with next-token prediction; here the
  two are separate losses (BC on every demo decision, KL where there is evidence).

Budgets and flags are IWM's (``learners/world_model.py``): ``--budget matched`` gives stage 1
``--wm-updates`` and stage 2 the rest of ``--max-updates``; ``--wm-batch-size`` and
``--wm-learning-rate`` are stage 1's; ``--outcomes shuffled`` is the control whose evidence
comes from other states. Stage 2 keeps the world-model loss with ``--mode sequential-joint``.

Reads top to bottom: load the demo budget -> rollouts into on-disk stores -> stage 1
(reflection + world modeling) -> the teacher's verdicts at every branched train state ->
stage 2 (BC + distillation) -> save -> evaluate on the test split beside a random policy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

from agents import MASKED_LOGIT, Agent, LMConfig, collate
from learners.config import model_config, option
from learners.imitation import PolicyLoss, demo_metrics, fit_policy, load_demos, state_length
from learners.lifecycle import Run
from learners.store import TokenStore
from learners.training import adam, fit_early_stopped
from learners.world_model import (
    SCORERS,
    IWMConfig,
    OutcomeDecision,
    Transitions,
    appearing,
    indexed_episodes,
    joint_loss,
    load_transitions,
    lookahead_metrics,
    observed_outcome,
    outcome_decisions,
    validate_world_model,
    world_model_loss,
)


@dataclass
class SRConfig(IWMConfig):
    """Self-reflection; IWM's rollout and world-model flags apply to stage 1, BC's to stage 2."""

    learner: str = option("sr", "the registered learner this run trains as")
    out: str = option("runs/sr", "directory for ``agent.pt`` and ``metrics.json``")
    scorer: str = option(
        "lookahead",
        "how the policy scores a command: from z alone (consequence), or also from the "
        "command's outcome, observed or predicted (lookahead: the model's --lookahead, which "
        "it turns on; see learners/world_model.py); sr needs lookahead",
        choices=SCORERS,
    )
    distill_weight: float = option(
        1.0, "stage 2: weight of KL(teacher || policy) at the branched states, beside BC", low=0
    )
    teacher_temperature: float = option(
        1.0, "the teacher's logits are divided by this before distilling (> 1: softer)", low=0
    )
    wm_weight: float = option(
        0.05,
        "weight of the world-model loss: in iwm's joint updates; in sr's stage 1 beside the "
        "teacher's cross-entropy (and its stage 2 with --mode sequential-joint)",
        low=0,
    )

    rationales: str = option(
        "template",
        "language-model agent: who writes the rationales: a template from the observed "
        "outcomes, or the model itself, prompted with them (a pretrained model)",
        choices=("template", "model"),
    )

    trains_thoughts: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):  # from JSON: known before it is validated
            self.model = model_config(self.model)
        if isinstance(self.model, LMConfig):
            # The language-model agent's look-ahead is its written thought; it ranks (or
            # generates) the command after it by likelihood.
            self.scorer = "consequence"
            self.model = replace(self.model, reflect=True)
        super().__post_init__()

    @property
    def two_stages(self) -> bool:
        """The policy model's SR has its teacher's stage; the language model's has one."""
        return not isinstance(self.model, LMConfig) and super().two_stages

    def problems(self) -> list[str]:
        """IWM's problems, and IWM options that have no meaning for SR."""
        problems = super().problems()
        if isinstance(self.model, LMConfig):
            from learners.lm_reflection import lm_sr_problems  # it imports this module

            return problems + lm_sr_problems(self)
        if self.rationales != "template":
            problems.append(
                "--rationales: written rationales are the language-model agent's (--agent lm); "
                "the policy model's SR reads the outcomes themselves"
            )
        if self.scorer != "lookahead":
            problems.append("sr's teacher reads outcomes: scorer must be 'lookahead'")
        if self.mode == "joint":
            problems.append(
                "sr needs its stage 1 (the teacher): mode must be sequential or sequential-joint"
            )
        if self.branches != "all":
            problems.append(
                "sr compares the expert's outcome with the alternatives': branches 'all'"
            )
        if self.lookahead_observed != IWMConfig.lookahead_observed:
            problems.append(
                "sr does not use lookahead_observed: its teacher always reads observed outcomes, "
                "its policy always predicted ones"
            )
        if isinstance(self.teacher_temperature, int | float) and self.teacher_temperature <= 0:
            problems.append(f"teacher_temperature must be > 0, got {self.teacher_temperature}")
        return problems


@dataclass
class ReflectedDecision:
    """A demo decision with the teacher's verdict over the commands tried from its state."""

    state: list[int]
    candidates: list[list[int]]
    target: int
    teacher: list[int]  # per candidate: its teacher log-probability, float32 bits (0: untried)
    tried: list[int]  # per candidate: 1 if the rollouts tried it from this state


def reflection_loss(
    agent: Agent, chunk: list[Transitions], target: str, wm_weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stage 1 on branched states: the cross-entropy of picking the expert's command (the
    first move) with every move scored from its observed outcome, plus ``wm_weight`` x the
    world-model loss of the same moves, from one forward pass. Per-state statistics too."""
    device = agent.device
    batch = collate([t.state for t in chunk], [t.candidates for t in chunk], device)
    z = agent.model.encode(batch).z
    evidence = observed_outcome([appearing(t, target) for t in chunk], z.shape[1], device)
    logits = agent.model.policy_logits(z, batch["action_mask"], evidence).float()
    expert = torch.zeros(len(chunk), dtype=torch.long, device=device)
    nll = F.cross_entropy(logits, expert, reduction="none")
    wm_loss, stats = world_model_loss(agent, chunk, target, batch=batch, z=z)
    loss = nll.mean() + wm_weight * wm_loss
    return loss, {**stats, "nll": nll, "correct": logits.argmax(-1) == 0, "wm_loss": wm_loss}


@torch.no_grad()
def validate_reflection(
    agent: Agent, val: Sequence[Transitions], target: str, wm_weight: float
) -> dict[str, float]:
    """The teacher's validation NLL and accuracy (picking the expert's command from the
    evidence), the world model's loss and F1, and copying's F1."""
    agent.model.eval()
    nll, correct, wm_losses, f1s, copies = [], [], [], [], []
    for i in range(0, len(val), 16):
        chunk = val[i : i + 16]
        _, stats = reflection_loss(agent, chunk, target, wm_weight)
        nll.append(stats["nll"])
        correct.append(stats["correct"])
        wm_losses.append(stats["wm_loss"].item() * len(stats["f1"]))
        f1s.append(stats["f1"])
        copies.append(stats["copy_f1"])
    moves = sum(len(f) for f in f1s)
    return {
        "losses/sr_teacher_val_nll": torch.cat(nll).mean().item(),
        "charts/sr_teacher_val_accuracy": torch.cat(correct).float().mean().item(),
        "losses/wm_val_loss": sum(wm_losses) / moves,
        "wm/val_f1": torch.cat(f1s).mean().item(),
        "wm/val_copy_f1": torch.cat(copies).mean().item(),
    }


def reflection(
    agent: Agent,
    train: Sequence[Transitions],
    val: Sequence[Transitions],
    config: SRConfig,
    writer: SummaryWriter | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Stage 1: train the teacher (and the world model) on the branched states in place; keep
    the weights of the lowest validation loss (the stage's own objective)."""
    target, weight = config.target, config.wm_weight

    def loss_fn(chunk: list[Transitions]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, stats = reflection_loss(agent, chunk, target, weight)
        return loss, {
            "losses/sr_teacher_nll": stats["nll"].mean().item(),
            "losses/wm_loss": stats["wm_loss"].item(),
            "charts/sr_teacher_accuracy": stats["correct"].float().mean().item(),
        }

    def score(result: dict[str, float]) -> tuple[float]:
        return (-(result["losses/sr_teacher_val_nll"] + weight * result["losses/wm_val_loss"]),)

    started = time.perf_counter()
    fit = fit_early_stopped(
        agent.model,
        train,
        loss_fn,
        lambda: validate_reflection(agent, val, target, weight),
        score,
        max_updates=config.wm_updates,
        batch_size=config.wm_batch_size,
        learning_rate=config.wm_learning_rate,
        val_every=config.val_every,
        patience=config.patience,
        seed=config.seed,
        writer=writer,
        desc="reflection",
        progress=config.progress,
        optimizer=optimizer,
        length=state_length,
    )
    best = fit["best"]
    return {
        "wm_updates": fit["updates"],
        "wm_best_update": fit["best_update"],
        "wm_hit_cap": fit["hit_cap"],
        "teacher_val_nll": best["losses/sr_teacher_val_nll"],
        "teacher_val_accuracy": best["charts/sr_teacher_val_accuracy"],
        "wm_val_loss": best["losses/wm_val_loss"],
        "wm_val_f1": best["wm/val_f1"],
        "wm_copy_f1": best["wm/val_copy_f1"],
        "wm_transitions": sum(len(t.candidates) for t in train),
        "wm_seconds": time.perf_counter() - started,
    }


@torch.no_grad()
def reflect(
    agent: Agent, decisions: Sequence[OutcomeDecision], temperature: float, batch_size: int = 64
) -> Iterator[ReflectedDecision]:
    """The teacher's verdict on each decision: its distribution over the tried commands,
    each scored from its observed outcome, at ``temperature`` (the untried ones excluded)."""
    agent.model.eval()
    for i in range(0, len(decisions), batch_size):
        chunk = decisions[i : i + batch_size]
        batch = collate([d.state for d in chunk], [d.candidates for d in chunk], agent.device)
        z = agent.model.encode(batch).z
        evidence = observed_outcome([d.outcomes for d in chunk], z.shape[1], z.device)
        tried = _padded([d.observed for d in chunk], z.shape[1], z.device).bool()
        logits = agent.model.policy_logits(z, batch["action_mask"] & tried, evidence).float()
        log_probs = (logits / temperature).log_softmax(-1).cpu().numpy()
        for row, d in zip(log_probs, chunk, strict=True):
            verdict = np.where(np.asarray(d.observed, dtype=bool), row[: len(d.observed)], 0.0)
            yield ReflectedDecision(
                d.state,
                d.candidates,
                d.target,
                verdict.astype(np.float32).view(np.int32).tolist(),
                d.observed,
            )


def distill_loss(config: SRConfig) -> PolicyLoss:
    """Stage 2: BC's NLL plus ``distill_weight`` x KL(teacher || policy), the policy scoring
    every command with its predicted outcome (as at test time) and renormalized over the
    tried commands; the KL is averaged over the states the rollouts branched."""

    def loss(agent: Agent, chunk: list[ReflectedDecision]) -> tuple[torch.Tensor, dict[str, float]]:
        device = agent.device
        batch = collate([d.state for d in chunk], [d.candidates for d in chunk], device)
        logits = agent.model(batch)[0].float()
        targets = torch.tensor([d.target for d in chunk], device=device)
        nll = F.cross_entropy(logits, targets)
        width = logits.shape[1]
        tried = _padded([d.tried for d in chunk], width, device).bool() & batch["action_mask"]
        bits = [np.asarray(d.teacher, dtype=np.int32).view(np.float32) for d in chunk]
        teacher = _padded(bits, width, device, torch.float32)
        student = logits.masked_fill(~tried, MASKED_LOGIT).log_softmax(-1)
        terms = torch.where(tried, teacher.exp() * (teacher - student), torch.zeros_like(student))
        branched = tried.any(-1)
        kl = terms.sum(-1)[branched].mean() if bool(branched.any()) else logits.new_zeros(())
        scalars = {"losses/bc_nll": nll.item(), "losses/sr_kl": kl.item()}
        return nll + config.distill_weight * kl, scalars

    return loss


def _padded(
    rows: Sequence[Sequence[float]],
    width: int,
    device: torch.device,
    dtype: torch.dtype = torch.long,
) -> torch.Tensor:
    out = np.zeros((len(rows), width), dtype=np.float32 if dtype.is_floating_point else np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out).to(device=device, dtype=dtype)


def train_sr(config: SRConfig) -> dict[str, Any]:
    """Run self-reflection end to end; write ``agent.pt`` and ``metrics.json`` (and
    ``rollouts.jsonl`` when it collects them) to ``config.out``. A language-model agent
    (``--agent lm``) trains through :func:`learners.lm_reflection.train_lm_sr`."""
    if isinstance(config.model, LMConfig):
        from learners.lm_reflection import train_lm_sr  # it imports this module

        return train_lm_sr(config)
    with Run(config) as run:
        dataset, agent, train_eps, val = load_demos(run)
        wm_train, wm_val, positions = load_transitions(config, dataset, agent, train_eps)

        # Stage 1: reflection. The teacher learns to pick the expert's command from the
        # evidence, the world model to predict that evidence.
        optimizer = adam(agent.model, config.wm_learning_rate) if config.keep_optimizer else None
        teacher = reflection(agent, wm_train, wm_val, config, run.writer, optimizer)

        # The teacher's verdicts at every branched train state, frozen before stage 2.
        indexed = indexed_episodes(dataset, train_eps)
        with TokenStore(
            OutcomeDecision,
            outcome_decisions(agent, indexed, wm_train, positions, config.target),
            config.out,
        ) as evidence:
            decisions = TokenStore(
                ReflectedDecision,
                reflect(agent, evidence, config.teacher_temperature),
                config.out,
            )

        # Stage 2: distillation into the policy that sees only predicted outcomes.
        loss = distill_loss(config)
        if config.mode == "sequential-joint":
            loss = joint_loss(wm_train, config, loss)
        fit = fit_policy(
            agent, decisions, val, config, run.writer, teacher["wm_updates"], loss, optimizer
        )
        after = validate_world_model(agent, wm_val, config.target)
        metrics = {
            **demo_metrics(dataset, config.val_episodes),
            **teacher,
            **fit,
            "bc_updates": fit["updates"],
            "updates": teacher["wm_updates"] + fit["updates"],
            "hit_cap": fit["hit_cap"],  # the policy's stage (as IWM); the teacher's: wm_hit_cap
            "budget": config.budget,
            "target": config.target,
            "mode": config.mode,
            "wm_final_val_f1": after["f1"],
            "wm_final_copy_f1": after["copy_f1"],
            **lookahead_metrics(agent, dataset, train_eps, wm_val, positions, config),
        }
        del metrics["lookahead_observed"]  # not an SR setting
        for name, value in (("val_f1", after["f1"]), ("val_copy_f1", after["copy_f1"])):
            run.writer.add_scalar(f"wm/final_{name}", value, metrics["updates"])
        return run.finish(agent, metrics, step=metrics["updates"], env_kwargs=dataset.env_kwargs)

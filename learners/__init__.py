"""earlyexp learners: demo datasets, rollouts, the learners, evaluation, and the learner
registry.

Every built-in learner is registered here, in one place; a user's learner registers itself
the same way (see :func:`register_learner`) and is named ``module:name``.
"""

from learners.config import RunConfig, option
from learners.lifecycle import Run
from learners.registry import Learner, get_learner, register_learner, registered_learners

__all__ = [
    "Learner",
    "Run",
    "RunConfig",
    "get_learner",
    "option",
    "register_learner",
    "registered_learners",
]

_BC = ("learners.imitation:train_bc", "learners.imitation:BCConfig")
_DAGGER = ("learners.imitation:train_dagger", "learners.imitation:DAggerConfig")
_IWM = ("learners.world_model:train_iwm", "learners.world_model:IWMConfig")
_RL = ("learners.rl:train_rl", "learners.rl:RLConfig")

register_learner(
    "bc", train=_BC[0], config=_BC[1], description="behaviour cloning over admissible commands"
)
register_learner(
    "dagger",
    train=_DAGGER[0],
    config=_DAGGER[1],
    needs_expert=True,
    description="BC, then rounds of learner rollouts labelled by the env's expert",
)
register_learner(
    "iwm",
    train=_IWM[0],
    config=_IWM[1],
    needs_rollouts=True,
    description="implicit world modeling on early-experience rollouts, then BC",
)
register_learner(
    "iwm-matched",
    train=_IWM[0],
    config=_IWM[1],
    overrides={"budget": "matched"},
    needs_rollouts=True,
    description="iwm with BC's update budget split between the stages",
)
register_learner(
    "iwm-extra",
    train=_IWM[0],
    config=_IWM[1],
    overrides={"budget": "extra"},
    needs_rollouts=True,
    description="iwm with the world-model updates on top of BC's budget",
)
register_learner(
    "iwm-next",
    train=_IWM[0],
    config=_IWM[1],
    overrides={"budget": "matched", "target": "next"},
    needs_rollouts=True,
    description="iwm-matched predicting the whole next observation",
)
register_learner(
    "iwm-joint",
    train=_IWM[0],
    config=_IWM[1],
    overrides={"budget": "matched", "mode": "joint"},
    needs_rollouts=True,
    description="BC + wm_weight x world-model loss on every update (no separate stage)",
)
register_learner(
    "iwm-seq-joint",
    train=_IWM[0],
    config=_IWM[1],
    overrides={"budget": "matched", "mode": "sequential-joint"},
    needs_rollouts=True,
    description="iwm-matched whose BC stage keeps the world-model loss",
)
# Controls: without them no gain can be attributed to early experience.
register_learner(
    "bc-short",
    train=_BC[0],
    config="learners.imitation:BCShortConfig",
    description="control: BC with iwm-matched's imitation budget (max_updates - wm_updates)",
)
register_learner(
    "iwm-shuffled",
    train=_IWM[0],
    config=_IWM[1],
    overrides={"budget": "matched", "outcomes": "shuffled"},
    needs_rollouts=True,
    description="control: iwm-matched on outcomes permuted across states",
)
register_learner(
    "iwm-expert-only",
    train=_IWM[0],
    config=_IWM[1],
    overrides={"budget": "matched", "branches": "expert"},
    needs_rollouts=True,
    description="control: iwm-matched on the expert's own transitions only (no alternatives)",
)
register_learner(
    "rl",
    train=_RL[0],
    config=_RL[1],
    needs_demos=False,
    description="action-masked PPO (sb3-contrib), from scratch or --init-from a checkpoint",
)
register_learner(
    "rl-scratch",
    train=_RL[0],
    config=_RL[1],
    needs_demos=False,
    description="rl from a fresh agent",
)
register_learner(
    "rl-from-bc",
    train=_RL[0],
    config=_RL[1],
    needs_demos=False,
    warm_start="bc",
    description="rl warm-started from the bc run of the same seed",
)
register_learner(
    "rl-from-iwm",
    train=_RL[0],
    config=_RL[1],
    needs_demos=False,
    warm_start="iwm-matched",
    description="rl warm-started from the iwm-matched run of the same seed",
)

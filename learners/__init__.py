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
_IWM = ("learners.world_model:train_iwm", "learners.world_model:IWMConfig")
_RL = ("learners.rl:train_rl", "learners.rl:RLConfig")

register_learner(
    "bc", train=_BC[0], config=_BC[1], description="behaviour cloning over admissible commands"
)
register_learner(
    "dagger",
    train="learners.imitation:train_dagger",
    config="learners.imitation:DAggerConfig",
    needs_expert=True,
    description="BC, then rounds of learner rollouts labelled by the env's expert",
)
# Controls (bc-short and the last two iwm variants): without them no gain can be
# attributed to early experience.
register_learner(
    "bc-short",
    train=_BC[0],
    config="learners.imitation:BCShortConfig",
    description="control: BC with iwm-matched's imitation budget (max_updates - wm_updates)",
)
_MATCHED = {"budget": "matched"}
for name, overrides, description in (
    ("iwm", {}, "implicit world modeling on early-experience rollouts, then BC"),
    ("iwm-matched", _MATCHED, "iwm with BC's update budget split between the stages"),
    ("iwm-extra", {"budget": "extra"}, "iwm with the world-model updates on top of BC's budget"),
    (
        "iwm-next",
        {**_MATCHED, "target": "next"},
        "iwm-matched predicting the whole next observation",
    ),
    (
        "iwm-joint",
        {**_MATCHED, "mode": "joint"},
        "BC + wm_weight x world-model loss on every update (no separate stage)",
    ),
    (
        "iwm-mixed",
        {**_MATCHED, "mode": "mixed"},
        "language-model agent: one stage of imitation and world-model examples shuffled "
        "together (--agent lm)",
    ),
    (
        "iwm-seq-joint",
        {**_MATCHED, "mode": "sequential-joint"},
        "iwm-matched whose BC stage keeps the world-model loss",
    ),
    (
        "iwm-lookahead",
        {**_MATCHED, "scorer": "lookahead"},
        "iwm-matched whose policy also scores each command from its outcome (observed in "
        "training where the rollouts tried it, predicted by the world model at test time)",
    ),
    (
        "iwm-shuffled",
        {**_MATCHED, "outcomes": "shuffled"},
        "control: iwm-matched on outcomes permuted across states",
    ),
    (
        "iwm-expert-only",
        {**_MATCHED, "branches": "expert"},
        "control: iwm-matched on the expert's own transitions only (no alternatives)",
    ),
):
    register_learner(
        name,
        train=_IWM[0],
        config=_IWM[1],
        overrides=overrides,
        needs_rollouts=True,
        description=description,
    )
register_learner(
    "sr",
    train="learners.reflection:train_sr",
    config="learners.reflection:SRConfig",
    overrides=_MATCHED,
    needs_rollouts=True,
    description="self-reflection: a teacher picks the expert's command from the observed "
    "outcomes of the branched commands, distilled into a policy that predicts them",
)
for name, source, description in (
    ("rl", None, "action-masked PPO (sb3-contrib), from scratch or --init-from a checkpoint"),
    ("rl-scratch", None, "rl from a fresh agent"),
    ("rl-from-bc", "bc", "rl warm-started from the bc run of the same seed"),
    ("rl-from-iwm", "iwm-matched", "rl warm-started from the iwm-matched run of the same seed"),
):
    register_learner(
        name,
        train=_RL[0],
        config=_RL[1],
        needs_demos=False,
        warm_start=source,
        description=description,
    )

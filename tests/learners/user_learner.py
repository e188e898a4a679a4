"""A user's learner outside the package, registered when this module is imported (named
``tests.learners.user_learner:bc-long`` wherever a learner is named)."""

from learners import register_learner

register_learner(
    "bc-long",
    train="learners.imitation:train_bc",
    config="learners.imitation:BCConfig",
    overrides={"patience": 50},
    description="behaviour cloning with five times the patience",
)

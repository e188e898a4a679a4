"""earlyexp agents: the hashing tokenizer, state/command featurization, the policy model and
the Agent that acts, saves and loads; the language-model agent (LMAgent, the ``lm`` extra).

Works on the env contract's strings only; it imports no setting.
"""

from agents.agent import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    DEVICE_CHOICES,
    DEVICE_ENV,
    DEVICE_NAME,
    Agent,
    AgentConfig,
    autocast,
    resolve_device,
)
from agents.features import collate, encode_action, encode_state
from agents.lm import GenerationPolicy, LMAgent, LMConfig, load_agent
from agents.lm_text import MissingExtraError
from agents.model import (
    MASKED_LOGIT,
    WORLD_MODEL_CHANNELS,
    Encoding,
    ModelConfig,
    PolicyModel,
    count_parameters,
)
from agents.tokenizer import HashingTokenizer

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "DEVICE_CHOICES",
    "DEVICE_ENV",
    "DEVICE_NAME",
    "MASKED_LOGIT",
    "WORLD_MODEL_CHANNELS",
    "Agent",
    "AgentConfig",
    "Encoding",
    "GenerationPolicy",
    "HashingTokenizer",
    "LMAgent",
    "LMConfig",
    "MissingExtraError",
    "ModelConfig",
    "PolicyModel",
    "autocast",
    "collate",
    "count_parameters",
    "encode_action",
    "encode_state",
    "load_agent",
    "resolve_device",
]

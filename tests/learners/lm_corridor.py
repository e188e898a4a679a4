"""What the language-model learners' tests share: the toy corridor, a tiny LM and its
flags, a skip when the ``lm`` extra is missing, and corridor demos with their rollouts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import tests.envs.toy_env  # noqa: F401 - registers toy/Corridor-v0
from agents import LMConfig
from learners.data import collect_demos, load_dataset
from learners.rollouts import collect_rollouts

#: A test module's ``pytestmark`` where every test needs the lm extra.
REQUIRES_LM = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("transformers", "tokenizers")),
    reason="the lm extra is not installed: pip install 'earlyexp[lm]'",
)

CORRIDOR = "toy/Corridor-v0"
TINY = LMConfig(d_model=64, n_layers=2, n_heads=4, ff_dim=128, vocab_size=300, corpus_episodes=8)
#: ``earlyexp train`` flags of TINY.
TINY_FLAGS = [
    *("--agent", "lm", "--lm-vocab-size", "300", "--lm-d-model", "64"),
    *("--lm-ff-dim", "128", "--lm-corpus-episodes", "8"),
]


def corridor_files(root: Path) -> tuple[Path, Path]:
    """16 corridor demos and every alternative command's outcome from each of their states,
    written under ``root``."""
    demos, rollouts = root / "corridor.jsonl", root / "rollouts.jsonl"
    collect_demos(CORRIDOR, 16, demos, progress=False)
    collect_rollouts(load_dataset(demos), str(demos), rollouts, k=None, seed=0, progress=False)
    return demos, rollouts

"""Tiny TextWorld game pools shared by the tests (generated once per session, see conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GAMES = 2
COOKING = {"recipe": 1, "take": 1, "go": 1}  # one room, one ingredient to cook and cut
TREASURE = {"level": 11}  # 10 rooms with doors and containers, a 2-action quest
CASES = {
    "earlyexp/Cooking-v0": ("tw-cooking", COOKING),
    "earlyexp/TreasureHunter-v0": ("tw-treasure_hunter", TREASURE),
}


def pool_kwargs(env_id: str, cache: Path) -> dict[str, Any]:
    """``make`` kwargs of ``env_id`` that play the tiny pool in ``cache``."""
    _, difficulty = CASES[env_id]
    return {"games": GAMES, "cache_dir": cache, **difficulty}

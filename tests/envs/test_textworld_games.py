"""Tests of the TextWorld adapter (earlyexp/Cooking-v0, earlyexp/TreasureHunter-v0).

One session-scoped cache holds tiny pools (a few games per split, the smallest
difficulties) generated once with the real TextWorld generator and compiler. The
contract's generic properties are tested for every setting in tests/envs/test_contract.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import envs
from envs.textworld_games import TextWorldEnv, game_pool
from tests.envs.helpers import follow_expert
from tests.envs.textworld_pools import CASES, COOKING, GAMES, TREASURE, pool_kwargs


@pytest.fixture
def cache(textworld_cache: Path) -> Path:
    return textworld_cache


def _make(env_id: str, cache: Path, split: str = "train") -> TextWorldEnv:
    return envs.make(env_id, split=split, **pool_kwargs(env_id, cache))


@pytest.mark.parametrize("env_id", list(CASES))
@pytest.mark.parametrize("split", envs.SPLITS)
def test_expert_solves_every_game(env_id: str, split: str, cache: Path) -> None:
    """Each game of the pool (``reset(options={"game": i})``): no checklist fact holds at
    the start, and the expert wins it (from random states: tests/envs/test_contract.py)."""
    env = _make(env_id, cache, split)
    for game in range(GAMES):
        _, info = env.reset(seed=game, options={"game": game})
        assert not info["success"] and not any(info["checklist"].values())
        solved, _, info = follow_expert(env, info, 100)
        assert solved and all(info["checklist"].values()), (split, game)


def test_losing_terminates_without_reward(cache: Path) -> None:
    env = _make("earlyexp/Cooking-v0", cache)
    _, info = env.reset(seed=0)
    while not any(k.startswith("holding") and v for k, v in info["checklist"].items()):
        _, _, _, _, info = env.step(env.unwrapped.expert_action())
    food = next(k[len("holding ") :] for k, v in info["checklist"].items() if v)
    # cooking it twice burns it (or the first time cooks it the wrong way): the game is lost
    cook = next(a for a in info["admissible_actions"] if a.startswith(f"cook {food} with"))
    for _ in range(2):
        obs, reward, terminated, _, info = env.step(cook)
        if terminated:
            break
    assert terminated and reward == 0.0 and not info["success"]
    assert "You lost" in obs["text"]


def _markers(cache: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in cache.rglob("complete.json")}


def test_cache_is_reused(cache: Path) -> None:
    before = _markers(cache)
    assert len(before) == 2 * 2 * GAMES
    env = _make("earlyexp/Cooking-v0", cache, "test")
    env.reset(seed=0)
    assert _markers(cache) == before


def test_half_written_entries_are_rebuilt(cache: Path, tmp_path: Path) -> None:
    # a copy of a cached pool, so that the session's cache stays intact
    pool = game_pool("tw-treasure_hunter", "train", GAMES, cache, **TREASURE)[0].parent.parent
    root = tmp_path / "textworld"
    shutil.copytree(pool, root / pool.name)
    paths = game_pool("tw-treasure_hunter", "train", GAMES, tmp_path, **TREASURE)
    assert [p.parent.parent for p in paths] == [root / pool.name] * GAMES
    entries = [p.parent for p in paths]
    marker = json.loads((entries[0] / "complete.json").read_text())
    # a killed generation: a truncated file, a missing marker, a leftover temporary dir
    (entries[0] / "game.z8").write_bytes((entries[0] / "game.z8").read_bytes()[:100])
    (entries[1] / "complete.json").unlink()
    (entries[0].parent / ".game0000.tmp-1-abc").mkdir()
    assert game_pool("tw-treasure_hunter", "train", GAMES, tmp_path, **TREASURE) == paths
    rebuilt = json.loads((entries[0] / "complete.json").read_text())
    # the same seed gives the same game again
    assert rebuilt["seed"] == marker["seed"]
    assert rebuilt["sha256"]["game.json"] == marker["sha256"]["game.json"]
    assert (entries[1] / "complete.json").exists()
    env = TextWorldEnv("train", "tw-treasure_hunter", tmp_path, GAMES, **TREASURE)
    _, info = env.reset(seed=0, options={"game": 0})
    assert follow_expert(env, info, 100)[0]


def test_cache_key_separates_settings(cache: Path) -> None:
    cooking = {p.parent.parent for p in game_pool("tw-cooking", "train", GAMES, cache, **COOKING)}
    test = {p.parent.parent for p in game_pool("tw-cooking", "test", GAMES, cache, **COOKING)}
    assert len(cooking) == len(test) == 1 and cooking != test
    assert all("tw1.7.0" in p.name for p in cooking | test)


def test_test_recipes_are_not_train_recipes(cache: Path) -> None:
    def ingredients(split: str) -> set[tuple[str, ...]]:
        found = set()
        for path in game_pool("tw-cooking", split, GAMES, cache, **COOKING):
            meta = json.loads(path.with_suffix(".json").read_text())["metadata"]
            found |= {tuple(i) for i in meta["ingredients"]}
        return found

    train, test = ingredients("train"), ingredients("test")
    assert train and test and not train & test


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"challenge": "tw-nope"}, "unknown challenge"),
        ({"split": "valid"}, "unknown split"),
        ({"recipe": 0}, "recipe must be 1-5"),
        ({"recipe": 1, "take": 2}, "take must be"),
        ({"go": 5}, "go .rooms. must be"),
        ({"cut": "yes"}, "cut must be a bool"),
        ({"drop": True}, "drop=True is not supported"),
        ({"level": 3}, "unknown difficulty setting"),
        ({"games": 0}, "games must be a positive int"),
        ({"challenge": "tw-treasure_hunter", "level": 31}, "level must be an int in 1-30"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        TextWorldEnv(cache_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing generated for a refused configuration


def test_cooking_goal_carries_the_games_recipe(cache: Path) -> None:
    env = _make("earlyexp/Cooking-v0", cache, split="test")
    obs, _ = env.reset(seed=0)
    meta = env.unwrapped._game.metadata
    assert obs["goal"].startswith("You are hungry!")
    assert " Recipe: ingredients: " in obs["goal"]
    for food, _, _ in meta["ingredients"]:
        assert food in obs["goal"]
    assert obs["goal"].endswith("prepare meal.")
    # The treasure hunter has no recipe: its goal is TextWorld's objective alone.
    hunter = _make("earlyexp/TreasureHunter-v0", cache)
    goal = hunter.reset(seed=0)[0]["goal"]
    assert "Recipe" not in goal and goal == " ".join(hunter.unwrapped._game.objective.split())

"""Tests of the TextWorld adapter (earlyexp/Cooking-v0, earlyexp/TreasureHunter-v0).

One session-scoped cache holds tiny pools (a few games per split, the smallest
difficulties) generated once with the real TextWorld generator and compiler.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

import envs
from envs.textworld_games import TextWorldEnv, game_pool
from tests.envs.textworld_pools import CASES, COOKING, GAMES, TREASURE, pool_kwargs


@pytest.fixture
def cache(textworld_cache: Path) -> Path:
    return textworld_cache


def _make(env_id: str, cache: Path, split: str = "train") -> TextWorldEnv:
    return envs.make(env_id, split=split, **pool_kwargs(env_id, cache))


def _follow_expert(env, info: dict, cap: int = 100) -> tuple[bool, int]:
    for n in range(1, cap + 1):
        action = env.unwrapped.expert_action()
        assert action in info["admissible_actions"], (action, info["admissible_actions"])
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return bool(reward == 1.0 and info["success"] and all(info["checklist"].values())), n
    return False, cap


@pytest.mark.parametrize("env_id", list(CASES))
@pytest.mark.parametrize("split", envs.SPLITS)
def test_expert_solves_every_game_and_after_random_steps(
    env_id: str, split: str, cache: Path
) -> None:
    env = _make(env_id, cache, split)
    for game in range(GAMES):
        _, info = env.reset(seed=game, options={"game": game})
        assert not info["success"] and not any(info["checklist"].values())
        solved, _ = _follow_expert(env, info)
        assert solved, (split, game)
        # off the expert's path: random admissible commands first, then the expert
        rng = random.Random(game)
        for walk in (4, 12):
            _, info = env.reset(seed=game, options={"game": game})
            for _ in range(walk):
                _, _, terminated, _, info = env.step(rng.choice(info["admissible_actions"]))
                if terminated:
                    break
            if not terminated:
                assert _follow_expert(env, info)[0], (split, game, walk)


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
    assert _follow_expert(env, info)[0]


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


def test_snapshot_not_corrupted_by_later_steps(cache: Path) -> None:
    env = _make("earlyexp/Cooking-v0", cache)
    other = _make("earlyexp/Cooking-v0", cache)
    other.reset(seed=5)
    _, info = env.reset(seed=1)
    env.step(env.unwrapped.expert_action())
    snap = env.unwrapped.get_state()
    plan = [env.unwrapped.expert_action()]
    first = [env.step(plan[0])]
    while not first[-1][2]:
        plan.append(env.unwrapped.expert_action())
        first.append(env.step(plan[-1]))
    for target in (env, other):
        target.unwrapped.set_state(snap)
        assert [target.step(a) for a in plan] == first


def test_inadmissible_command_changes_nothing(cache: Path) -> None:
    env = _make("earlyexp/TreasureHunter-v0", cache)
    _, info = env.reset(seed=2)
    expected = env.step(env.unwrapped.expert_action())
    _, info = env.reset(seed=2)
    for command in ("fly to the moon", "take unicorn", "eat the house"):
        obs, reward, terminated, truncated, step_info = env.step(command)
        assert step_info["invalid_action"] and reward == 0.0 and not terminated
        assert "not available" in obs["text"]
        assert step_info["admissible_actions"] == info["admissible_actions"]
    assert env.step(env.unwrapped.expert_action()) == expected
    for bad in (0, None, ["look"]):
        with pytest.raises(TypeError, match="text command"):
            env.step(bad)


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

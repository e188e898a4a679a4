"""What a powered study needs of every run: validation episodes kept outside the demo
budget (the same for every budget and learner), and the final evaluation on a setting's
knowledge split; neither changes the hash of a run that does not use it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import tests.envs.toy_env  # noqa: F401 - registers toy/Corridor-v0
from benchmarks import sweep
from learners import get_learner
from learners.data import collect_demos, load_dataset
from learners.evaluate import EVAL_SEED
from learners.imitation import BCConfig, _outside_budget

TINY = {"d_model": 16, "n_layers": 1, "n_heads": 2, "ff_dim": 32}


def _bc(tmp_path: Path, demos: Path, env_id: str, **values) -> dict:
    learner = get_learner("bc")
    config = learner.make_config(
        env_id=env_id,
        demos=str(demos),
        out=str(tmp_path / "run"),
        log_dir=str(tmp_path / "tb"),
        progress=False,
        device="cpu",
        max_updates=4,
        val_every=2,
        eval_episodes=3,
        model=TINY,
        **values,
    )
    return learner.train(config)


def test_validation_is_the_files_first_episodes_outside_every_budget(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    collect_demos("toy/Corridor-v0", 10, path, progress=False)
    dataset = load_dataset(path)
    seeds = [e.seed for e in dataset.episodes]
    for budget in (2, 5):
        config = BCConfig(demos=str(path), episodes=budget, val_episodes=3)
        cut, train, val = _outside_budget(dataset, config)
        assert [e.seed for e in val] == seeds[:3]  # the same for every budget
        assert [e.seed for e in train] == seeds[3 : 3 + budget]
        assert cut.episodes == dataset.episodes[: 3 + budget]  # a prefix: rollout indices hold
    _, train, _ = _outside_budget(dataset, BCConfig(demos=str(path), val_episodes=3))
    assert len(train) == 7  # no budget: the rest of the file
    with pytest.raises(ValueError, match="cannot hold 3 validation episodes and a budget of 8"):
        _outside_budget(dataset, BCConfig(demos=str(path), episodes=8, val_episodes=3))

    metrics = _bc(tmp_path, path, "toy/Corridor-v0", episodes=4, val_episodes=3)
    assert (metrics["demo_episodes"], metrics["val_episodes"]) == (4, 3)
    assert metrics["demo_steps"] == sum(len(e.steps) for e in dataset.episodes[3:7])


def test_the_final_evaluation_can_be_the_knowledge_split(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    collect_demos("earlyexp/Lab-v0", 3, path, progress=False)
    metrics = _bc(tmp_path, path, "earlyexp/Lab-v0", eval_split="novel")
    assert metrics["eval_split"] == "novel"
    assert metrics["eval"]["greedy"]["episodes"] == 3
    with pytest.raises(ValueError, match="unknown eval_split 'train'"):
        BCConfig(eval_split="train")


def test_a_setting_without_a_knowledge_split_says_so(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    collect_demos("toy/Corridor-v0", 3, path, progress=False)
    with pytest.raises(ValueError, match="novel"):
        _bc(tmp_path, path, "toy/Corridor-v0", eval_split="novel")
    assert (tmp_path / "run" / "agent.pt").exists()  # the trained agent is kept


def test_default_study_options_leave_run_hashes_unchanged() -> None:
    smoke = sweep.PROFILES["smoke"]
    plain = sweep.run_spec(smoke, "earlyexp/Household-v0", "bc", 0, 1.0)
    assert not {"eval_split", "val_episodes"} & set(plain["config"])
    study = sweep.customize(smoke, values=["val_episodes=5", "eval_split=novel"])
    spec = sweep.run_spec(study, "earlyexp/Household-v0", "bc", 0, 1.0)
    assert (spec["config"]["val_episodes"], spec["config"]["eval_split"]) == (5, "novel")


def test_tuning_instances_are_apart_from_the_studys() -> None:
    assert BCConfig().eval_seed == EVAL_SEED  # the default is evaluate's own
    smoke = sweep.PROFILES["smoke"]
    assert "demo_seed" not in sweep.run_spec(smoke, "earlyexp/Household-v0", "bc", 0, 1.0)
    tune = replace(smoke, demo_seed=100_000, config={**smoke.config, "eval_seed": 20_000})
    spec = sweep.run_spec(tune, "earlyexp/Household-v0", "bc", 0, 1.0)
    assert (spec["demo_seed"], spec["config"]["eval_seed"]) == (100_000, 20_000)


def test_the_study_profiles_pair_every_arm_and_keep_tuning_apart() -> None:
    study, novel, tune = (sweep.PROFILES[n] for n in ("study", "study-novel", "study-tune"))
    for profile in (study, novel):
        first, second = sweep.plan(profile, list(profile.settings), list(profile.learners))
        assert not second and len(first) == len(profile.settings) * 8 * 2 * 10
        assert [sweep.episodes_at(profile, b) for b in profile.budgets] == [25, 50]
        for spec in first:
            assert (spec["config"]["val_episodes"], spec["config"]["eval_episodes"]) == (10, 200)
    household = sweep.run_spec(novel, "earlyexp/Household-v0", "sr", 0, 1.0)
    assert household["env_kwargs"] == {"knowledge": True}
    assert household["config"]["eval_split"] == "novel"
    assert (
        "eval_split" not in sweep.run_spec(study, "earlyexp/Household-v0", "bc", 0, 1.0)["config"]
    )
    # tuning: other seeds, other demo instances, other test instances than the study's
    assert not set(tune.seeds) & set(study.seeds)
    assert tune.demo_seed >= novel.full_budget + 10  # past the study's demo instances
    assert tune.config["eval_seed"] >= EVAL_SEED + novel.config["eval_episodes"]
    assert set(tune.learners) - {"bc"} == set(sweep.EARLY_EXPERIENCE)

"""The throughput benchmark measures what it says (tiny budgets; no speed asserted here)."""

from __future__ import annotations

from agents import ModelConfig
from benchmarks.throughput import (
    ENGINE_BASELINES,
    engine_table,
    markdown_table,
    measure_bc_samples,
    measure_engine_overhead,
    measure_env_steps,
    measure_lm,
    measure_rl_steps,
    measure_update_cost,
)
from tests.learners.lm_corridor import CORRIDOR, REQUIRES_LM


def test_env_steps_table() -> None:
    result = measure_env_steps("earlyexp/Household-v0", steps=200, repeats=2)
    assert result["unwrapped_sps"] > 0 and result["wrapped_sps"] > 0
    assert len(result["unwrapped_runs"]) == 2
    table = markdown_table([result, {"env_id": "x/Broken-v0", "error": "ValueError"}])
    assert "earlyexp/Household-v0" in table and "failed: ValueError" in table


def test_every_third_party_setting_has_a_raw_baseline() -> None:
    assert set(ENGINE_BASELINES) == {
        "earlyexp/BabyAI-v0",
        "earlyexp/DoorKey-v0",
        "earlyexp/Cooking-v0",
        "earlyexp/TreasureHunter-v0",
    }


def test_engine_overhead_on_minigrid() -> None:
    result = measure_engine_overhead("earlyexp/DoorKey-v0", steps=200, repeats=1)
    assert result["raw_sps"] > 0 and result["adapter_sps"] > 0
    assert result["overhead"] == result["raw_sps"] / result["adapter_sps"] - 1
    assert "MiniGrid-DoorKey-6x6-v0" in engine_table([result])


def test_bc_samples_per_second() -> None:
    result = measure_bc_samples("earlyexp/Household-v0", updates=3, repeats=2, demos=3)
    assert result["samples_per_second"] > 0 and len(result["runs"]) == 2


def test_update_cost_of_the_early_experience_learners() -> None:
    result = measure_update_cost("earlyexp/Household-v0", demos=3, updates=4, repeats=2)
    seconds, ratio = result["seconds_per_update"], result["ratio_to_bc"]
    assert all(len(runs) == 2 for runs in result["runs"].values())
    assert ratio["bc"] == 1.0 and ratio["iwm-joint"] == seconds["iwm-joint"] / seconds["bc"]
    # iwm-joint's update is BC's and a world-model update: more work than BC's alone
    assert seconds["iwm-joint"] > seconds["bc"] > 0 and seconds["world-model stage"] > 0


def test_rl_env_steps_per_second() -> None:
    tiny = ModelConfig(d_model=32, n_heads=2, n_layers=1, ff_dim=64)
    result = measure_rl_steps(
        "earlyexp/Household-v0",
        steps=64,
        repeats=2,
        n_steps=32,
        n_envs=4,
        batch_size=16,
        model=tiny,
    )
    assert result["env_steps_per_second"] > 0 and len(result["runs"]) == 2
    assert result["n_envs"] == 4


@REQUIRES_LM
def test_language_model_tokens_and_decisions_per_second() -> None:
    result = measure_lm(CORRIDOR, "tiny", "cpu", demos=2, updates=2, batch_size=4, decisions=4)
    assert result["device"] == "cpu" and result["parameters"] > 0
    assert result["train_tokens_per_second"] > result["train_decisions_per_second"] > 0
    assert result["rank_decisions_per_second"] > 0 and result["generate_decisions_per_second"] > 0
    assert result["rank_decisions_per_second_lockstep"] > 0
    assert result["generate_decisions_per_second_lockstep"] > 0

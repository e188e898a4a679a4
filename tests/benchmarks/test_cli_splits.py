"""The CLI on a knowledge split: collect and evaluate on ``--split novel`` with the env's
``--env-kwargs``; a setting without the split, or bad JSON, is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.cli import main
from learners.data import load_dataset

HOUSEHOLD = "earlyexp/Household-v0"
KNOWLEDGE = ["--env-kwargs", '{"knowledge": true}']


def test_collect_and_eval_on_the_knowledge_split(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    demos, out = tmp_path / "d.jsonl", tmp_path / "bc"
    collect = ["collect", HOUSEHOLD, "--episodes", "4", "--out", str(demos), *KNOWLEDGE]
    assert main(collect) == 0
    dataset = load_dataset(demos)
    assert dataset.env_kwargs == {"knowledge": True} and dataset.split == "train"
    train = ["train", HOUSEHOLD, "--learner", "bc", "--demos", str(demos), "--out", str(out)]
    tiny = ["--max-updates", "2", "--eval-episodes", "0", "--d-model", "16", "--n-heads", "2"]
    assert main([*train, *tiny, "--no-progress", "--log-dir", str(tmp_path / "runs")]) == 0
    capsys.readouterr()
    evaluate = ["eval", str(out / "agent.pt"), "--env", HOUSEHOLD, "--episodes", "3"]
    assert main([*evaluate, "--split", "novel", *KNOWLEDGE, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "novel" and result["expert"]["success_rate"] == 1.0


def test_a_split_or_kwargs_the_env_refuses_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    demos = tmp_path / "d.jsonl"
    # Household's novel split exists only in its knowledge variant
    assert (
        main(["collect", HOUSEHOLD, "--episodes", "2", "--out", str(demos), "--split", "novel"])
        != 0
    )
    assert "knowledge" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["collect", HOUSEHOLD, "--episodes", "2", "--out", str(demos), "--env-kwargs", "[1]"])
    assert "must be a JSON object" in capsys.readouterr().err

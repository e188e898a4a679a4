"""The earlyexp CLI: every command end to end on the toy env, and bad input without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import main
from tests.learners.lm_corridor import REQUIRES_LM

TOY = "tests.envs.toy_env:toy/Corridor-v0"


def test_envs_lists_builtins(capsys: pytest.CaptureFixture) -> None:
    assert main(["envs"]) == 0
    assert "earlyexp/Household-v0" in capsys.readouterr().out


def test_check_passes_on_toy(capsys: pytest.CaptureFixture) -> None:
    assert main(["check", TOY, "--instances", "5"]) == 0
    out = capsys.readouterr().out
    assert "ok  snapshot round trip" in out and "follows the earlyexp env contract" in out


def test_check_takes_make_kwargs(capsys: pytest.CaptureFixture) -> None:
    """Household's knowledge split exists only in its knowledge=True variant."""
    argv = ["check", "earlyexp/Household-v0", "--instances", "2"]
    assert main([*argv, "--env-kwargs", '{"knowledge": true}']) == 0
    assert "knowledge split: the expert solves novel instances" in capsys.readouterr().out
    assert main(argv) == 0
    assert "knowledge split" not in capsys.readouterr().out


def test_collect_train_eval(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    demos, out = tmp_path / "d.jsonl", tmp_path / "bc"
    assert main(["collect", TOY, "--episodes", "10", "--out", str(demos)]) == 0
    assert "expert solved 10/10" in capsys.readouterr().out
    args = ["train", TOY, "--learner", "bc", "--demos", str(demos), "--out", str(out)]
    args += ["--max-updates", "100", "--eval-episodes", "5", "--log-dir", str(tmp_path / "runs")]
    assert main([*args, "--no-progress"]) == 0
    assert "random" in capsys.readouterr().out
    assert main(["eval", str(out / "agent.pt"), "--env", TOY, "--episodes", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 5 and 0.0 <= result["success_rate"] <= 1.0
    assert result["valid_action_rate"] == 1.0 and result["expert"]["success_rate"] == 1.0

    # A policy-model checkpoint has no language-model acting; a checkpoint and a model
    # both, or neither, is a question the command cannot answer.
    for words, message in [
        (["--lm-acting", "generate"], "--lm-acting is a language-model agent's"),
        (["--lm-model", "tiny"], "not both"),
    ]:
        assert main(["eval", str(out / "agent.pt"), "--env", TOY, *words]) == 1
        assert message in capsys.readouterr().err
    assert main(["eval", "--env", TOY]) == 1
    assert "or --lm-model (a language model as it is), not neither" in capsys.readouterr().err


@REQUIRES_LM
def test_eval_plays_a_language_model_as_it_is(capsys: pytest.CaptureFixture) -> None:
    """Zero-shot: the model with no fine-tuning (an untrained tiny one here, a baseline)."""
    words = ["eval", "--lm-model", "tiny", "--env", TOY, "--episodes", "1", "--json"]
    assert main([*words, "--lm-acting", "generate"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lm_model"] == "tiny" and result["checkpoint"] is None
    assert set(result) >= {"greedy", "sampled", "ranked", "random", "expert"}
    assert result["episodes"] == 1 and result["valid_action_rate"] < 1.0  # it writes garbage


def test_play_reads_commands_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    commands = iter(["expert"] * 30)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(commands))
    assert main(["play", TOY, "--seed", "1"]) == 0
    assert "Task complete" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "earlyexp/Nope-v0"], "unknown env id 'earlyexp/Nope-v0'; registered:"),
        (["collect", "nomodule:x/Y-v0", "--episodes", "1", "--out", "x"], "cannot import module"),
        (["train", TOY, "--learner", "bc", "--demos", "missing.jsonl"], "no such dataset file"),
        (["eval", "missing.pt", "--env", TOY], "missing.pt"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """In this process (a real one for one case below: each costs seconds of imports)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EARLYEXP_DEBUG", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_input_in_a_real_process_is_one_line(tmp_path: Path) -> None:
    """``python -m benchmarks.cli`` in a bare environment: the exit code, and nothing else on
    stderr (no warning, no traceback) than the one line."""
    argv, message = ["collect", "nomodule:x/Y-v0", "--episodes", "1", "--out", "x"], "cannot import"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_nonzero(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["collect", TOY, "--episodes", "0", "--out", "x"])
    assert excinfo.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_train_dagger(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    demos, out = tmp_path / "d.jsonl", tmp_path / "dagger"
    assert main(["collect", TOY, "--episodes", "6", "--out", str(demos)]) == 0
    args = ["train", TOY, "--learner", "dagger", "--demos", str(demos), "--out", str(out)]
    args += ["--max-updates", "40", "--iterations", "1", "--rollouts", "3", "--eval-episodes", "3"]
    assert main([*args, "--log-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    assert "trained dagger" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["learner"] == "dagger"


def test_rollouts_then_train_iwm(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    demos, rollouts, out = tmp_path / "d.jsonl", tmp_path / "r.jsonl", tmp_path / "iwm"
    assert main(["collect", TOY, "--episodes", "6", "--out", str(demos)]) == 0
    assert main(["rollouts", TOY, "--demos", str(demos), "--out", str(rollouts), "--k", "all"]) == 0
    assert "alternative transitions" in capsys.readouterr().out
    args = ["train", TOY, "--learner", "iwm", "--demos", str(demos), "--out", str(out)]
    args += ["--rollout-file", str(rollouts), "--max-updates", "40", "--wm-updates", "20"]
    assert main([*args, "--eval-episodes", "3", "--log-dir", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert "trained iwm on toy/Corridor-v0" in printed
    assert "wm_val_f1" in printed and "wm_copy_f1" in printed  # beside copying's F1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["budget"] == "matched" and metrics["updates"] <= 40


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--learner", "bc", "--iterations", "2"], "--iterations: not a flag of --learner bc"),
        (["--learner", "iwm", "--budget", "most"], "unknown budget 'most'"),
    ],
)
def test_train_refuses_flags_of_other_learners(argv, message, capsys) -> None:
    assert main(["train", TOY, "--demos", "x.jsonl", *argv]) == 1
    assert message in capsys.readouterr().err


def test_rollouts_k_must_be_positive_or_all(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["rollouts", TOY, "--demos", "d", "--out", "o", "--k", "0"])
    assert "k must be a positive integer or 'all'" in capsys.readouterr().err


def test_train_rl_from_scratch_and_from_bc(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    demos, bc, rl = tmp_path / "d.jsonl", tmp_path / "bc", tmp_path / "rl"
    assert main(["collect", TOY, "--episodes", "6", "--out", str(demos)]) == 0
    common = ["--eval-episodes", "3", "--log-dir", str(tmp_path / "runs"), "--no-progress"]
    args = ["train", TOY, "--learner", "bc", "--demos", str(demos), "--out", str(bc)]
    assert main([*args, "--max-updates", "30", *common]) == 0
    rl_args = ["train", TOY, "--learner", "rl", "--steps", "128", "--n-steps", "64"]
    rl_args += ["--eval-every", "64", *common]
    assert main([*rl_args, "--out", str(rl / "scratch")]) == 0
    printed = capsys.readouterr().out
    assert "trained rl on toy/Corridor-v0" in printed and "env_steps 128" in printed
    assert "init_from" not in printed  # from scratch
    assert main([*rl_args, "--out", str(rl / "warm"), "--init-from", str(bc / "agent.pt")]) == 0
    assert f"init_from {bc / 'agent.pt'}" in capsys.readouterr().out
    assert main(["eval", str(rl / "warm" / "agent.pt"), "--env", TOY, "--episodes", "3"]) == 0
    assert main([*rl_args, "--out", str(rl / "x"), "--demos", str(demos)]) == 1
    assert "--demos: not a flag of --learner rl" in capsys.readouterr().err


def test_report_refuses_a_baseline_without_runs(tmp_path: Path, capsys) -> None:
    fixture = Path(__file__).parent / "fixtures" / "report_results.jsonl"
    (tmp_path / "results.jsonl").write_bytes(fixture.read_bytes())
    assert main(["report", str(tmp_path), "--baseline", "bc-typo"]) == 1
    err = capsys.readouterr().err
    assert "'bc-typo' has no runs in" in err and "learners with runs: " in err
    assert not (tmp_path / "report.md").exists()

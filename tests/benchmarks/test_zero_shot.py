"""The zero-shot benchmark: its chunks add up to one evaluation of every episode, a rerun
resumes instead of redoing, and the table counts what ran (tiny LM, toy corridor)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agents.lm import new_lm_agent
from benchmarks.results import read_results
from benchmarks.zero_shot import POLICIES, main, run, summary
from learners.evaluate import AgentPolicy, evaluate, evaluate_expert
from tests.learners.lm_corridor import CORRIDOR, REQUIRES_LM, TINY

#: Untrained, it writes gibberish until the token limit: keep that short.
MODEL = replace(TINY, max_command_tokens=6)


@REQUIRES_LM
def test_chunks_add_up_to_one_evaluation_and_a_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "zero-shot.jsonl"
    rows = run(MODEL, [CORRIDOR], out, episodes=3, chunk=2, seed=40, progress=False)
    assert len(rows) == 2 * len(POLICIES)  # episodes 0-1 and 2 of each policy
    assert {(r["policy"], r["first"], r["episodes"]) for r in rows} == {
        (policy, first, n) for policy in POLICIES for first, n in ((40, 2), (42, 1))
    }
    # the ranking chunks are the same agent's one evaluation of all 3 episodes
    agent = new_lm_agent(MODEL, seed=0, env_id=CORRIDOR)
    whole = evaluate(AgentPolicy(agent, True, 40), CORRIDOR, episodes=3, seed=40)
    ranked = [r for r in rows if r["policy"] == "rank"]
    assert sum(r["successes"] for r in ranked) == round(whole.success_rate * 3)
    assert sum(r["steps"] for r in ranked) == round(whole.mean_episode_length * 3)
    expert = evaluate_expert(CORRIDOR, episodes=3, seed=40)
    assert expert.success_rate == 1.0
    assert sum(r["successes"] for r in rows if r["policy"] == "expert") == 3
    # a rerun finds every chunk done and adds nothing
    before = out.read_bytes()
    assert run(MODEL, [CORRIDOR], out, episodes=3, chunk=2, seed=40, progress=False) == rows
    assert out.read_bytes() == before
    # one more episode: episodes 2-3 are a new chunk; the old chunk of episode 2 alone
    # stays in the file and is not counted twice
    rows = run(MODEL, [CORRIDOR], out, episodes=4, chunk=2, seed=40, progress=False)
    assert [(r["first"], r["episodes"]) for r in rows if r["policy"] == "expert"] == [
        (40, 2),
        (42, 2),
    ]
    assert len(read_results(out).rows) == 3 * len(POLICIES)
    table = summary(rows, "tiny")
    assert f"| {CORRIDOR} | expert | 4 | 1.00 [" in table
    assert table.count(f"| {CORRIDOR} |") == len(POLICIES)


def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "z.jsonl"
    assert main(["--envs", "toy/Nowhere-v0", "--out", str(out)]) == 1
    assert "zero_shot: error: unknown env id 'toy/Nowhere-v0'" in capsys.readouterr().err
    assert main(["--chunk", "0", "--out", str(out)]) == 1
    assert "chunk must be at least 1" in capsys.readouterr().err
    out.write_text("not json\n{}\n")
    assert main(["--out", str(out), "--model", "tiny"]) == 1
    assert "line 1 is not a result row" in capsys.readouterr().err

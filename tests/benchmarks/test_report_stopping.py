"""A results row's own ``hit_cap`` decides whether the run converged; older rows infer it."""

from __future__ import annotations

import pytest

from benchmarks.report.rows import CAPPED, CONVERGED, ImitationRow, MalformedRow

ROW = {
    "hash": "h",
    "kind": "imitation",
    "env_id": "earlyexp/Household-v0",
    "learner": "bc",
    "budget": 1.0,
    "seed": 0,
    "success": 0.5,
    "updates": 128,
    "config": {"config": {"max_updates": 128, "val_every": 25, "patience": 4}},
}


def test_the_row_says_how_training_ended() -> None:
    assert ImitationRow.from_dict(ROW).stopping == CAPPED  # inferred: updates == the cap
    # a run that recorded early stopping at its cap (patience ran out there) converged
    assert ImitationRow.from_dict({**ROW, "hit_cap": False}).stopping == CONVERGED
    assert ImitationRow.from_dict({**ROW, "updates": 100, "hit_cap": True}).stopping == CAPPED


def test_a_damaged_hit_cap_is_refused() -> None:
    with pytest.raises(MalformedRow, match="hit_cap"):
        ImitationRow.from_dict({**ROW, "hit_cap": "yes"})

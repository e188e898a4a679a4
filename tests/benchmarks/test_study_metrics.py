"""docs/benchmark/study/metrics.py: a run's record comes from its row, its run directory,
or an earlier collection, and a later collection loses none of them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from benchmarks.results import RESULTS_FILE, append_result

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "benchmark" / "study" / "metrics.py"


def _metrics_module():
    spec = importlib.util.spec_from_file_location("study_metrics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(hash_: str, learner: str, **extra) -> dict:
    return {
        "hash": hash_,
        "env_id": "earlyexp/Household-v0",
        "learner": learner,
        "budget": 0.5,
        "config": {"config": {"batch_size": 32}},
        **extra,
    }


def _record(samples_per_second: float, **extra) -> dict:
    return {"samples_per_second": samples_per_second, **extra}


def test_records_survive_their_run_directories(tmp_path: Path, capsys) -> None:
    metrics = _metrics_module()
    results, out = tmp_path / "results", tmp_path / "out"
    out.mkdir()
    append_result(results / RESULTS_FILE, _row("a", "bc", metrics=_record(320.0)))
    append_result(results / RESULTS_FILE, _row("b", "iwm-joint"))
    append_result(results / RESULTS_FILE, _row("c", "iwm-joint"))
    append_result(results / RESULTS_FILE, _row("d", "iwm-joint"))  # no record anywhere
    run_dir = results / "runs" / "b"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(_record(160.0, eval={"greedy": {}})))

    metrics.main(results, out)
    first = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["hash"] for r in first] == ["a", "b"]
    assert "eval" not in first[1]["metrics"]

    # The run directory is gone (a new machine); c's record came from an earlier collection.
    (run_dir / "metrics.json").unlink()
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"hash": "c", "metrics": _record(80.0)}) + "\n")
    capsys.readouterr()
    metrics.main(results, out)
    again = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["hash"] for r in again] == ["a", "b", "c"]
    assert again[1]["metrics"] == first[1]["metrics"]
    assert not list(out.glob("*.partial"))
    # bc: 32 / 320 = 0.1 s/update; iwm-joint: the median of 0.2 and 0.4, 3x bc's
    (joint,) = [line for line in capsys.readouterr().out.splitlines() if "iwm-joint" in line]
    assert joint.startswith("| iwm-joint | 0.5 | 2 |") and "| 0.300 (3.0x) |" in joint

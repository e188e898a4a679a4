"""The sweep's results file: append, resume, torn tails, damaged files."""

from __future__ import annotations

import json

import pytest

from benchmarks.results import append_result, config_hash, read_results


def test_config_hash_ignores_key_order_and_sees_values() -> None:
    assert config_hash({"a": 1, "b": [2, 3]}) == config_hash({"b": [2, 3], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_append_then_read(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    assert read_results(path).rows == []
    for i in range(3):
        append_result(path, {"hash": config_hash({"i": i}), "success": i / 10})
    results = read_results(path)
    assert [row["success"] for row in results.rows] == [0.0, 0.1, 0.2]
    assert results.done() == {config_hash({"i": i}) for i in range(3)}
    assert not results.torn_tail and results.problems == []


def test_torn_tail_is_reported_then_cut_by_the_next_append(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    append_result(path, {"hash": "a", "x": 1})
    with path.open("ab") as f:
        f.write(b'{"hash": "b", "x"')  # a run killed mid-write
    results = read_results(path)
    assert [row["hash"] for row in results.rows] == ["a"]
    assert results.torn_tail and "torn" in results.problems[0]
    append_result(path, {"hash": "c", "x": 3})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["hash"] for line in lines] == ["a", "c"]
    assert not read_results(path).torn_tail


def test_damaged_middle_line_is_an_error_naming_it(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"hash": "a"}\nnot json\n{"hash": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_results(path)
    path.write_text('{"hash": "a"}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2 is not a result row"):
        read_results(path)


def test_a_row_without_hash_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="hash"):
        append_result(tmp_path / "r.jsonl", {"x": 1})

"""Expert datasets: collection, round trip, and every way a file can be wrong."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import tests.envs.toy_env  # noqa: F401 - registers toy/Corridor-v0
from learners.data import DatasetError, collect_demos, load_dataset

TOY = "toy/Corridor-v0"


@pytest.fixture
def demos(tmp_path: Path) -> Path:
    path = tmp_path / "demos.jsonl"
    collect_demos(TOY, 6, path, seed=3, progress=False)
    return path


def test_collect_round_trips(demos: Path) -> None:
    dataset = load_dataset(demos, env_id=TOY)
    assert dataset.env_id == TOY and dataset.split == "train"
    assert [e.seed for e in dataset.episodes] == [3, 4, 5, 6, 7, 8]
    assert all(e.success for e in dataset.episodes)
    first = dataset.episodes[0]
    assert first.steps[-1].action == "open door"
    assert first.final_text == "You open the door."
    assert dataset.subset(2).episodes == dataset.episodes[:2]


def test_collection_is_deterministic(tmp_path: Path, demos: Path) -> None:
    again = tmp_path / "again.jsonl"
    collect_demos(TOY, 6, again, seed=3, progress=False)
    assert again.read_bytes() == demos.read_bytes()


def test_refuses_other_env(demos: Path) -> None:
    with pytest.raises(DatasetError, match="from 'toy/Corridor-v0', not 'earlyexp/Household-v0'"):
        load_dataset(demos, env_id="earlyexp/Household-v0")


def _rewrite(path: Path, edit, reseal: bool = True) -> None:
    """Apply ``edit`` to the lines; with ``reseal``, give the footer the checksum of the edited
    lines, so the checks behind the checksum (what another tool could write) are reached."""
    lines = edit(path.read_text().splitlines(keepends=True))
    if reseal and lines and lines[-1].endswith("\n") and '"end": true' in lines[-1]:
        footer = json.loads(lines[-1])
        footer["sha256"] = hashlib.sha256("".join(lines[:-1]).encode()).hexdigest()
        lines[-1] = json.dumps(footer) + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda lines: lines[:-1], "no end-of-file record"),
        (lambda lines: lines[:3] + [lines[3][: len(lines[3]) // 2]], "cut off"),
        (lambda lines: lines[:2] + lines[3:], "promises 6 episodes"),
        (lambda lines: [lines[0], "{not json\n", *lines[2:]], "not valid JSON"),
        (
            lambda lines: [lines[0].replace("earlyexp-demos", "other"), *lines[1:]],
            "not an earlyexp demos",
        ),
        (lambda lines: [lines[0].replace('"version": 2', '"version": 9'), *lines[1:]], "version 9"),
        (
            lambda lines: [
                lines[0],
                lines[1].replace('"action": "open door"', '"action": "fly"'),
                *lines[2:],
            ],
            "not among",
        ),
        (lambda lines: [lines[0], json.dumps({"seed": 1}) + "\n", *lines[2:]], "not an episode"),
        (lambda lines: [], "empty"),
    ],
)
def test_refuses_corrupt_files(demos: Path, edit, reason: str) -> None:
    _rewrite(demos, edit)
    with pytest.raises(DatasetError, match=reason) as excinfo:
        load_dataset(demos)
    assert str(demos) in str(excinfo.value)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda lines: [lines[0], lines[1].replace("open door", "open doom"), *lines[2:]],
            "checksum",
        ),
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], "checksum"),
        (lambda lines: [*lines, lines[1]], "line 9 comes after the end-of-file record"),
        (lambda lines: [*lines, "\n"], "line 9 comes after the end-of-file record"),
    ],
    ids=["one-letter", "swapped-lines", "appended-line", "appended-newline"],
)
def test_refuses_edited_files(demos: Path, edit, reason: str) -> None:
    _rewrite(demos, edit, reseal=False)
    with pytest.raises(DatasetError, match=reason) as excinfo:
        load_dataset(demos)
    assert str(demos) in str(excinfo.value)


def test_refuses_an_older_version_with_what_to_do(demos: Path) -> None:
    _rewrite(demos, lambda lines: [lines[0].replace('"version": 2', '"version": 1'), *lines[1:]])
    with pytest.raises(
        DatasetError, match="version 1; this earlyexp reads version 2; collect it again"
    ):
        load_dataset(demos)


def test_refuses_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset file"):
        load_dataset(tmp_path / "nope.jsonl")
    binary = tmp_path / "x.jsonl"
    binary.write_bytes(b"\x80\x81\xff\n")
    with pytest.raises(DatasetError, match="not a text file"):
        load_dataset(binary)


def test_failed_write_leaves_old_file(demos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = demos.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr("learners.data.run_expert_episode", boom)
    with pytest.raises(RuntimeError):
        collect_demos(TOY, 2, demos, progress=False)
    assert demos.read_bytes() == before
    assert [p.name for p in demos.parent.iterdir()] == [demos.name]

"""The README's examples run as written: "Register your own env" and "Add your own learner"."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from envs import check_env

README = Path(__file__).parents[1] / "README.md"


def test_readme_user_env_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if b.startswith("# mypkg/lights.py"))
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lights.py").write_text(example)
    monkeypatch.syspath_prepend(str(tmp_path))
    passed = check_env("mypkg.lights:mypkg/Lights-v0", instances=10)
    assert "test instances are not train instances" in passed
    sys.modules.pop("mypkg.lights", None)


def test_readme_user_learner_example(tmp_path: Path) -> None:
    """The "Add your own learner" example, verbatim, in a module outside the package, through
    the installed console script from the module's directory (as a user runs it). The bash
    block's commands run as written, with flags appended that shrink their budgets."""
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    example = next(b for b in blocks if b.startswith("# mypkg/mylearner.py"))
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mylearner.py").write_text(example)
    section = text.split("## Add your own learner", 1)[1]
    commands = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0].strip().splitlines()
    shrink = {
        "collect": ["--episodes", "6"],
        "train": ["--max-updates", "20", "--val-every", "5", "--eval-episodes", "3"],
        "train_model": ["--d-model", "32", "--n-layers", "1", "--ff-dim", "64"],
        "bench": ["--jobs", "1", "--reps", "100", "--poi-reps", "20"],
        "report": ["--reps", "100", "--poi-reps", "20"],
    }
    script = Path(sys.executable).with_name("earlyexp")
    outputs = []
    for line in commands:
        words = shlex.split(line)
        assert words[0] == "earlyexp", line
        extra = shrink.get(words[1], [])
        if words[1] == "train":
            extra = extra + shrink["train_model"]
        result = subprocess.run(
            [str(script), *words[1:], *extra],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": ""},
            timeout=600,
        )
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
        outputs.append(result.stdout)
    assert "trained mypkg.mylearner:bc-entropy on earlyexp/Household-v0" in outputs[1]
    metrics = json.loads((tmp_path / "runs" / "bc-entropy" / "metrics.json").read_text())
    assert metrics["learner"] == "mypkg.mylearner:bc-entropy" and "eval" in metrics
    rows = [json.loads(line) for line in (tmp_path / "results/mine/results.jsonl").open()]
    learners = {row["learner"] for row in rows}
    assert learners == {"bc", "mypkg.mylearner:bc-entropy"}
    report = (tmp_path / "results/mine/report.md").read_text()
    assert "mypkg.mylearner:bc-entropy" in report
    # the lifecycle named its TensorBoard run after the learner (colon made path-safe)
    logged = [p.name for p in (tmp_path / "runs").iterdir()]
    assert any("__mypkg.mylearner_bc-entropy__0__" in name for name in logged), logged


def test_readme_user_env_example_through_the_console_script(tmp_path: Path) -> None:
    """The console script, unlike ``python -m``, does not put the current directory on
    sys.path by itself: ``module:id`` must still import ``mypkg`` from where the user is."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if b.startswith("# mypkg/lights.py"))
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "lights.py").write_text(example)
    section = README.read_text().split("## Register your own env", 1)[1]
    commands = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0].strip().splitlines()
    script = Path(sys.executable).with_name("earlyexp")
    for line in commands:
        words = shlex.split(line)
        env = {**os.environ, "PYTHONPATH": ""}
        result = subprocess.run(
            [str(script), *words[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
        assert "\r" not in result.stderr  # not a terminal: progress as plain lines
    assert (tmp_path / "lights.jsonl").exists()


def test_readme_study_table_is_the_reports() -> None:
    """The study's result table in the README is what docs/benchmark/study/table.py prints
    from the committed report files, row for row."""
    root = README.parent
    done = subprocess.run(
        [
            sys.executable,
            str(root / "docs/benchmark/study/table.py"),
            str(root / "docs/benchmark/study"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith("| `") or "**`" in line]
    assert len(rows) == 8
    text = README.read_text()
    for row in rows:
        assert row in text, row

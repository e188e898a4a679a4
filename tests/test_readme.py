"""The README's "register your own env" example runs and passes check_env as written."""

from __future__ import annotations

import re
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

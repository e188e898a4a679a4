"""Crash safety: real processes killed mid-collection, mid-training and mid-write leave the old
file, the new complete one, or a clearly named temp file beside it; damaged files are refused
with their path and the reason.

The unit tests of ``atomic_write`` (tests/agents/test_agent.py, tests/learners/test_data.py)
interrupt a write from inside with an exception, which runs its cleanup. Here the processes
get SIGKILL, which runs nothing: what is left on disk is what a real crash leaves.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import Agent, AgentConfig, ModelConfig
from agents.files import seal
from benchmarks.cli import main
from learners.data import DatasetError, collect_demos, load_dataset
from learners.rollouts import collect_rollouts, load_rollouts

ROOT = Path(__file__).resolve().parents[2]
HOUSEHOLD = "earlyexp/Household-v0"
SMALL = AgentConfig(ModelConfig(d_model=32, n_layers=1, ff_dim=64))
MIDWRITE = "EARLYEXP-TEST-MIDWRITE"

# Runs the CLI with agents.files' temp file for KILL_TARGET wrapped: after KILL_AT bytes it
# writes up to exactly that byte, fsyncs, says MIDWRITE and hangs, so the test can SIGKILL it
# halfway through a real atomic_write. Only agents.files sees the wrapped os/tempfile.
HARNESS = textwrap.dedent(
    f"""
    import os, sys, tempfile, time, types
    import agents.files

    target, stop_at = os.environ["KILL_TARGET"], int(os.environ["KILL_AT"])
    temps = set()

    def mkstemp(*args, **kwargs):
        fd, name = tempfile.mkstemp(*args, **kwargs)
        if os.path.basename(name).startswith("." + target + "."):
            temps.add(fd)
        return fd, name

    class Torn:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, data):
            if self.n + len(data) >= stop_at:
                self.f.write(data[: stop_at - self.n])
                self.f.flush()
                os.fsync(self.f.fileno())
                print("{MIDWRITE}", flush=True)
                time.sleep(3600)  # until the test kills it
            self.n += len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def fdopen(fd, *args, **kwargs):
        f = os.fdopen(fd, *args, **kwargs)
        return Torn(f) if fd in temps else f

    agents.files.tempfile = types.SimpleNamespace(mkstemp=mkstemp)
    agents.files.os = types.SimpleNamespace(**{{**vars(os), "fdopen": fdopen}})
    from benchmarks.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


# -- helpers -------------------------------------------------------------------------------
def _start(argv: list[str], log: Path, **env: str) -> subprocess.Popen:
    """``python argv...`` in its own session, one torch thread (several run at once on few
    cores), stdout and stderr to ``log``."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _kill_when(
    processes: list[subprocess.Popen], triggers: list[Callable[[], bool]], timeout: float
) -> list[bool]:
    """SIGKILL each process as soon as its trigger fires; True for those killed, False for
    those that exited first."""
    deadline = time.monotonic() + timeout
    killed: dict[int, bool] = {}
    try:
        while True:
            for i, (process, trigger) in enumerate(zip(processes, triggers, strict=True)):
                if i in killed:
                    continue
                if trigger():
                    _kill(process)
                    killed[i] = True
                elif process.poll() is not None:
                    killed[i] = False
            if len(killed) == len(processes):
                break
            assert time.monotonic() < deadline, "a process neither finished nor was killed"
            time.sleep(0.001)
    finally:
        for process in processes:
            _kill(process)
    return [killed[i] for i in range(len(processes))]


def _after(seconds: float) -> Callable[[], bool]:
    moment = time.monotonic() + seconds
    return lambda: time.monotonic() >= moment


def _delays(seed: int, low: float, high: float, n: int) -> list[float]:
    """``n`` seeded random kill times, one in each ``n``-th of ``[low, high]`` seconds."""
    edges = np.linspace(low, high, n + 1)
    return np.random.default_rng(seed).uniform(edges[:-1], edges[1:]).tolist()


def _temp_pattern(name: str) -> re.Pattern:
    # atomic_write's temp name: mkstemp(prefix=".<name>.", suffix=".tmp").
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp")


def _temps(directory: Path, name: str) -> list[Path]:
    return sorted(p for p in directory.iterdir() if _temp_pattern(name).fullmatch(p.name))


def _assert_only(directory: Path, names: set[str]) -> None:
    """Everything in ``directory`` is one of ``names`` or a clearly named temp of one."""
    for path in directory.iterdir():
        assert path.name in names or any(_temp_pattern(n).fullmatch(path.name) for n in names), (
            f"{path.name}: neither a known output nor a clearly named temp file"
        )


def _log(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Household demos (6 episodes) and their rollouts (k=2), plus an older, smaller dataset."""
    root = tmp_path_factory.mktemp("crash")
    demos, rollouts, old = root / "demos.jsonl", root / "rollouts.jsonl", root / "old.jsonl"
    dataset = collect_demos(HOUSEHOLD, 6, demos, progress=False)
    collect_rollouts(dataset, demos, rollouts, k=2, progress=False)
    collect_demos(HOUSEHOLD, 3, old, seed=500, progress=False)
    return {"demos": demos, "rollouts": rollouts, "old": old}


# -- kills at moments nobody chose -----------------------------------------------------------
def test_collection_killed_at_random_moments_leaves_old_or_complete_file(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """Four `earlyexp collect` runs: three killed after seeded random delays (from start-up to
    after the end), one killed the moment its temp file appears."""
    episodes, old = 300, data["old"].read_bytes()
    delays = _delays(7, 0.3, 4.5, 3)
    runs = []
    for i in range(4):
        out = tmp_path / f"run{i}"
        out.mkdir()
        dest = out / "demos.jsonl"
        if i % 2 == 0:
            dest.write_bytes(old)  # an older complete dataset the run overwrites
        argv = ["-m", "benchmarks.cli", "collect", HOUSEHOLD, "--episodes", str(episodes)]
        process = _start([*argv, "--out", str(dest)], tmp_path / f"run{i}.log")
        runs.append((process, dest, i % 2 == 0))
    watched = runs[-1][1].parent
    triggers = [_after(d) for d in delays] + [lambda: bool(_temps(watched, "demos.jsonl"))]
    _kill_when([process for process, _, _ in runs], triggers, timeout=120)
    for i, (_, dest, had_old) in enumerate(runs):
        _assert_only(dest.parent, {"demos.jsonl"})
        if not dest.exists():
            assert not had_old, f"run {i}: the old dataset vanished"
        elif dest.read_bytes() != old:
            dataset = load_dataset(dest, env_id=HOUSEHOLD)  # the new file, complete
            assert len(dataset.episodes) == episodes, f"run {i}"
        else:
            assert had_old and len(load_dataset(dest).episodes) == 3


def test_training_killed_at_random_moments_leaves_loadable_files(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """`earlyexp train --learner bc` killed after seeded random delays (start-up, training,
    evaluation or after the end), and killed as its checkpoint's temp file appears:
    agent.pt is absent or loads, metrics.json is absent or complete JSON."""
    delays = _delays(11, 1.5, 7.5, 2)
    runs = []
    for i in range(3):
        out = tmp_path / f"bc{i}"
        argv = ["-m", "benchmarks.cli", "train", HOUSEHOLD, "--learner", "bc"]
        argv += ["--demos", str(data["demos"]), "--out", str(out), "--max-updates", "20"]
        argv += ["--val-every", "10", "--eval-episodes", "2", "--no-progress"]
        argv += ["--log-dir", str(tmp_path / "runs")]
        runs.append((_start(argv, tmp_path / f"bc{i}.log"), out))
    watched = runs[-1][1]
    triggers = [_after(d) for d in delays]
    triggers.append(lambda: watched.is_dir() and bool(_temps(watched, "agent.pt")))
    _kill_when([process for process, _ in runs], triggers, timeout=180)
    for i, (_, out) in enumerate(runs):
        if not out.exists():
            continue  # killed before it saved anything
        _assert_only(out, {"agent.pt", "metrics.json"})
        if (out / "agent.pt").exists():
            assert Agent.load(out / "agent.pt").meta["learner"] == "bc", f"run {i}"
        if (out / "metrics.json").exists():
            metrics = json.loads((out / "metrics.json").read_text())
            assert metrics["learner"] == "bc" and "eval" in metrics, f"run {i}"
            assert (out / "agent.pt").exists(), f"run {i}: metrics without the checkpoint"


# -- kills in the middle of a write ----------------------------------------------------------
def _mid_write_case(name: str, data: dict[str, Path], out: Path) -> tuple[list[str], int]:
    """CLI arguments of a run whose write of ``name`` is torn, and the byte to tear it at."""
    train = ["train", HOUSEHOLD, "--learner", "bc", "--demos", str(data["demos"])]
    train += ["--out", str(out), "--max-updates", "4", "--val-every", "2", "--eval-episodes", "0"]
    train += ["--no-progress", "--log-dir", str(out.parent / "runs")]
    return {
        "demos.jsonl": (
            ["collect", HOUSEHOLD, "--episodes", "40", "--out", str(out / "demos.jsonl")],
            60_000,  # of about 190 kB
        ),
        "rollouts.jsonl": (
            ["rollouts", HOUSEHOLD, "--demos", str(data["demos"]), "--k", "2"]
            + ["--out", str(out / "rollouts.jsonl")],
            9_000,  # of about 26 kB
        ),
        "agent.pt": (train, 100_000),  # of about 3 MB
        "metrics.json": (train, 120),  # of about 500 B
    }[name]


@pytest.mark.parametrize("name", ["demos.jsonl", "rollouts.jsonl", "agent.pt", "metrics.json"])
def test_a_kill_mid_write_leaves_the_old_file_and_a_refused_temp(
    name: str, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv, stop_at = _mid_write_case(name, data, out)
    old = {  # what was there before; None: nothing
        "demos.jsonl": data["old"].read_bytes(),
        "rollouts.jsonl": None,
        "agent.pt": Agent(SMALL, seed=5).save(tmp_path / "old.pt").read_bytes(),
        "metrics.json": None,
    }[name]
    if old is not None:
        (out / name).write_bytes(old)
    log = tmp_path / "run.log"
    process = _start(["-c", HARNESS, *argv], log, KILL_TARGET=name, KILL_AT=str(stop_at))
    (killed,) = _kill_when([process], [lambda: MIDWRITE in _log(log)], timeout=180)
    assert killed, f"the run ended before writing {stop_at} bytes of {name}:\n{_log(log)}"

    dest = out / name
    if old is None:
        assert not dest.exists(), f"{dest} exists although its write never finished"
    else:
        assert dest.read_bytes() == old, f"{dest} is no longer the old file"
    (temp,) = _temps(out, name)  # SIGKILL runs no cleanup: the torn temp file stays
    assert temp.stat().st_size == stop_at
    _assert_only(out, {"demos.jsonl", "rollouts.jsonl", "agent.pt", "metrics.json"})

    # What remains loads (or is refused clearly); the torn temp is never taken for data.
    if name == "demos.jsonl":
        assert len(load_dataset(dest).episodes) == 3
        with pytest.raises(DatasetError, match="truncated") as excinfo:
            load_dataset(temp)
    elif name == "rollouts.jsonl":
        demos = load_dataset(data["demos"])
        with pytest.raises(DatasetError, match="no such rollout file"):
            list(load_rollouts(dest, demos))
        with pytest.raises(DatasetError, match="truncated") as excinfo:
            list(load_rollouts(temp, demos))
    elif name == "agent.pt":
        assert Agent.load(dest).config == SMALL
        assert not (out / "metrics.json").exists()
        with pytest.raises(ValueError, match="not a readable checkpoint") as excinfo:
            Agent.load(temp)
    else:
        assert Agent.load(out / "agent.pt").meta["learner"] == "bc"  # saved before metrics
        with pytest.raises(json.JSONDecodeError) as excinfo:
            json.loads(temp.read_text())
    if name != "metrics.json":
        assert str(temp) in str(excinfo.value)


# -- damaged files ---------------------------------------------------------------------------
def _refused_dataset(path: Path, kind: str, data: dict[str, Path]) -> str:
    with pytest.raises(DatasetError) as excinfo:
        if kind == "demos":
            load_dataset(path)
        else:
            list(load_rollouts(path, load_dataset(data["demos"])))
    message = str(excinfo.value)
    assert str(path) in message, message
    return message


@pytest.mark.parametrize("at_line_end", [False, True], ids=["mid-line", "line-end"])
@pytest.mark.parametrize("seventh", range(1, 7))
@pytest.mark.parametrize("kind", ["demos", "rollouts"])
def test_a_truncated_file_is_refused_as_truncated(
    kind: str, seventh: int, at_line_end: bool, data: dict[str, Path], tmp_path: Path
) -> None:
    """Cut at each seventh of the file; or back to the line end before it, where every line
    left is valid JSON and only the missing footer tells."""
    whole = data[kind].read_bytes()
    cut = len(whole) * seventh // 7
    if at_line_end:
        cut = whole.rfind(b"\n", 0, cut) + 1
    assert 0 < cut < len(whole)
    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(whole[:cut])
    message = _refused_dataset(path, kind, data)
    assert "truncated" in message, message


@pytest.mark.parametrize(
    "tail",
    [b"garbage", b"garbage\n", b"\n", b"{}\n", b'{"end": true, "episodes": 6, "steps": 0}\n'],
    ids=["torn-garbage", "garbage-line", "blank-line", "empty-object", "second-footer"],
)
def test_bytes_appended_to_a_dataset_are_refused(
    tail: bytes, data: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "demos.jsonl"
    path.write_bytes(data["demos"].read_bytes() + tail)
    _refused_dataset(path, "demos", data)


@pytest.mark.parametrize("tail", [b"garbage\n", b"garbage", None], ids=["line", "torn", "twice"])
def test_bytes_appended_to_a_rollout_file_are_refused(
    tail: bytes | None, data: dict[str, Path], tmp_path: Path
) -> None:
    whole = data["rollouts"].read_bytes()
    path = tmp_path / "rollouts.jsonl"
    path.write_bytes(whole + (whole if tail is None else tail))
    _refused_dataset(path, "rollouts", data)


def _edit_first(whole: bytes, pattern: bytes) -> bytes:
    """Flip the low bit of the byte matched by ``pattern``'s group 1 (past the header line)."""
    match = re.compile(pattern).search(whole, whole.index(b"\n"))
    assert match is not None
    b = bytearray(whole)
    b[match.start(1)] ^= 0x01
    return bytes(b)


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("demos", rb'"text": "[^"]{5}([a-z])'),
        ("demos", rb'"seed": ([0-9])'),
        ("demos", rb'"goal": "[^"]{3}([a-z])'),
        ("rollouts", rb'"next_text": "[^"]{5}([a-z])'),
        ("rollouts", rb'"branches": \[\{"action": "[^"]{2}([a-z])'),
        ("rollouts", rb'"reward": ([0-9])'),
    ],
    ids=[
        "observation-letter",
        "seed-digit",
        "goal-letter",
        "next-observation-letter",
        "branch-action-letter",
        "reward-digit",
    ],
)
def test_a_one_byte_edit_of_a_dataset_is_refused(
    kind: str, pattern: bytes, data: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(_edit_first(data[kind].read_bytes(), pattern))
    assert path.read_bytes() != data[kind].read_bytes()
    message = _refused_dataset(path, kind, data)
    assert "checksum" in message and "edited or corrupted" in message, message


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "agent.pt"
    return Agent(SMALL, seed=3).save(path, meta={"learner": "bc"}).read_bytes()


def _refused_checkpoint(path: Path, match: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        Agent.load(path)
    message = str(excinfo.value)
    assert str(path) in message and match in message, message


@pytest.mark.parametrize("seventh", [1, 2, 3, 5, 6])  # the half is in tests/agents
def test_a_truncated_checkpoint_is_refused(seventh: int, checkpoint: bytes, tmp_path: Path) -> None:
    path = tmp_path / "agent.pt"
    path.write_bytes(checkpoint[: len(checkpoint) * seventh // 7])
    _refused_checkpoint(path, "not a readable checkpoint")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("flip-middle-byte", "checksum does not match"),
        ("flip-first-byte", "checksum does not match"),
        ("flip-checksum-byte", "checksum does not match"),
        ("append-garbage", "does not end with an earlyexp checksum"),
        ("append-a-newline", "does not end with an earlyexp checksum"),
    ],
)
def test_an_edited_checkpoint_is_refused(
    edit: str, reason: str, checkpoint: bytes, tmp_path: Path
) -> None:
    b = bytearray(checkpoint)
    if edit.startswith("flip"):
        where = {"middle": len(b) // 2, "first": 0, "checksum": len(b) - 10}[edit.split("-")[1]]
        b[where] ^= 0x01
    else:
        b += b"garbage" if edit == "append-garbage" else b"\n"
    path = tmp_path / "agent.pt"
    path.write_bytes(bytes(b))
    _refused_checkpoint(path, reason)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["eval", "rollouts", "train-rl"])
def test_every_command_refuses_a_code_running_checkpoint_without_running_it(
    command: str, data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Agent.load's refusal is tested in tests/agents; here, every CLI entry point that takes
    a checkpoint goes through it and reports one line."""
    marker, evil = tmp_path / "SENTINEL", tmp_path / "agent.pt"
    payload = io.BytesIO()  # sealed like Agent.save's files, so only weights_only stops it
    torch.save({"format": "earlyexp-agent", "version": 2, "x": _Exploit(marker)}, payload)
    evil.write_bytes(seal(payload.getvalue()))
    argv = {
        "eval": ["eval", str(evil), "--env", HOUSEHOLD, "--episodes", "1"],
        "rollouts": ["rollouts", HOUSEHOLD, "--demos", str(data["demos"]), "--out"]
        + [str(tmp_path / "r.jsonl"), "--proposer", "policy", "--proposer-agent", str(evil)],
        "train-rl": ["train", HOUSEHOLD, "--learner", "rl", "--init-from", str(evil)]
        + ["--steps", "64", "--out", str(tmp_path / "rl"), "--log-dir", str(tmp_path / "runs")],
    }[command]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "could run code" in err and str(evil) in err, err
    assert not marker.exists()
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "rl" / "agent.pt").exists()

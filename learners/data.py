"""Expert demonstrations: collect them from any contract env into a documented dataset file.

Dataset file format (``earlyexp-demos``, version 2): UTF-8 JSON Lines.

* line 1, the header: ``{"format": "earlyexp-demos", "version": 2, "env_id": str,
  "split": "train"|"test", "seed": int, "episodes": int, "env_kwargs": dict}``
* one line per episode: ``{"seed": int, "goal": str, "success": bool, "final_text": str,
  "steps": [{"text": str, "admissible": [str, ...], "action": str, "taken": str | null},
  ...]}`` where ``text`` is the observation the action was chosen from, ``action`` the
  expert's command, ``taken`` the command executed when it differs from the expert's
  (DAgger's learner rollouts; null in expert demos) and ``final_text`` the observation
  after the last step.
* last line, the footer: ``{"end": true, "episodes": int, "steps": int, "sha256": str}``,
  ``sha256`` being the hex digest of every byte before the footer.

The file is written to a temporary name and renamed into place, so a killed collection
never leaves a file that looks complete; loading checks the header, every line, the footer
and the checksum (so a one-byte edit is refused too), and names the file and the problem
when any is wrong. Rollout files (learners/rollouts.py) share the footer and its checks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from agents import Agent
from agents.files import atomic_write
from envs import make, resolve_id
from envs.progress import progress_bar

FORMAT = "earlyexp-demos"
VERSION = 2


class DatasetError(ValueError):
    """A dataset file is missing, corrupt, truncated or from another env."""


@dataclass
class Step:
    """One decision: the observation text, the commands admissible then, the expert's
    command, and (when someone else acted, as in DAgger) the command actually taken."""

    text: str
    admissible: list[str]
    action: str
    taken: str | None = None

    @property
    def executed(self) -> str:
        """The command that was executed (what the next observation and history follow)."""
        return self.action if self.taken is None else self.taken


@dataclass
class Episode:
    """One expert episode on one instance (``seed``) of an env."""

    seed: int
    goal: str
    success: bool
    final_text: str
    steps: list[Step] = field(default_factory=list)


@dataclass
class Dataset:
    """Episodes of one env and split, with the header they were collected under."""

    env_id: str
    split: str
    seed: int
    episodes: list[Episode]
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        """Total number of (state, action) pairs."""
        return sum(len(e.steps) for e in self.episodes)

    def subset(self, n: int) -> Dataset:
        """The first ``n`` episodes (data budgets take prefixes, so budgets are nested)."""
        if not 1 <= n <= len(self.episodes):
            raise ValueError(f"cannot take {n} episodes of a dataset of {len(self.episodes)}")
        return Dataset(self.env_id, self.split, self.seed, self.episodes[:n], self.env_kwargs)


def run_expert_episode(
    env: Any, seed: int, act: Callable[[dict, dict], str] | None = None
) -> Episode:
    """Play one episode from ``reset(seed=seed)``, labelling every state with the env's
    expert. ``act`` picks the command executed (recorded as ``taken``, e.g. DAgger's
    learner); without it the expert acts (a demonstration). ``env`` is a made
    (TimeLimit-wrapped) env, so the registered step cap applies."""
    obs, info = env.reset(seed=seed)
    episode = Episode(seed=seed, goal=obs["goal"], success=False, final_text=obs["text"])
    while True:
        label = env.unwrapped.expert_action()
        taken = None if act is None else act(obs, info)
        episode.steps.append(Step(obs["text"], list(info["admissible_actions"]), label, taken))
        obs, _, terminated, truncated, info = env.step(label if taken is None else taken)
        if terminated or truncated:
            break
    episode.success = bool(info["success"])
    episode.final_text = obs["text"]
    return episode


def collect_demos(
    env_id: str,
    episodes: int,
    out: str | os.PathLike,
    *,
    split: str = "train",
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> Dataset:
    """Collect ``episodes`` expert episodes (instance seeds ``seed .. seed+episodes-1``) and
    write them atomically to ``out``. Returns the dataset."""
    if episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {episodes}")
    env_id = resolve_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    env = make(env_id, split=split, **env_kwargs)
    seeds = range(seed, seed + episodes)
    collected = [
        run_expert_episode(env, s)
        for s in progress_bar(seeds, desc=f"expert demos {env_id}", unit="ep", disable=not progress)
    ]
    env.close()
    dataset = Dataset(env_id, split, seed, collected, env_kwargs)
    save_dataset(dataset, out)
    return dataset


def save_dataset(dataset: Dataset, path: str | os.PathLike) -> None:
    """Write ``dataset`` to ``path`` atomically (temporary file, fsync, rename)."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "env_id": dataset.env_id,
        "split": dataset.split,
        "seed": dataset.seed,
        "episodes": len(dataset.episodes),
        "env_kwargs": dataset.env_kwargs,
    }
    with atomic_write(path) as f:
        lines = RecordWriter(f)
        lines.write(header)
        for episode in dataset.episodes:
            lines.write(asdict(episode))
        lines.end(episodes=len(dataset.episodes), steps=dataset.num_steps)


class RecordWriter:
    """Writes JSON Lines records to a text file and, last, the footer that seals them:
    ``{"end": true, **counts, "sha256": digest of every line before it}``."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self.digest = hashlib.sha256()

    def write(self, record: dict) -> None:
        """Append one record (one line)."""
        line = json.dumps(record) + "\n"
        self.digest.update(line.encode("utf-8"))
        self.file.write(line)

    def end(self, **counts: int) -> None:
        """Write the footer; nothing may be written after it."""
        footer = {"end": True, **counts, "sha256": self.digest.hexdigest()}
        self.file.write(json.dumps(footer) + "\n")


def iter_records(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, JSON object)`` of each line of a file written by :class:`RecordWriter`,
    read lazily, the footer last. The footer's checksum is verified before the footer is
    yielded, so use what was read only once the footer has come.

    Raises :class:`DatasetError` naming the file (and line): not text, a torn or malformed
    line, no footer (truncated), a checksum that does not match (edited or corrupted), or
    lines after the footer (appended to).
    """
    digest = hashlib.sha256()
    number = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                raise DatasetError(f"{path}: line {number} is cut off (the file is truncated)")
            try:
                record = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                raise DatasetError(
                    f"{path}: line {number} is not UTF-8, so not a text file"
                ) from None
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DatasetError(f"{path}: line {number} is not a JSON object")
            if number > 1 and record.get("end") is True:
                if record.get("sha256") != digest.hexdigest():
                    raise DatasetError(
                        f"{path}: the checksum in the end-of-file record (line {number}) does not "
                        "match the lines before it (the file was edited or corrupted); collect it again"
                    )
                if f.read(1):
                    raise DatasetError(
                        f"{path}: line {number + 1} comes after the end-of-file record (the file "
                        "was appended to or edited); collect it again"
                    )
                yield number, record
                return
            digest.update(line)
            yield number, record
    if number == 0:
        raise DatasetError(f"{path}: the file is empty")
    raise DatasetError(f"{path}: no end-of-file record (the file is truncated); collect it again")


def _episode(path: Path, number: int, record: dict) -> Episode:
    try:
        steps = [
            Step(s["text"], list(s["admissible"]), s["action"], s.get("taken"))
            for s in record["steps"]
        ]
        episode = Episode(
            int(record["seed"]),
            record["goal"],
            bool(record["success"]),
            record["final_text"],
            steps,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: line {number} is not an episode record ({exc!r})") from None
    for t, step in enumerate(steps):
        for command in (step.action, step.executed):
            if command not in step.admissible:
                raise DatasetError(
                    f"{path}: line {number}, step {t}: action {command!r} is not among its admissible commands"
                )
    return episode


def load_dataset(path: str | os.PathLike, env_id: str | None = None) -> Dataset:
    """Load and validate a dataset file; with ``env_id``, refuse a dataset of another env."""
    header, episodes = stream_dataset(path, env_id)
    return Dataset(
        header["env_id"], header["split"], header["seed"], list(episodes), header["env_kwargs"]
    )


def stream_dataset(
    path: str | os.PathLike, env_id: str | None = None
) -> tuple[dict[str, Any], Iterator[Episode]]:
    """The checked header of a dataset file and a lazy iterator over its episodes, read one
    line at a time. The iterator raises :class:`DatasetError` at the end when the file is
    truncated, edited or its counts disagree, so use the episodes once it is exhausted."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file (create one with `earlyexp collect`)")
    records = iter_records(path)
    _, header = next(records)
    if header.get("format") != FORMAT:
        raise DatasetError(f"{path}: not an earlyexp demos file (format {header.get('format')!r})")
    if header.get("version") != VERSION:
        raise DatasetError(
            f"{path}: dataset version {header.get('version')!r}; this earlyexp reads version "
            f"{VERSION}; collect it again"
        )
    if env_id is not None and header.get("env_id") != env_id:
        raise DatasetError(
            f"{path}: the demos are from {header.get('env_id')!r}, not {env_id!r}; collect demos for {env_id!r}"
        )
    header.setdefault("env_kwargs", {})
    return header, _episodes(path, header, records)


def _episodes(path: Path, header: dict, records: Iterator[tuple[int, dict]]) -> Iterator[Episode]:
    steps = 0
    for episodes, (number, record) in enumerate(records):
        if record.get("end") is True:
            if not episodes == header["episodes"] == record.get("episodes"):
                raise DatasetError(
                    f"{path}: header promises {header['episodes']} episodes, the file holds {episodes}"
                )
            if record.get("steps") != steps:
                raise DatasetError(
                    f"{path}: footer promises {record.get('steps')} steps, the file holds {steps}"
                )
            return
        episode = _episode(path, number, record)
        steps += len(episode.steps)
        yield episode


@dataclass
class Decision:
    """One supervised decision, tokenized: state, candidate commands, index of the expert's."""

    state: list[int]
    candidates: list[list[int]]
    target: int


def encode_decisions(agent: Agent, episodes: Iterable[Episode]) -> Iterator[Decision]:
    """Tokenize every step of ``episodes`` the way ``agent`` sees states when it acts, lazily
    (feed a :class:`~learners.store.TokenStore` to keep them on disk)."""
    for episode in episodes:
        history: list[tuple[str, str]] = []
        for step in episode.steps:
            yield Decision(
                agent.encode_state(episode.goal, step.text, history),
                [agent.encode_action(a) for a in step.admissible],
                step.admissible.index(step.action),
            )
            history.append((step.text, step.executed))

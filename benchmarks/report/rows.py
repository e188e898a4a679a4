"""The rows a report is built from: a sweep's results file, validated into typed rows.

Only what the report uses is kept; other keys (``versions``, ``command``, most of
``config``, ...) are left in the file. A row that cannot be used is skipped with a warning
that counts it (unknown kind, a required field missing, a malformed field, a duplicated
config hash), so a report never silently changes what it shows. No statistics here.

How an imitation run's training ended is the row's ``hit_cap`` where the run recorded it
(every built-in learner does); for older rows it is inferred (:func:`stopping`) from its
``updates`` against the update caps its learner's config implies (:func:`update_caps`). A
run *converged* when early stopping ended the training of the policy it evaluated (for IWM
and SR the imitation stage; their world-model stage is a fixed budget, whose cap the row
keeps as ``wm_hit_cap``), and *hit its cap* when that ran to its update cap. Older rows say
only the total, so for learners that train in several stages (IWM, DAgger) the answer can
be ``unknown``; that is said, never guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.results import RESULTS_FILE, read_results

IMITATION_FIELDS = ("env_id", "learner", "budget", "seed", "success")
RL_FIELDS = ("env_id", "learner", "seed", "curve", "success")
#: Written by sweeps before RL rows named their warm start; its rows are scratch by name.
LEGACY_SCRATCH = "rl-scratch"

#: How a run's training ended: early stopping ended every stage; a stage ran to its update
#: cap; the row cannot tell.
CONVERGED, CAPPED, UNKNOWN = "converged", "capped", "unknown"
#: IWM's ``budget`` modes (learners/world_model.py; not imported: it pulls in torch).
_IWM_BUDGETS = ("matched", "extra")


class MalformedRow(ValueError):
    """A results row whose field has the wrong type or an impossible value."""


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row[name]
    if not isinstance(value, str) or not value:
        raise MalformedRow(f"{name!r} is {value!r}, not a non-empty string")
    return value


def _number(row: Mapping[str, Any], name: str) -> float:
    value = row[name]
    # bool is an int in Python; a JSON true where a number belongs is a damaged row.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedRow(f"{name!r} is {value!r}, not a finite number")
    return float(value)


def _integer(row: Mapping[str, Any], name: str) -> int:
    value = _number(row, name)
    if value != int(value):
        raise MalformedRow(f"{name!r} is {row[name]!r}, not an integer")
    return int(value)


def _optional(row: Mapping[str, Any], name: str, parse: Any) -> Any:
    return None if row.get(name) is None else parse(row, name)


def _profile(row: Mapping[str, Any]) -> str | None:
    return None if row.get("profile") is None else str(row["profile"])


def _command(row: Mapping[str, Any]) -> str | None:
    # The reproducing shell command: kept for callers, never shown, never a reason to skip.
    value = row.get("command")
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ImitationRow:
    """One finished imitation run: a learner trained on a budget of demos, then tested."""

    hash: str
    env_id: str
    learner: str
    budget: float  # fraction of the full demo budget
    seed: int
    success: float  # greedy test success rate
    profile: str | None = None
    episodes: int | None = None  # demos the budget came to
    valid_action_rate: float | None = None
    random_success: float | None = None  # the random policy on the same test instances
    expert_success: float | None = None
    command: str | None = None
    updates: int | None = None  # gradient updates the run did, every stage together
    update_caps: tuple[int, ...] | None = None  # each stage's cap, from the config
    stopping: str = UNKNOWN  # CONVERGED, CAPPED or UNKNOWN (see :func:`stopping`)
    eval_episodes: int | None = None  # test episodes behind ``success``

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ImitationRow:
        """The typed row of a results line; raises :class:`MalformedRow` saying which field."""
        learner = _text(row, "learner")
        config = learner_config(row, learner)
        updates = _optional(row, "updates", _integer)
        caps = update_caps(config)
        return cls(
            hash=str(row["hash"]),
            env_id=_text(row, "env_id"),
            learner=learner,
            budget=_number(row, "budget"),
            seed=_integer(row, "seed"),
            success=_number(row, "success"),
            profile=_profile(row),
            episodes=_optional(row, "episodes", _integer),
            valid_action_rate=_optional(row, "valid_action_rate", _number),
            random_success=_optional(row, "random_success", _number),
            expert_success=_optional(row, "expert_success", _number),
            command=_command(row),
            updates=updates,
            update_caps=caps,
            stopping=_stopped(row)
            or stopping(
                updates,
                caps,
                val_every=_config_int(config, "val_every"),
                patience=_config_int(config, "patience"),
            ),
            eval_episodes=_config_int(config, "eval_episodes"),
        )


def _stopped(row: Mapping[str, Any]) -> str | None:
    """How training ended, as the run itself recorded it (``hit_cap``: the policy's training
    ran to its cap); None for rows from before runs recorded it, or learners that do not."""
    hit_cap = row.get("hit_cap")
    if hit_cap is None:
        return None
    if not isinstance(hit_cap, bool):
        raise MalformedRow(f"'hit_cap' is {hit_cap!r}, not true or false")
    return CAPPED if hit_cap else CONVERGED


def learner_config(row: Mapping[str, Any], learner: str) -> dict[str, Any]:
    """The learner's own config of a results row ({} when the row has none).

    The sweep stores its run spec under ``config`` and the learner's config inside it.
    Rows written before the learner registry kept one flat dict of the profile's values
    for the four learners of that sweep; they are translated to the fields the learners
    have now (the same translation that sweep made), like :data:`LEGACY_SCRATCH`.
    """
    spec = row.get("config")
    if not isinstance(spec, Mapping):
        return {}
    if isinstance(spec.get("config"), Mapping):
        return dict(spec["config"])
    if "max_updates" not in spec:
        return {}
    config = {k: spec[k] for k in ("max_updates", "eval_episodes") if k in spec}
    if learner == "dagger":
        config["iterations"] = spec.get("dagger_iterations")
    elif learner.startswith("iwm-"):
        config.update(
            budget=learner.removeprefix("iwm-"),
            mode="sequential",
            wm_updates=spec.get("wm_updates"),
        )
    return config


def _config_int(config: Mapping[str, Any], name: str) -> int | None:
    value = config.get(name)
    # A config value the report cannot read makes its flag unknown; it never skips the row.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def update_caps(config: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The update cap of each training stage of a run, in order, from its learner's config.

    Read from the config's fields, not the learner's name, so variants and user learners
    built on these configs are covered: ``budget`` "matched"/"extra" is implicit world
    modeling (a world-model stage of ``wm_updates``, unless ``mode`` is "joint", then an
    imitation stage of ``max_updates - wm_updates`` when matched, else ``max_updates``);
    ``iterations`` is DAgger (``iterations + 1`` imitation fits of ``max_updates`` each);
    ``wm_updates`` alone is the matched BC control (``max_updates - wm_updates``); anything
    else with ``max_updates`` trains once, up to it. None when the config does not say.
    """
    max_updates, wm = _config_int(config, "max_updates"), _config_int(config, "wm_updates")
    if max_updates is None:
        return None
    budget = config.get("budget")
    if budget in _IWM_BUDGETS:
        if wm is None:
            return None
        joint = config.get("mode") == "joint"
        bc = max_updates - wm if budget == "matched" and not joint else max_updates
        caps: tuple[int, ...] = (bc,) if joint else (wm, bc)
    elif "iterations" in config:
        iterations = _config_int(config, "iterations")
        if iterations is None:
            return None
        caps = (max_updates,) * (iterations + 1)
    elif wm is not None:
        caps = (max_updates - wm,)
    else:
        caps = (max_updates,)
    return caps if all(c > 0 for c in caps) else None


def stopping(
    updates: int | None,
    caps: Sequence[int] | None,
    *,
    val_every: int | None = None,
    patience: int | None = None,
) -> str:
    """How a run's training ended: :data:`CONVERGED`, :data:`CAPPED` or :data:`UNKNOWN`.

    ``updates`` is the run's total over its stages, ``caps`` each stage's cap. A stage that
    stops early does so at a validation, after ``patience`` of them without improvement,
    so it does at least ``val_every * (patience + 1)`` updates, or else runs to its cap. So:
    the total equals the caps' sum, or a stage is too short to stop early -> capped; no
    stage at its cap could make up the total -> converged; else, or when the caps cannot
    explain the total (a config the rule misreads), unknown.
    """
    if updates is None or not caps:
        return UNKNOWN
    if updates == sum(caps):
        return CAPPED
    if val_every and patience:
        least = [min(cap, val_every * (patience + 1)) for cap in caps]
    else:
        least = [1] * len(caps)  # without the settings: a stage does at least one update
    if updates > sum(caps) or updates < sum(least):
        return UNKNOWN
    if any(low == cap for low, cap in zip(least, caps, strict=True)):
        return CAPPED
    could_cap = any(cap + sum(least) - least[j] <= updates for j, cap in enumerate(caps))
    return UNKNOWN if could_cap else CONVERGED


@dataclass(frozen=True)
class RLRow:
    """One finished RL run: its test-success curve over env steps and its final success."""

    hash: str
    env_id: str
    learner: str
    seed: int
    success: float  # final greedy test success
    curve: tuple[tuple[float, float], ...]  # (env step, test success), in step order
    scratch: bool  # no warm start
    init_learner: str | None = None  # whose checkpoint it warm-started from (None: scratch)
    init_budget: float | None = None  # that checkpoint's demo budget (None for scratch)
    profile: str | None = None
    command: str | None = None

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> RLRow:
        """The typed row of a results line; raises :class:`MalformedRow` saying which field.

        A row with an ``init_learner`` key is scratch when it is null. Rows written before
        that key existed are scratch when the learner is ``rl-scratch`` or ``init_budget``
        is null (the old sweep's rule).
        """
        learner = _text(row, "learner")
        init_learner = _optional(row, "init_learner", _text)
        init_budget = _optional(row, "init_budget", _number)
        if "init_learner" in row:
            scratch = init_learner is None
        else:
            scratch = learner == LEGACY_SCRATCH or init_budget is None
        return cls(
            hash=str(row["hash"]),
            env_id=_text(row, "env_id"),
            learner=learner,
            seed=_integer(row, "seed"),
            success=_number(row, "success"),
            curve=_curve(row["curve"]),
            scratch=scratch,
            init_learner=init_learner,
            # Scratch has no pretraining, whatever the row says.
            init_budget=None if scratch else init_budget,
            profile=_profile(row),
            command=_command(row),
        )


def _curve(value: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list | tuple):
        raise MalformedRow(f"'curve' is {value!r}, not a list of [env step, success] pairs")
    points = []
    for point in value:
        if (
            not isinstance(point, list | tuple)
            or len(point) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in point)
        ):
            raise MalformedRow(f"'curve' holds {point!r}, not an [env step, success] pair")
        points.append((float(point[0]), float(point[1])))
    return tuple(points)


@dataclass
class Rows:
    """The usable rows of one results file (one profile), and what was skipped and why."""

    path: Path
    imitation: list[ImitationRow] = field(default_factory=list)
    rl: list[RLRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.imitation) + len(self.rl)


_PARSERS: dict[str, tuple[tuple[str, ...], Any]] = {
    "imitation": (IMITATION_FIELDS, ImitationRow.from_dict),
    "rl": (RL_FIELDS, RLRow.from_dict),
}


def load_rows(results_dir: str | Path, *, profile: str | None = None) -> Rows:
    """The imitation and RL rows of ``results_dir/results.jsonl``, of one profile.

    Raises FileNotFoundError / ValueError, saying what to run, when there is nothing to
    report, and ValueError when the file mixes profiles and ``profile`` picks none.
    """
    results_dir = Path(results_dir)
    path = results_dir / RESULTS_FILE
    if not results_dir.is_dir():
        raise FileNotFoundError(
            f"{results_dir} does not exist: run a sweep into it first (benchmarks/sweep.py "
            "with this directory as its output), then build the report."
        )
    results = read_results(path)
    out = Rows(path=path, warnings=list(results.problems))
    if not results.rows:
        raise ValueError(
            f"{path} is missing or holds no finished runs: run a sweep into {results_dir} "
            "first (benchmarks/sweep.py), then build the report."
        )
    rows: list[ImitationRow | RLRow] = []
    seen: set[str] = set()
    unknown: Counter[str] = Counter()
    incomplete = duplicates = 0
    malformed: list[str] = []
    for row in results.rows:
        kind = row.get("kind")
        needed, parse = _PARSERS.get(kind, (None, None)) if isinstance(kind, str) else (None, None)
        if needed is None:
            unknown[str(kind)] += 1
            continue
        if any(row.get(name) is None for name in needed):
            incomplete += 1
            continue
        try:
            typed = parse(row)
        except MalformedRow as exc:
            malformed.append(f"{row['hash']}: {exc}")
            continue
        if typed.hash in seen:  # a duplicated line would count one run twice
            duplicates += 1
            continue
        seen.add(typed.hash)
        rows.append(typed)
    if unknown:
        kinds = ", ".join(f"{k!r} ({n})" for k, n in sorted(unknown.items()))
        out.warnings.append(f"skipped rows of unknown kind: {kinds}")
    if incomplete:
        out.warnings.append(f"skipped {incomplete} rows missing a required field")
    if malformed:
        out.warnings.append(
            f"skipped {len(malformed)} rows with a malformed field (first: {malformed[0]})"
        )
    if duplicates:
        out.warnings.append(f"skipped {duplicates} duplicated rows (same config hash)")
    profiles = sorted({str(row.profile) for row in rows})
    if profile is not None:
        rows = [row for row in rows if str(row.profile) == profile]
    elif len(profiles) > 1:
        raise ValueError(
            f"{path} mixes profiles {profiles}; their numbers are not comparable. "
            "Choose one with --profile."
        )
    if not rows:
        raise ValueError(
            f"{path} has no imitation or RL rows"
            + (f" of profile {profile!r} (found {profiles})" if profile else "")
            + ": run a sweep into it first (benchmarks/sweep.py)."
        )
    out.imitation = [row for row in rows if isinstance(row, ImitationRow)]
    out.rl = [row for row in rows if isinstance(row, RLRow)]
    return out

"""The eight-setting data-efficiency benchmark behind ``earlyexp bench``: one sweep engine.

A profile fixes the grid: settings x learners x expert-data budgets (fractions of a full
demo budget) x seeds. Which learner needs what comes from the learner registry
(:mod:`learners.registry`): a learner that trains on demos runs at every budget; one that
learns from the env (RL) runs once per seed, warm-started, if it declares so, from the run of
its source learner at ``rl_budget``. A run's config is its learner's config dataclass filled
from the profile: ``config`` values go to every learner whose config has the field,
``per_learner`` values to one learner. The run's hash covers that config (and the data it
reads), so changing a value another learner uses re-runs nothing.

Each setting's demos are collected once (budgets are nested prefixes of them) and branched
once per ``k`` into early-experience rollouts, under ``OUT/data/``. Every finished run
appends one JSON line to ``OUT/results.jsonl`` (see :mod:`benchmarks.results`), with the
``earlyexp train`` command that reproduces it; a restarted sweep skips the runs already
there. Runs execute in a local process pool (one torch thread each) or, with
``backend="ray"``, as Ray tasks running the same :func:`run` function; with Ray, ``OUT`` must
be on a filesystem every node sees.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import multiprocessing
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm as std_tqdm
from tqdm.auto import tqdm

from agents import resolve_device
from benchmarks.results import RESULTS_FILE, append_result, commit, config_hash, read_results
from envs import resolve_id
from envs.progress import progress_bar
from learners import Learner, get_learner, registered_learners
from learners.config import config_fields, parse_value
from learners.data import VERSION as DEMOS_VERSION
from learners.data import collect_demos, iter_records, load_dataset
from learners.evaluate import EVAL_SEED, evaluate_expert
from learners.rollouts import VERSION as ROLLOUTS_VERSION
from learners.rollouts import collect_rollouts
from learners.world_model import parse_k

SETTINGS = (
    "earlyexp/Household-v0",
    "earlyexp/Cooking-v0",
    "earlyexp/Lab-v0",
    "earlyexp/Shop-v0",
    "earlyexp/WebNav-v0",
    "earlyexp/Tools-v0",
    "earlyexp/BabyAI-v0",
    "earlyexp/DoorKey-v0",
)
#: The arms of every built-in profile.
LEARNERS = ("bc", "dagger", "iwm-matched", "iwm-extra", "rl-scratch", "rl-from-bc", "rl-from-iwm")
_RL = ("rl-scratch", "rl-from-bc", "rl-from-iwm")

#: Config fields added after results files were written, at the value every earlier run
#: had: a run's spec leaves them out at that value, so its hash (and resuming) is unchanged.
LATER_FIELDS: dict[str, Any] = {"eval_split": "test", "eval_seed": 10_000, "val_episodes": None}

#: Config fields the sweep fills in itself for each run (paths, logging): not in its hash.
RUNTIME_FIELDS = frozenset(
    {
        "env_id",
        "learner",
        "out",
        "log_dir",
        "progress",
        "device",
        "demos",
        "rollout_file",
        "init_from",
    }
)


@dataclass(frozen=True)
class Profile:
    """One benchmark size: the grid, the training budgets and what it costs."""

    name: str
    cost: str
    """Expected wall time, and where it is meant to run."""
    full_budget: int
    """Demo episodes at budget 1.0."""
    budgets: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    settings: tuple[str, ...] = SETTINGS
    learners: tuple[str, ...] = LEARNERS
    config: dict[str, Any] = field(default_factory=dict)
    """Config values for every learner whose config has the field (e.g. ``max_updates``)."""
    per_learner: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Config values for one learner (over ``config``)."""
    model: dict[str, Any] = field(default_factory=dict)
    """ModelConfig fields that differ from the defaults (a smaller model for quick runs); with
    a ``model`` key, the language-model agent's LMConfig fields instead (``{"model":
    "tiny"}``: every run trains the tiny LM, as ``--agent lm`` does)."""
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per setting ``make`` kwargs (e.g. a smaller TextWorld game pool)."""
    rl_budget: float = 0.25
    """Budget of the runs that warm starts start from."""
    baseline: str = "bc"
    """The report compares every other learner with this one."""
    compare: tuple[str, ...] = ()
    """The learners the report's headline compares with the baseline (empty: all others)."""
    demo_seed: int = 0
    """Instance seed of the first demo episode (another range: instances a study does not
    use, e.g. to tune on)."""
    focus: tuple[str, ...] = ()
    """The settings where every learner runs; elsewhere only the baseline does (empty:
    every learner everywhere). Lets a profile measure the baseline on every setting and
    spend the comparison's compute where it is powered."""
    baseline_budgets: tuple[float, ...] = ()
    """The budgets of the baseline's runs outside the focus (empty: all of ``budgets``):
    e.g. only the full budget, where the report checks that each setting is learned."""

    def learners_at(self, env_id: str, learners: Sequence[str]) -> list[str]:
        """Those of ``learners`` that run on ``env_id`` (see :attr:`focus`)."""
        if not self.focus or env_id in self.focus:
            return list(learners)
        return [name for name in learners if name == self.baseline]

    def budgets_at(self, env_id: str) -> tuple[float, ...]:
        """The budgets at which learners run on ``env_id`` (see :attr:`baseline_budgets`)."""
        if self.focus and env_id not in self.focus and self.baseline_budgets:
            return self.baseline_budgets
        return self.budgets


_SMALL_TEXTWORLD = {
    "earlyexp/Cooking-v0": {"games": 2, "recipe": 1, "take": 1, "go": 1},
    "earlyexp/TreasureHunter-v0": {"games": 2, "level": 11},
}

#: The study's early-experience learners (study-tune picks its primary one among them).
EARLY_EXPERIENCE = ("iwm-matched", "iwm-joint", "iwm-lookahead", "sr")
#: Every arm of the study: BC, its matched-update control, the early-experience learners,
#: and the two controls that remove what early experience adds (action-outcome pairing;
#: the alternatives).
STUDY_ARMS = ("bc", "bc-short", *EARLY_EXPERIENCE, "iwm-shuffled", "iwm-expert-only")
#: Settings with a knowledge split; Household's is that of its knowledge=True variant.
_KNOWLEDGE_SETTINGS = ("earlyexp/Household-v0", "earlyexp/Lab-v0", "earlyexp/WebNav-v0")
_KNOWLEDGE_KWARGS = {"earlyexp/Household-v0": {"knowledge": True}}
_STUDY_CONFIG = {"eval_episodes": 200, "val_episodes": 10}
_STUDY_COST = (
    "8 learners x 2 budgets x 10 seeds per setting (160 runs; the default model, early "
    "stopping); 3.9 core-minutes a run on average on this project's 2-core CPU, two runs "
    "at a time, measured over profile study's 160 runs: about 10 core-hours per setting"
)

#: The language-model profiles' agent: the tiny LM (``--agent lm --lm-model tiny``), its
#: thoughts (sr) cut at 96 tokens, enough for a rationale of four moves.
_TINY_LM = {"model": "tiny", "max_thought_tokens": 96}
#: The LM's settings of README's measured runs (batch 16, validation every 50 updates,
#: patience 4), 10 validation episodes outside the budget, 50 test episodes.
_LM_CONFIG = {
    "eval_episodes": 50,
    "val_episodes": 10,
    "batch_size": 16,
    "max_updates": 1000,
    "patience": 4,
    "wm_updates": 300,
}

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        cost="under 3 minutes on a 2-core CPU; checks that every setting and learner runs",
        full_budget=4,
        budgets=(0.5, 1.0),
        seeds=(0,),
        config={"eval_episodes": 3, "max_updates": 6, "wm_updates": 3, "k": "2"},
        per_learner={
            "dagger": {"iterations": 1, "rollouts": 2},
            **dict.fromkeys(_RL, {"steps": 64, "n_steps": 32, "batch_size": 32, "eval_every": 32}),
        },
        rl_budget=1.0,
        model={"d_model": 32, "n_layers": 1, "ff_dim": 64, "max_state_tokens": 96},
        env_kwargs=_SMALL_TEXTWORLD,
    ),
    # Every run learns and converges in the hour: the default model with early stopping,
    # BC on every setting at the full budget (is each setting learned?), and the comparison
    # (BC, matched IWM, DAgger) at three budgets on Household. `bc-short` is left out: no
    # run here comes near its update cap (the report flags any that does), and below the
    # cap bc-short's runs repeat BC's bit for bit. RL, the other early-experience learners
    # and the comparison on the other settings are left to `standard`.
    "quick": Profile(
        name="quick",
        cost="under an hour on a 2-core CPU (the README's main job)",
        full_budget=50,
        budgets=(0.25, 0.5, 1.0),
        seeds=(0, 1, 2, 3, 4),
        learners=("bc", "iwm-matched", "dagger"),
        # Validation on 10 demo episodes outside the budget, the same for every budget and
        # arm: 20% of the budget (2 of 12 episodes) stopped runs at a noisy, underfit best
        # (Household BC, 50 demos, seed 0: best at update 150, test success 0.42; 0.73
        # with validation outside the budget in docs/benchmark/default-model/).
        # The default patience (10 validations, 500 updates): Household's validation
        # accuracy plateaus for 300 updates before it rises again (patience 6 stopped BC at
        # 50 demos at update 650, test success 0.46, where patience 10 goes on to ~1,200).
        config={"eval_episodes": 50, "val_episodes": 10, "wm_updates": 300},
        per_learner={"dagger": {"iterations": 1, "rollouts": 10}},
        focus=("earlyexp/Household-v0",),
        baseline_budgets=(1.0,),
        # One ingredient (default: two): the one-ingredient recipes are learnable from 50
        # demos, the two-ingredient ones are not (BC 0.03).
        env_kwargs={"earlyexp/Cooking-v0": {"games": 40, "recipe": 1, "take": 1}},
    ),
    # Paper-shaped in about 8 core-hours (8.4 measured): BC's data-efficiency curve on all eight
    # settings (25-200 demos), and on Household the comparison (IWM-matched, DAgger) and RL
    # warm starts vs scratch. Every early-experience learner and control at power is the
    # study profiles' job (issue 16); at today's per-run costs every arm on every setting
    # here would be about 60 core-hours.
    "standard": Profile(
        name="standard",
        cost="8.4 core-hours on a 2-core CPU (about 4.2 hours with both cores), measured "
        "end to end; resumable",
        full_budget=200,
        budgets=(0.125, 0.25, 0.5, 1.0),
        seeds=(0, 1, 2, 3, 4),
        learners=("bc", "iwm-matched", "dagger", *_RL),
        config={"eval_episodes": 100, "val_episodes": 10, "wm_updates": 300},
        per_learner={
            "dagger": {"iterations": 1, "rollouts": 20},
            **dict.fromkeys(_RL, {"steps": 20_000, "n_steps": 512, "eval_every": 5_000}),
        },
        focus=("earlyexp/Household-v0",),
        env_kwargs={"earlyexp/Cooking-v0": {"games": 40, "recipe": 1, "take": 1}},
    ),
    # The language-model agent (issue 17): the tiny LM trained from scratch, BC against
    # implicit world modeling in both of the LM's modes and self-reflection at 25 and 50
    # demos on Household (run end to end on the CPU; results in the README); lm-bc sets the
    # tiny LM's BC beside the policy model's (standard has it at the same demos and seeds).
    "lm": Profile(
        name="lm",
        cost="4 learners x 2 budgets x 5 seeds on Household (40 runs): 6.8 core-hours, "
        "measured end to end on a 2-core CPU, one thread a run (median run: bc 7, "
        "iwm-matched 9, iwm-mixed 8, sr 16 core-minutes; sr writes a thought before every "
        "test step); on one H200 (--device cuda, 16 runs at a time) a BC run took 91-113 s",
        full_budget=50,
        budgets=(0.5, 1.0),
        seeds=(0, 1, 2, 3, 4),
        settings=("earlyexp/Household-v0",),
        learners=("bc", "iwm-matched", "iwm-mixed", "sr"),
        config=_LM_CONFIG,
        model=_TINY_LM,
    ),
    "lm-bc": Profile(
        name="lm-bc",
        cost="BC of the tiny LM on Household at 50 and 200 demos, 3 seeds (6 runs); 1.3 "
        "core-hours, measured end to end on a 2-core CPU",
        full_budget=200,
        budgets=(0.25, 1.0),
        seeds=(0, 1, 2),
        settings=("earlyexp/Household-v0",),
        learners=("bc",),
        config={**_LM_CONFIG, "eval_episodes": 100},
        model=_TINY_LM,
    ),
    "full": Profile(
        name="full",
        cost="paper-sized (8 settings x 4 learners x 4 budgets x 5 seeds, 400 demos, the "
        "default model, 100k RL steps): roughly 400 core-hours, extrapolated from per-run costs "
        "measured on a 2-core CPU (not run end to end); meant for a Ray cluster",
        full_budget=400,
        seeds=(0, 1, 2, 3, 4),
        config={"eval_episodes": 100, "max_updates": 3000, "wm_updates": 1000, "k": "8"},
        per_learner={
            "dagger": {"iterations": 4, "rollouts": 20},
            **dict.fromkeys(_RL, {"steps": 100_000, "n_steps": 512, "eval_every": 2000}),
        },
    ),
    # The pre-registered study of issue 16 (README, "The early-experience study"): every
    # arm and control, 10 paired seeds (same initial weights, validation episodes and test
    # instances), 25 and 50 demos, 200 test episodes, the learners' default settings.
    "study": Profile(
        name="study",
        cost=_STUDY_COST,
        full_budget=50,
        budgets=(0.5, 1.0),
        seeds=tuple(range(10)),
        settings=("earlyexp/Household-v0",),
        learners=STUDY_ARMS,
        config=_STUDY_CONFIG,
    ),
    "study-novel": Profile(
        name="study-novel",
        cost=_STUDY_COST,
        full_budget=50,
        budgets=(0.5, 1.0),
        seeds=tuple(range(10)),
        settings=_KNOWLEDGE_SETTINGS,
        learners=STUDY_ARMS,
        config={**_STUDY_CONFIG, "eval_split": "novel"},
        env_kwargs=_KNOWLEDGE_KWARGS,
    ),
    # Chooses the study's primary early-experience learner before the study runs, on other
    # seeds, other demo instances and other test instances (README: the selection rule).
    "study-tune": Profile(
        name="study-tune",
        cost="3 settings x 5 learners x 3 seeds at 50 demos (45 runs); 2.8 core-hours, "
        "measured on a 2-core CPU (about 1.5 hours with both cores)",
        full_budget=50,
        budgets=(1.0,),
        seeds=(100, 101, 102),
        settings=_KNOWLEDGE_SETTINGS,
        learners=("bc", *EARLY_EXPERIENCE),
        config={**_STUDY_CONFIG, "eval_split": "novel", "eval_episodes": 100, "eval_seed": 20_000},
        env_kwargs=_KNOWLEDGE_KWARGS,
        demo_seed=100_000,
    ),
}


# --------------------------------------------------------------------------------------------
# The run specs of a sweep
# --------------------------------------------------------------------------------------------


def episodes_at(profile: Profile, budget: float) -> int:
    """Demo episodes at a budget fraction (at least one)."""
    return max(1, round(profile.full_budget * budget))


def slug(env_id: str) -> str:
    """A path-safe name of an env id."""
    return env_id.replace("/", "_").replace(":", "_")


def learner_config(profile: Profile, env_id: str, learner: Learner, **values: Any) -> Any:
    """``learner``'s config for ``env_id`` under ``profile`` (and ``values``)."""
    fields = {f.name for f in dataclasses.fields(learner.config)}
    # A variant registered as module:name is looked up by its bare name too.
    own = profile.per_learner.get(learner.name, profile.per_learner.get(_bare(learner.name), {}))
    chosen = {k: v for k, v in profile.config.items() if k in fields}
    chosen.update(own)
    chosen = {k: parse_value(learner.config, k, v) for k, v in chosen.items()}
    chosen.update(values)
    if "env_kwargs" in fields:
        chosen.setdefault("env_kwargs", profile.env_kwargs.get(env_id, {}))
    return learner.make_config(env_id=env_id, model=dict(profile.model), **chosen)


def _bare(name: str) -> str:
    return name.split(":", 1)[-1]


def run_spec(
    profile: Profile, env_id: str, name: str, seed: int, budget: float | None = None
) -> dict[str, Any]:
    """The spec of one run; its hash (:func:`benchmarks.results.config_hash`) identifies it.

    ``budget`` is required for a learner that trains on demos, and ignored otherwise.
    """
    learner = get_learner(name)
    values: dict[str, Any] = {"seed": seed}
    if learner.needs_demos:
        if budget is None:
            raise ValueError(f"learner {name!r} trains on demos: give a budget")
        values["episodes"] = episodes_at(profile, budget)
    config = learner_config(profile, env_id, learner, **values)
    spec: dict[str, Any] = {
        "kind": "imitation" if learner.needs_demos else "rl",
        "profile": profile.name,
        "env_id": env_id,
        "learner": name,
        "seed": seed,
        "env_kwargs": profile.env_kwargs.get(env_id, {}),
        "config": {
            k: v
            for k, v in asdict(config).items()
            if k not in RUNTIME_FIELDS and (k not in LATER_FIELDS or v != LATER_FIELDS[k])
        },
    }
    if learner.needs_demos:
        spec.update(budget=budget, episodes=values["episodes"], full_budget=profile.full_budget)
        if profile.demo_seed:  # only where set: earlier runs' hashes stay as they were
            spec["demo_seed"] = profile.demo_seed
    if learner.needs_rollouts and _shares_rollouts(config):
        spec["rollouts_k"] = config.k
    if learner.warm_start is not None:
        source = run_spec(profile, env_id, learner.warm_start, seed, profile.rl_budget)
        spec.update(
            init_learner=learner.warm_start,
            init_budget=profile.rl_budget,
            init_hash=config_hash(source),
        )
    else:
        spec.update(init_learner=None, init_budget=None, init_hash=None)
    return spec


def _shares_rollouts(config: Any) -> bool:
    """Uniform rollouts are collected once per setting and k; others by the run itself."""
    return getattr(config, "proposer", "uniform") == "uniform"


def plan(profile: Profile, env_ids: list[str], learners: list[str]) -> tuple[list[dict], ...]:
    """The sweep's specs in two phases: runs that need no other run, then warm starts."""
    first: list[dict] = []
    second: list[dict] = []
    for env_id in env_ids:
        for seed in profile.seeds:
            for name in profile.learners_at(env_id, learners):
                learner = get_learner(name)
                if learner.needs_demos:
                    budgets = profile.budgets_at(env_id)
                    first += [run_spec(profile, env_id, name, seed, b) for b in budgets]
                elif learner.warm_start is not None:
                    second.append(run_spec(profile, env_id, name, seed))
                else:
                    first.append(run_spec(profile, env_id, name, seed))
    return first, second


def check_selection(profile: Profile, learners: list[str]) -> None:
    """Refuse a selection the sweep cannot run, with what to do instead."""
    if not set(profile.baseline_budgets) <= set(profile.budgets):
        raise ValueError(
            f"profile {profile.name}: baseline_budgets {profile.baseline_budgets} must be some "
            f"of its budgets {profile.budgets}"
        )
    for name in learners:
        learner = get_learner(name)  # unknown names: the registry's message
        source = learner.warm_start
        if source is not None:
            if source not in learners:
                raise ValueError(f"{name} warm-starts from {source}: select {source} too")
            if profile.rl_budget not in profile.budgets:
                raise ValueError(
                    f"profile {profile.name}: rl_budget {profile.rl_budget} (where warm starts "
                    f"start) must be one of its budgets {profile.budgets}"
                )
        config = learner_config(profile, profile.settings[0], learner, seed=0)
        if config.eval_episodes < 1:
            raise ValueError(f"{name}: a benchmark run needs eval_episodes >= 1")
    for name in profile.per_learner:
        get_learner(name)  # a typo in a profile is an error, not a silently unused value
    known = set().union(*(config_fields(get_learner(n).config) for n in registered_learners()))
    unknown = sorted(set(profile.config) - known)
    if unknown:
        raise ValueError(
            f"profile {profile.name}: {', '.join(unknown)} is no field of any learner's config "
            "(see earlyexp train --help)"
        )


# --------------------------------------------------------------------------------------------
# One run (the function every backend executes)
# --------------------------------------------------------------------------------------------


def data_dir(results_dir: Path, env_id: str) -> Path:
    """Where a setting's demos and rollouts live."""
    return results_dir / "data" / slug(env_id)


def rollouts_path(results_dir: Path, env_id: str, k: str) -> Path:
    """A setting's shared uniform rollouts with ``k`` alternatives per state."""
    return data_dir(results_dir, env_id) / f"rollouts-k{k}.jsonl"


def run_dir(results_dir: Path, spec: dict) -> Path:
    """Where a run's checkpoint and metrics live (its config hash)."""
    return results_dir / "runs" / config_hash(spec)


def versions() -> dict[str, str]:
    """Versions that can change a result, and the project's commit (``+modified`` when the
    tree had uncommitted changes)."""
    found = {"python": platform.python_version(), "commit": commit()}
    # torch's kernels differ by instruction set, and with them a run's last bits
    found["cpu"] = f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"
    for package in ("earlyexp", "torch", "gymnasium", "stable-baselines3", "textworld", "minigrid"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


@dataclass(frozen=True)
class RunContext:
    """What every run of one sweep shares, shipped to each worker with its spec."""

    results_dir: str
    expert_success: dict[str, float]
    """Per setting: the expert's test success (measured once, in :func:`prepare`)."""
    imports: tuple[str, ...] = ()
    """Modules a worker imports before the run: where user envs (``module:id``) register."""
    path: tuple[str, ...] = ()
    """Directories a worker searches for those modules (the driver's working directory)."""
    given_ids: dict[str, str] = field(default_factory=dict)
    """Bare env id -> the ``module:id`` it was given as (for the reproducing command)."""
    device: str = "auto"
    """Where every run trains and acts (``--device``)."""


def run(spec: dict, context: RunContext) -> dict[str, Any]:
    """Train and evaluate one run of the sweep; return its results row (not yet written)."""
    torch.set_num_threads(1)
    for directory in context.path:
        if directory not in sys.path:
            sys.path.append(directory)
    for module in context.imports:
        importlib.import_module(module)  # a fresh worker (Ray) has not registered user envs
    results = Path(context.results_dir)
    learner = get_learner(spec["learner"])  # module:name imports the user's learner
    config = learner.make_config(
        **spec["config"], **_runtime_values(spec, results), device=context.device
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    metrics = learner.train(config)
    greedy, sampled = metrics["eval"]["greedy"], metrics["eval"]["sampled"]
    row = {
        "hash": config_hash(spec),
        **{key: spec[key] for key in ("kind", "profile", "env_id", "learner", "seed")},
        "success": greedy["success_rate"],
        "success_sampled": sampled["success_rate"],
        "valid_action_rate": greedy["valid_action_rate"],
        "mean_episode_length": greedy["mean_episode_length"],
        "random_success": metrics["eval"]["random"]["success_rate"],
        "expert_success": context.expert_success[spec["env_id"]],
        "seconds": time.perf_counter() - start,
        # What the run cost, whatever else shared the cores (wall time does not say).
        "cpu_seconds": time.process_time() - cpu_start,
        "device": metrics.get("device"),  # where it trained and acted (not the run's identity)
        "command": learner.command(
            replace(config, env_id=context.given_ids.get(config.env_id, config.env_id))
        ),
        "config": spec,
        "versions": versions(),
        "metrics": _scalar_metrics(metrics),
    }
    if learner.needs_demos:
        row.update(
            budget=spec["budget"],
            episodes=spec["episodes"],
            updates=metrics.get("updates"),
            hit_cap=metrics.get("hit_cap"),  # None: a learner that does not say
        )
        if "wm_hit_cap" in metrics:  # a world-model stage ran to its cap (a fixed budget)
            row["wm_hit_cap"] = metrics["wm_hit_cap"]
    else:
        steps = metrics.get("env_steps")
        curve = metrics.get("curve") or [{"steps": steps or 0, "success_rate": row["success"]}]
        row.update(
            init_learner=spec["init_learner"],
            init_budget=spec["init_budget"],
            curve=[[point["steps"], point["success_rate"]] for point in curve],
            env_steps=steps,
        )
    return row


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The learner's own record of a run (its ``metrics.json``: stage updates and times, the
    world model's F1 after each stage, ...) without the evaluation (the row has it) and
    without lists (RL's curve is in the row), so the results file keeps it when the run's
    directory is gone."""
    scalar = (bool, int, float, str, type(None))
    return {k: v for k, v in metrics.items() if k != "eval" and isinstance(v, scalar)}


def _runtime_values(spec: dict, results: Path) -> dict[str, Any]:
    """The paths and logging settings of a run, filled in where it runs."""
    data = data_dir(results, spec["env_id"])
    values: dict[str, Any] = {
        "env_id": spec["env_id"],
        "out": str(run_dir(results, spec)),
        "log_dir": str(results / "tensorboard"),
        "progress": False,
    }
    if "episodes" in spec:
        values["demos"] = str(data / "demos.jsonl")
    if "rollouts_k" in spec:
        values["rollout_file"] = str(rollouts_path(results, spec["env_id"], spec["rollouts_k"]))
    if spec["init_hash"] is not None:
        init = results / "runs" / spec["init_hash"] / "agent.pt"
        if not init.exists():
            raise FileNotFoundError(f"{init}: the run this run warm-starts from is missing")
        values["init_from"] = str(init)
    return values


# --------------------------------------------------------------------------------------------
# Preparing data, executing runs, the sweep
# --------------------------------------------------------------------------------------------


def prepare(
    profile: Profile,
    env_id: str,
    results_dir: Path,
    rollout_ks: set[str],
    eval_episodes: int,
    *,
    val_episodes: int = 0,
    eval_split: str = "test",
    eval_seed: int = EVAL_SEED,
) -> float:
    """Collect the setting's demos (``val_episodes`` validation episodes, then the full
    budget; and uniform rollouts for each of ``rollout_ks``) once; return the expert's
    success on the first ``eval_episodes`` instances of ``eval_split``."""
    data = data_dir(results_dir, env_id)
    kwargs = profile.env_kwargs.get(env_id, {})
    demos = data / "demos.jsonl"
    rollouts = {k: rollouts_path(results_dir, env_id, k) for k in sorted(rollout_ks)}
    files = [(demos, DEMOS_VERSION)] + [(path, ROLLOUTS_VERSION) for path in rollouts.values()]
    for path, version in files:
        if _outdated(path, version):
            # Collection is deterministic, so finished runs keep the same data; only the
            # format changed (e.g. checksums added).
            print(f"{path}: written by an older earlyexp; collecting it again", file=sys.stderr)
            path.unlink()
    if not demos.exists():
        episodes = val_episodes + profile.full_budget
        collect_demos(
            env_id, episodes, demos, seed=profile.demo_seed, env_kwargs=kwargs, progress=False
        )
    for k, path in rollouts.items():
        if not path.exists():
            dataset = load_dataset(demos, env_id)
            collect_rollouts(dataset, demos, path, k=parse_k(k), progress=False)
    expert = evaluate_expert(
        env_id, split=eval_split, seed=eval_seed, episodes=eval_episodes, env_kwargs=kwargs
    )
    return expert.success_rate


def prepare_all(
    profile: Profile,
    results_dir: Path,
    env_ids: list[str],
    learners: list[str],
    progress: bool = True,
) -> RunContext:
    """:func:`prepare` every setting of ``env_ids`` (resolved; ``module:id`` modules are
    imported in every worker too) for ``learners``; return the context their runs share."""
    resolved = [resolve_id(env_id) for env_id in env_ids]
    names = list(env_ids) + list(learners)
    imports = tuple(sorted({name.split(":")[0] for name in names if ":" in name}))
    configs = {
        name: (get_learner(name), learner_config(profile, resolved[0], get_learner(name), seed=0))
        for name in learners
    }

    def rollout_ks(env_id: str) -> set[str]:
        # Uniform rollouts are collected only where a learner that shares them runs.
        chosen = [configs[name] for name in profile.learners_at(env_id, learners)]
        return {c.k for learner, c in chosen if learner.needs_rollouts and _shares_rollouts(c)}

    eval_episodes = max(config.eval_episodes for _, config in configs.values())
    val_episodes = max(getattr(c, "val_episodes", None) or 0 for _, c in configs.values())
    splits = {config.eval_split for _, config in configs.values()}
    if len(splits) > 1:
        raise ValueError(f"profile {profile.name}: learners evaluate on different splits {splits}")
    (eval_split,) = splits
    eval_seeds = {config.eval_seed for _, config in configs.values()}
    if len(eval_seeds) > 1:
        raise ValueError(f"profile {profile.name}: learners evaluate from different seeds")
    (eval_seed,) = eval_seeds
    expert = {
        env_id: prepare(
            profile,
            env_id,
            results_dir,
            rollout_ks(env_id),
            eval_episodes,
            val_episodes=val_episodes,
            eval_split=eval_split,
            eval_seed=eval_seed,
        )
        for env_id in progress_bar(
            resolved, desc="preparing demos", disable=not progress, leave=False
        )
    }
    given = {bare: name for bare, name in zip(resolved, env_ids, strict=True) if bare != name}
    return RunContext(str(results_dir), expert, imports, (os.getcwd(),), given)


def _outdated(path: Path, version: int) -> bool:
    if not path.exists():
        return False
    _, header = next(iter_records(path))
    return header.get("version") != version


Executor = Callable[[list[dict], RunContext], Iterator[tuple[dict, Any]]]


def _init_worker() -> None:
    """Set up a pool worker so that the parent can stop it at any moment."""
    # A terminal's Ctrl-C reaches every process of the group. Only the parent acts on it (it
    # terminates the workers): a worker's own KeyboardInterrupt would print a traceback (an
    # idle worker) or come back as a run's result.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock includes a multiprocessing lock, inherited through fork, that every
    # bar takes, disabled or not: a worker terminated while holding it would leave the
    # parent's progress bar waiting forever. Each worker gets a lock of its own.
    lock = threading.RLock()
    for bar in (std_tqdm, tqdm):
        bar.set_lock(lock)


def local_executor(jobs: int) -> Executor:
    """Run specs in a pool of ``jobs`` processes; yield ``(spec, row or exception)``."""

    def execute(specs: list[dict], context: RunContext):
        # A forked worker cannot use CUDA once its parent has (a caller that trained on the
        # GPU before): on a GPU, workers start fresh.
        on_gpu = resolve_device(context.device).type == "cuda"
        pool = ProcessPoolExecutor(
            max_workers=jobs,
            initializer=_init_worker,
            mp_context=multiprocessing.get_context("spawn") if on_gpu else None,
        )
        futures: dict[Future, dict] = {pool.submit(run, spec, context): spec for spec in specs}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when="FIRST_COMPLETED")
                for future in done:
                    error = future.exception()
                    yield futures[future], error if error is not None else future.result()
        except BaseException:
            # Ctrl-C or the caller stopped: stop the workers now (ProcessPoolExecutor has no
            # public way to terminate its workers before 3.14), then drop queued runs and wait
            # for the pool's thread: left running, it races the interpreter's exit, which then
            # can print an ignored "Bad file descriptor" traceback (seen with CPython 3.11).
            workers = list((pool._processes or {}).values())
            for process in workers:
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            # A worker stopped mid-write leaves its temporary file (agents.files.atomic_write)
            # in its run's directory; the run itself is redone on resume.
            for spec in specs:
                for stray in run_dir(Path(context.results_dir), spec).glob(".*.tmp"):
                    stray.unlink(missing_ok=True)
            raise
        pool.shutdown()

    return execute


def ray_executor(address: str | None) -> Executor:
    """Run specs as Ray tasks (one CPU each) on a cluster, or a local Ray instance."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the ray backend needs Ray: pip install 'earlyexp[ray]' (or pip install ray)"
        ) from None

    def execute(specs: list[dict], context: RunContext):
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1, max_retries=0)(run)
        refs = {remote.remote(spec, context): spec for spec in specs}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    yield refs[done[0]], ray.get(done[0])
                except Exception as exc:  # the task's own error, re-raised by Ray
                    yield refs[done[0]], exc
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    return execute


@dataclass
class SweepOutcome:
    """What a sweep did: runs finished now, skipped as already done, and failed."""

    finished: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def sweep(
    profile: Profile,
    results_dir: str | os.PathLike,
    *,
    env_ids: list[str] | None = None,
    learners: list[str] | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    device: str = "auto",
) -> SweepOutcome:
    """Run every run of ``profile`` not yet in ``results_dir/results.jsonl``, each on
    ``device`` (not part of a run's identity: a resumed sweep may change it)."""
    results_dir = Path(results_dir)
    learners = list(learners or profile.learners)
    check_selection(profile, learners)
    executor = executor or local_executor(os.cpu_count() or 1)
    results_file = results_dir / RESULTS_FILE
    existing = read_results(results_file)
    outcome = SweepOutcome(problems=list(existing.problems))
    done = existing.done()
    context = prepare_all(profile, results_dir, env_ids or profile.settings, learners, progress)
    context = replace(context, device=device)
    phases = plan(profile, list(context.expert_success), learners)
    total = sum(len(phase) for phase in phases)
    outcome.skipped = sum(config_hash(spec) in done for phase in phases for spec in phase)

    bar = progress_bar(
        total=total,
        initial=outcome.skipped,
        desc=f"bench {profile.name}",
        unit="run",
        disable=not progress,
    )
    with bar:
        for phase in phases:
            todo = [spec for spec in phase if config_hash(spec) not in done]
            for spec, result in executor(todo, context):
                name = f"{spec['env_id']} {spec['learner']} seed {spec['seed']}"
                if isinstance(result, BaseException):
                    outcome.failures.append(f"{name}: {type(result).__name__}: {result}")
                else:
                    append_result(results_file, result)
                    outcome.finished += 1
                bar.update()
                bar.set_postfix(left=total - bar.n, failed=len(outcome.failures))
    return outcome


def customize(
    profile: Profile,
    *,
    seeds: list[int] | None = None,
    demos: list[int] | None = None,
    settings: list[str] | None = None,
    learners: list[str] | None = None,
    values: list[str] | None = None,
) -> Profile:
    """The profile with other seeds, demo budgets (episode counts: the largest is the full
    budget), settings, learners or config values (``KEY=VALUE`` for every learner with the
    field, ``LEARNER.KEY=VALUE`` for one; VALUE is parsed as the field's flag would be)."""
    changes: dict[str, Any] = {}
    if seeds:
        changes["seeds"] = tuple(seeds)
    if demos:
        full = max(demos)
        changes.update(full_budget=full, budgets=tuple(sorted(n / full for n in set(demos))))
        if profile.rl_budget not in changes["budgets"]:
            changes["rl_budget"] = changes["budgets"][0]
        changes["baseline_budgets"] = ()  # budgets chosen by hand: the baseline runs at each
    if settings:
        # Settings chosen by hand: every selected learner runs on each of them.
        changes.update(settings=tuple(settings), focus=())
    if learners:
        changes["learners"] = tuple(learners)
    if values:
        config = dict(profile.config)
        per_learner = {name: dict(v) for name, v in profile.per_learner.items()}
        for item in values:
            key, value = parse_assignment(item)
            if "." in key:
                name, key = key.rsplit(".", 1)
                per_learner.setdefault(name, {})[key] = value
            else:
                config[key] = value
                for own in per_learner.values():  # a value for all wins over the profile's
                    own.pop(key, None)
        changes.update(config=config, per_learner=per_learner)
    return replace(profile, **changes) if changes else profile


def parse_assignment(item: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, text); the text is parsed as the field's type per learner."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--set {item!r}: use KEY=VALUE or LEARNER.KEY=VALUE")
    learner, dot, name = key.rpartition(".")
    return learner + dot + name.replace("-", "_"), text


def describe(profile: Profile) -> str:
    """One paragraph describing a profile (for ``earlyexp bench --help``)."""
    values = asdict(profile)
    return ", ".join(f"{k}={v}" for k, v in values.items() if k not in ("name", "cost"))

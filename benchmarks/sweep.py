"""The eight-setting data-efficiency benchmark behind ``earlyexp bench``.

A profile fixes the grid: settings x imitation learners (BC, DAgger, IWM-matched,
IWM-extra) x expert-data budgets (fractions of a full demo budget) x seeds, then RL from
scratch, from BC and from IWM (warm starts from the imitation runs at one stated budget).
Each setting's demos are collected once (budgets are nested prefixes of them) and branched
once into early-experience rollouts, under ``OUT/data/``. Every finished run appends one
JSON line to ``OUT/results.jsonl`` (see :mod:`benchmarks.results`); a restarted sweep skips
the runs already there. Runs execute in a local process pool (one torch thread each) or,
with ``backend="ray"``, as Ray tasks running the same :func:`run` function; with Ray,
``OUT`` must be on a filesystem every node sees.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm as std_tqdm
from tqdm.auto import tqdm

from agents import AgentConfig
from agents.model import ModelConfig
from benchmarks.results import RESULTS_FILE, append_result, config_hash, read_results
from envs import resolve_id
from learners.data import VERSION as DEMOS_VERSION
from learners.data import collect_demos, iter_records, load_dataset
from learners.evaluate import evaluate_expert
from learners.imitation import BCConfig, DAggerConfig, train_bc, train_dagger
from learners.rl import RLConfig, train_rl
from learners.rollouts import VERSION as ROLLOUTS_VERSION
from learners.rollouts import collect_rollouts
from learners.world_model import IWMConfig, train_iwm

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
IMITATION_LEARNERS = ("bc", "dagger", "iwm-matched", "iwm-extra")
RL_LEARNERS = ("rl-scratch", "rl-from-bc", "rl-from-iwm")
#: RL learner -> the imitation learner whose checkpoint it starts from.
WARM_START = {"rl-from-bc": "bc", "rl-from-iwm": "iwm-matched"}


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
    eval_episodes: int = 50
    max_updates: int = 3000
    wm_updates: int = 1000
    k: str = "8"
    dagger_iterations: int = 4
    dagger_rollouts: int = 20
    rl_steps: int = 20_000
    rl_n_steps: int = 512
    rl_eval_every: int = 2000
    rl_budget: float = 0.25
    """Budget of the BC and IWM runs RL warm-starts from."""
    model: dict[str, Any] = field(default_factory=dict)
    """ModelConfig fields that differ from the defaults (a smaller model for quick runs)."""
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per setting ``make`` kwargs (e.g. a smaller TextWorld game pool)."""


_SMALL_TEXTWORLD = {
    "earlyexp/Cooking-v0": {"games": 3, "recipe": 1, "take": 1, "go": 1},
    "earlyexp/TreasureHunter-v0": {"games": 3, "level": 11},
}

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        cost="under 3 minutes on a 2-core CPU; checks that every setting and learner runs",
        full_budget=4,
        budgets=(0.5, 1.0),
        seeds=(0,),
        eval_episodes=3,
        max_updates=6,
        wm_updates=3,
        k="2",
        dagger_iterations=1,
        dagger_rollouts=2,
        rl_steps=64,
        rl_n_steps=32,
        rl_eval_every=32,
        rl_budget=1.0,
        model={"d_model": 32, "n_layers": 1, "ff_dim": 64, "max_state_tokens": 96},
        env_kwargs=_SMALL_TEXTWORLD,
    ),
    "quick": Profile(
        name="quick",
        cost="about 45 minutes on a 2-core CPU, measured (the README's main job)",
        full_budget=64,
        seeds=(0, 1, 2),
        eval_episodes=20,
        max_updates=128,
        wm_updates=64,
        k="4",
        dagger_iterations=1,
        dagger_rollouts=6,
        rl_steps=1024,
        rl_n_steps=256,
        rl_eval_every=512,
        model={
            "d_model": 32,
            "n_layers": 1,
            "ff_dim": 64,
            "max_state_tokens": 160,
            "history_len": 2,
            "command_history_len": 8,
        },
        # One ingredient (default: two): half the episode length, so the slowest setting
        # fits the hour.
        env_kwargs={"earlyexp/Cooking-v0": {"games": 40, "recipe": 1, "take": 1}},
    ),
    "full": Profile(
        name="full",
        cost="paper-sized (8 settings x 4 learners x 4 budgets x 5 seeds, 400 demos, the "
        "default model, 100k RL steps): roughly 400 core-hours, extrapolated from per-run costs "
        "measured on a 2-core CPU (not run end to end); meant for a Ray cluster",
        full_budget=400,
        seeds=(0, 1, 2, 3, 4),
        eval_episodes=100,
        rl_steps=100_000,
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


def imitation_spec(profile: Profile, env_id: str, learner: str, budget: float, seed: int) -> dict:
    """The config of one imitation run; its hash identifies the run in the results file."""
    return {
        "kind": "imitation",
        "profile": profile.name,
        "env_id": env_id,
        "env_kwargs": profile.env_kwargs.get(env_id, {}),
        "learner": learner,
        "budget": budget,
        "episodes": episodes_at(profile, budget),
        "full_budget": profile.full_budget,
        "seed": seed,
        "eval_episodes": profile.eval_episodes,
        "max_updates": profile.max_updates,
        "wm_updates": profile.wm_updates,
        "k": profile.k,
        "dagger_iterations": profile.dagger_iterations,
        "dagger_rollouts": profile.dagger_rollouts,
        "model": profile.model,
    }


def rl_spec(profile: Profile, env_id: str, learner: str, seed: int) -> dict:
    """The config of one RL run; a warm start names the hash of the run it starts from."""
    init = None
    if learner in WARM_START:
        init = config_hash(
            imitation_spec(profile, env_id, WARM_START[learner], profile.rl_budget, seed)
        )
    return {
        "kind": "rl",
        "profile": profile.name,
        "env_id": env_id,
        "env_kwargs": profile.env_kwargs.get(env_id, {}),
        "learner": learner,
        "init_budget": profile.rl_budget if init else None,
        "init_hash": init,
        "seed": seed,
        "steps": profile.rl_steps,
        "n_steps": profile.rl_n_steps,
        "eval_every": profile.rl_eval_every,
        "eval_episodes": profile.eval_episodes,
        "model": profile.model,
    }


def plan(
    profile: Profile, env_ids: list[str], learners: list[str]
) -> tuple[list[dict], list[dict]]:
    """The sweep's specs in two phases: imitation runs and RL from scratch, then warm starts."""
    first: list[dict] = []
    second: list[dict] = []
    for env_id in env_ids:
        for seed in profile.seeds:
            for learner in learners:
                if learner in IMITATION_LEARNERS:
                    first += [
                        imitation_spec(profile, env_id, learner, b, seed) for b in profile.budgets
                    ]
                elif learner in WARM_START:
                    second.append(rl_spec(profile, env_id, learner, seed))
                else:
                    first.append(rl_spec(profile, env_id, learner, seed))
    return first, second


def check_selection(profile: Profile, learners: list[str]) -> None:
    """Refuse a learner selection whose warm starts have no imitation run to start from."""
    unknown = [name for name in learners if name not in IMITATION_LEARNERS + RL_LEARNERS]
    if unknown:
        raise ValueError(
            f"unknown learner(s) {', '.join(unknown)}; "
            f"choose from {', '.join(IMITATION_LEARNERS + RL_LEARNERS)}"
        )
    for rl, source in WARM_START.items():
        if rl in learners and source not in learners:
            raise ValueError(f"{rl} warm-starts from {source}: select {source} too")
    if any(name in WARM_START for name in learners) and profile.rl_budget not in profile.budgets:
        raise ValueError(f"profile {profile.name}: rl_budget must be one of its budgets")


# --------------------------------------------------------------------------------------------
# One run (the function every backend executes)
# --------------------------------------------------------------------------------------------


def data_dir(results_dir: Path, env_id: str) -> Path:
    """Where a setting's demos and rollouts live."""
    return results_dir / "data" / slug(env_id)


def run_dir(results_dir: Path, spec: dict) -> Path:
    """Where a run's checkpoint and metrics live (its config hash)."""
    return results_dir / "runs" / config_hash(spec)


def versions() -> dict[str, str]:
    """Versions that can change a result."""
    found = {"python": platform.python_version()}
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


def run(spec: dict, context: RunContext) -> dict[str, Any]:
    """Train and evaluate one run of the sweep; return its results row (not yet written)."""
    torch.set_num_threads(1)
    for module in context.imports:
        importlib.import_module(module)  # a fresh worker (Ray) has not registered user envs
    results = Path(context.results_dir)
    out = run_dir(results, spec)
    agent_config = AgentConfig(model=ModelConfig(**spec["model"]))
    start = time.perf_counter()
    if spec["kind"] == "imitation":
        metrics = _imitation(spec, results, out, agent_config)
        greedy, sampled = metrics["eval"]["greedy"], metrics["eval"]["sampled"]
        random_success = metrics["eval"]["random"]["success_rate"]
        curve = None
    else:
        metrics = _rl(spec, results, out, agent_config)
        greedy, sampled = metrics["eval"]["greedy"], metrics["eval"]["sampled"]
        random_success = metrics["eval"]["random"]["success_rate"]
        curve = [[point["steps"], point["success_rate"]] for point in metrics["curve"]]
    row = {
        "hash": config_hash(spec),
        **{key: spec[key] for key in ("kind", "profile", "env_id", "learner", "seed")},
        "success": greedy["success_rate"],
        "success_sampled": sampled["success_rate"],
        "valid_action_rate": greedy["valid_action_rate"],
        "mean_episode_length": greedy["mean_episode_length"],
        "random_success": random_success,
        "expert_success": context.expert_success[spec["env_id"]],
        "seconds": time.perf_counter() - start,
        "config": spec,
        "versions": versions(),
    }
    if spec["kind"] == "imitation":
        row.update(budget=spec["budget"], episodes=spec["episodes"], updates=metrics["updates"])
    else:
        row.update(init_budget=spec["init_budget"], curve=curve, env_steps=metrics["env_steps"])
    return row


def _imitation(spec: dict, results: Path, out: Path, agent_config: AgentConfig) -> dict:
    data = data_dir(results, spec["env_id"])
    common = {
        "env_id": spec["env_id"],
        "demos": str(data / "demos.jsonl"),
        "out": str(out),
        "seed": spec["seed"],
        "episodes": spec["episodes"],
        "max_updates": spec["max_updates"],
        "eval_episodes": spec["eval_episodes"],
        "log_dir": str(results / "tensorboard"),
        "progress": False,
    }
    learner = spec["learner"]
    if learner == "bc":
        return train_bc(BCConfig(**common), agent_config)
    if learner == "dagger":
        config = DAggerConfig(
            **common, iterations=spec["dagger_iterations"], rollouts=spec["dagger_rollouts"]
        )
        return train_dagger(config, agent_config)
    config = IWMConfig(
        **common,
        rollout_file=str(data / "rollouts.jsonl"),
        k=spec["k"],
        budget=learner.removeprefix("iwm-"),
        wm_updates=spec["wm_updates"],
    )
    return train_iwm(config, agent_config)


def _rl(spec: dict, results: Path, out: Path, agent_config: AgentConfig) -> dict:
    init = None
    if spec["init_hash"] is not None:
        init = results / "runs" / spec["init_hash"] / "agent.pt"
        if not init.exists():
            raise FileNotFoundError(f"{init}: the run this RL run warm-starts from is missing")
    config = RLConfig(
        env_id=spec["env_id"],
        out=str(out),
        seed=spec["seed"],
        steps=spec["steps"],
        init_from=str(init) if init else None,
        n_steps=spec["n_steps"],
        batch_size=min(64, spec["n_steps"]),
        eval_every=spec["eval_every"],
        eval_episodes=spec["eval_episodes"],
        log_dir=str(results / "tensorboard"),
        progress=False,
    )
    return train_rl(config, agent_config, env_kwargs=spec["env_kwargs"])


# --------------------------------------------------------------------------------------------
# Preparing data, executing runs, the sweep
# --------------------------------------------------------------------------------------------


def prepare(profile: Profile, env_id: str, results_dir: Path, need_rollouts: bool) -> float:
    """Collect the setting's demos (and rollouts) once; return the expert's test success."""
    data = data_dir(results_dir, env_id)
    kwargs = profile.env_kwargs.get(env_id, {})
    demos, rollouts = data / "demos.jsonl", data / "rollouts.jsonl"
    for path, version in ((demos, DEMOS_VERSION), (rollouts, ROLLOUTS_VERSION)):
        if _outdated(path, version):
            # Collection is deterministic, so finished runs keep the same data; only the
            # format changed (e.g. checksums added).
            print(f"{path}: written by an older earlyexp; collecting it again", file=sys.stderr)
            path.unlink()
    if not demos.exists():
        collect_demos(env_id, profile.full_budget, demos, env_kwargs=kwargs, progress=False)
    if need_rollouts and not rollouts.exists():
        k = None if profile.k == "all" else int(profile.k)
        collect_rollouts(load_dataset(demos, env_id), demos, rollouts, k=k, progress=False)
    expert = evaluate_expert(env_id, episodes=profile.eval_episodes, env_kwargs=kwargs)
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
    imports = tuple(sorted({env_id.split(":")[0] for env_id in env_ids if ":" in env_id}))
    need_rollouts = any(name.startswith("iwm") for name in learners)
    expert = {
        env_id: prepare(profile, env_id, results_dir, need_rollouts)
        for env_id in tqdm(resolved, desc="preparing demos", disable=not progress, leave=False)
    }
    return RunContext(str(results_dir), expert, imports)


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
        pool = ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker)
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
) -> SweepOutcome:
    """Run every run of ``profile`` not yet in ``results_dir/results.jsonl``."""
    results_dir = Path(results_dir)
    learners = list(learners or IMITATION_LEARNERS + RL_LEARNERS)
    check_selection(profile, learners)
    executor = executor or local_executor(os.cpu_count() or 1)
    results_file = results_dir / RESULTS_FILE
    existing = read_results(results_file)
    outcome = SweepOutcome(problems=list(existing.problems))
    done = existing.done()
    context = prepare_all(profile, results_dir, env_ids or SETTINGS, learners, progress)
    phases = plan(profile, list(context.expert_success), learners)
    total = sum(len(phase) for phase in phases)
    outcome.skipped = sum(config_hash(spec) in done for phase in phases for spec in phase)

    bar = tqdm(
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


def with_seeds(profile: Profile, seeds: list[int] | None) -> Profile:
    """The profile with other seeds (a smaller or larger sweep of the same configs)."""
    return replace(profile, seeds=tuple(seeds)) if seeds else profile


def describe(profile: Profile) -> str:
    """One paragraph describing a profile (for ``earlyexp bench --help``)."""
    values = asdict(profile)
    return ", ".join(f"{k}={v}" for k, v in values.items() if k not in ("name", "cost"))

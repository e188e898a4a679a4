"""The ``earlyexp`` command line: list, check and play envs, collect demos and rollouts, train,
evaluate, run the benchmark sweep and report it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from agents import DEVICE_CHOICES, DEVICE_NAME
from benchmarks import sweep
from benchmarks.results import RESULTS_FILE, read_results
from envs import ContractError, check_env, env_info, make, registered_ids, resolve_id
from learners import get_learner, registered_learners
from learners.config import add_learner_arguments, config_fields, json_object, values_from_args
from learners.rollouts import PROPOSERS
from learners.world_model import parse_k


def cmd_envs(args: argparse.Namespace) -> int:
    """Print every registered id with its family and a one-line description."""
    for env_id in registered_ids():
        info = env_info(env_id)
        print(f"{env_id:<28} {info.family:<10} {info.description}")
    return 0


#: ``--split``: a knowledge split exists only where a setting declares one (``make`` says so).
SPLIT_CHOICES = ("train", "test", "novel")
ENV_KWARGS_HELP = (
    "the env's make() keyword arguments as a JSON object, e.g. '{\"knowledge\": true}' "
    "(Household's knowledge variant, whose novel split holds what its train split never asks)"
)


def cmd_check(args: argparse.Namespace) -> int:
    """Run check_env on both splits of an id, printing each check as it passes."""
    env_id = resolve_id(args.env_id)
    try:
        check_env(
            env_id,
            instances=args.instances,
            report=lambda name: print(f"ok  {name}"),
            env_kwargs=args.env_kwargs,
        )
    except ContractError as exc:
        print(f"FAIL {exc}")
        return 1
    print(f"{env_id} follows the earlyexp env contract")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """Play an env in the terminal: type a command or its number; 'expert' asks the oracle."""
    env = make(args.env_id, split=args.split)
    obs, info = env.reset(seed=args.seed)
    print(f"Goal: {obs['goal']}")
    steps = 0
    while True:
        print(f"\n{obs['text']}\n")
        for i, action in enumerate(info["admissible_actions"], start=1):
            print(f"  {i:>2}. {action}")
        try:
            line = input("> ").strip()
        except EOFError:
            print()
            return 0
        if line in ("quit", "exit"):
            return 0
        if line == "expert":
            line = env.unwrapped.expert_action()
            print(f"expert: {line}")
        elif line.isdigit() and 1 <= int(line) <= len(info["admissible_actions"]):
            line = info["admissible_actions"][int(line) - 1]
        obs, reward, terminated, truncated, info = env.step(line)
        steps += 1
        if terminated or truncated:
            print(f"\n{obs['text']}\n")
            outcome = "Task complete" if info["success"] else "Episode over"
            print(f"{outcome} after {steps} steps (reward {reward}).")
            return 0


def cmd_collect(args: argparse.Namespace) -> int:
    """Collect expert demonstrations to a dataset file."""
    from learners.data import collect_demos

    dataset = collect_demos(
        args.env_id,
        args.episodes,
        args.out,
        split=args.split,
        seed=args.seed,
        env_kwargs=args.env_kwargs,
    )
    solved = sum(e.success for e in dataset.episodes)
    print(
        f"wrote {args.out}: {len(dataset.episodes)} episodes, {dataset.num_steps} steps, "
        f"expert solved {solved}/{len(dataset.episodes)}"
    )
    return 0


def cmd_learners(args: argparse.Namespace) -> int:
    """Print every registered learner with what it needs and a one-line description."""
    for name in registered_learners():
        learner = get_learner(name)
        needs = [
            what
            for what, needed in (
                ("demos", learner.needs_demos),
                ("rollouts", learner.needs_rollouts),
                ("expert", learner.needs_expert),
                (f"warm start: {learner.warm_start}", learner.warm_start is not None),
            )
            if needed
        ]
        print(f"{name:<16} {', '.join(needs) or 'env only':<24} {learner.description}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a learner; save the agent and print its test-split evaluation."""
    from learners.evaluate import EvalResult, format_report

    env_id = resolve_id(args.env_id)
    learner = get_learner(args.learner)
    every_field = set().union(
        *(config_fields(get_learner(n).config) for n in registered_learners())
    )
    foreign = sorted((set(vars(args)) & every_field) - config_fields(learner.config))
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise ValueError(
            f"{flags}: not a flag of --learner {args.learner} (see earlyexp train --help)"
        )
    config = learner.make_config(**{**values_from_args(learner.config, args), "env_id": env_id})
    metrics = learner.train(config)
    summary = ", ".join(
        f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in metrics.items()
        if key not in ("env_id", "learner", "seed")
        and (isinstance(value, int | float | str) and not isinstance(value, bool))
    )
    print(f"trained {config.learner} on {env_id}: {summary}; saved {config.out}/agent.pt")
    if "eval" in metrics:
        print(f"test split, {config.eval_episodes} episodes:")
        print(format_report({k: EvalResult(**v) for k, v in metrics["eval"].items()}))
    return 0


def cmd_rollouts(args: argparse.Namespace) -> int:
    """Branch K alternatives at every state of a demos file and record what they did."""
    from agents import Agent
    from learners.data import load_dataset
    from learners.rollouts import collect_rollouts

    demos = load_dataset(args.demos, env_id=resolve_id(args.env_id))
    agent = Agent.load(args.proposer_agent) if args.proposer_agent else None
    counts = collect_rollouts(
        demos,
        args.demos,
        args.out,
        k=parse_k(args.k),
        seed=args.seed,
        proposer=args.proposer,
        agent=agent,
        temperature=args.temperature,
    )
    print(
        f"wrote {args.out}: {counts['states']} states, {counts['branches']} alternative "
        f"transitions (+{counts['states']} expert transitions)"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a saved agent (greedy and sampled) beside random and expert policies."""
    from agents import LMAgent, LMConfig, load_agent
    from agents.lm import new_lm_agent
    from learners.evaluate import evaluate_expert, format_report
    from learners.lifecycle import evaluate_run_agent

    env_id = resolve_id(args.env)
    if (args.checkpoint is None) == (args.lm_model is None):
        raise ValueError(
            "give a checkpoint (agent.pt) or --lm-model (a language model as it is), not "
            + ("both" if args.checkpoint else "neither")
        )
    if args.checkpoint is not None:
        agent = load_agent(args.checkpoint)  # either agent type
    else:
        agent = new_lm_agent(
            LMConfig(model=args.lm_model), seed=0, env_id=env_id, env_kwargs=args.env_kwargs
        )
    if args.lm_acting is not None:
        if not isinstance(agent, LMAgent):
            raise ValueError(
                "--lm-acting is a language-model agent's; this checkpoint is the policy model's"
            )
        agent.config = replace(agent.config, acting=args.lm_acting)
    agent.to(args.device)
    common = dict(
        split=args.split, episodes=args.episodes, seed=args.seed, env_kwargs=args.env_kwargs
    )
    results = evaluate_run_agent(agent, env_id, progress=not args.json, **common)
    results["expert"] = evaluate_expert(env_id, **common)
    if args.json:
        payload = {
            "env_id": env_id,
            "checkpoint": args.checkpoint,
            "lm_model": args.lm_model,
            "split": args.split,
            **results["greedy"].as_dict(),
            **{name: r.as_dict() for name, r in results.items()},
        }
        print(json.dumps(payload))
    else:
        print(f"{env_id}, {args.split} split, {args.episodes} episodes:")
        print(format_report(results))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run (or resume) a benchmark sweep, then write its report."""
    profile = sweep.customize(
        sweep.PROFILES[args.profile],
        seeds=args.seeds,
        demos=args.demos,
        settings=args.envs,
        learners=args.learners,
        values=args.set,
    )
    if args.address and args.backend != "ray":
        raise ValueError("--address is the Ray cluster's: add --backend ray")
    if args.jobs and args.backend == "ray":
        raise ValueError("--jobs is for --backend local; Ray schedules one CPU per run")
    if args.backend == "ray":
        executor = sweep.ray_executor(args.address)
    else:
        executor = sweep.local_executor(args.jobs or os.cpu_count() or 1)
    print(f"earlyexp bench: profile {profile.name} ({profile.cost})", file=sys.stderr)
    try:
        outcome = sweep.sweep(profile, args.out, executor=executor, device=args.device)
    except KeyboardInterrupt:
        kept = len(read_results(Path(args.out) / RESULTS_FILE).rows)
        print(
            f"earlyexp bench: interrupted; {kept} finished runs are kept in "
            f"{Path(args.out) / RESULTS_FILE}. Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    for problem in outcome.problems:
        print(f"earlyexp bench: warning: {problem}", file=sys.stderr)
    for failure in outcome.failures:
        print(f"earlyexp bench: run failed: {failure}", file=sys.stderr)
    from benchmarks.report import write_report  # scipy's statistics: only bench and report

    path = write_report(
        args.out,
        baseline=args.baseline or profile.baseline,
        compare=args.compare or list(profile.compare) or None,
        reps=args.reps,
        poi_reps=args.poi_reps,
        profile=profile.name,
    )
    print(
        f"{outcome.finished} runs finished, {outcome.skipped} already done, "
        f"{len(outcome.failures)} failed; report: {path}"
    )
    return 1 if outcome.failures else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of a results directory."""
    names = {row.get("learner") for row in read_results(Path(args.results_dir) / RESULTS_FILE).rows}
    for asked in [args.baseline, *(args.compare or [])]:
        if names and asked is not None and asked not in names:
            raise ValueError(
                f"{asked!r} has no runs in {args.results_dir}; learners with runs: "
                f"{', '.join(sorted(map(str, names))) or 'none'}"
            )
    known = sweep.PROFILES.get(args.profile) if args.profile else None
    baseline = args.baseline or (known.baseline if known else "bc")
    compare = args.compare or (list(known.compare) if known and known.compare else None)
    from benchmarks.report import write_report

    path = write_report(
        args.results_dir,
        baseline=baseline,
        compare=compare,
        reps=args.reps,
        poi_reps=args.poi_reps,
        seed=args.seed,
        profile=args.profile,
    )
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``earlyexp`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="earlyexp",
        description="Learning from the consequences of actions vs copying an expert.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    env_help = "a registered id, or 'module:id' to import a user's module first"

    p = sub.add_parser("envs", help="list registered env ids")
    p.set_defaults(run=cmd_envs)

    p = sub.add_parser("learners", help="list registered learners and what each needs")
    p.set_defaults(run=cmd_learners)

    p = sub.add_parser("check", help="check an env against Gymnasium and the earlyexp contract")
    p.add_argument("env_id", help=env_help)
    p.add_argument("--instances", type=_positive, default=20, help="expert episodes per split")
    p.add_argument("--env-kwargs", type=json_object, default={}, help=ENV_KWARGS_HELP)
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("play", help="play an env in the terminal")
    p.add_argument("env_id", help=env_help)
    p.add_argument("--seed", type=int, default=0, help="instance seed")
    p.add_argument("--split", choices=SPLIT_CHOICES, default="train")
    p.set_defaults(run=cmd_play)

    p = sub.add_parser("collect", help="collect expert demonstrations to a file")
    p.add_argument("env_id", help=env_help)
    p.add_argument("--episodes", type=_positive, required=True, help="number of episodes")
    p.add_argument("--out", required=True, help="dataset file to write (JSON Lines)")
    p.add_argument("--split", choices=SPLIT_CHOICES, default="train")
    p.add_argument("--seed", type=int, default=0, help="first instance seed")
    p.add_argument("--env-kwargs", type=json_object, default={}, help=ENV_KWARGS_HELP)
    p.set_defaults(run=cmd_collect)

    p = sub.add_parser("train", help="train an agent; saves DIR/agent.pt and DIR/metrics.json")
    p.add_argument("env_id", help=env_help)
    p.add_argument(
        "--learner",
        required=True,
        help=f"{', '.join(registered_learners())}, or 'module:name' to import a user's module",
    )
    # One help entry per config class, named by its shortest learner (iwm for iwm-*).
    configs: dict[type, str] = {}
    for name in sorted(registered_learners(), key=len):
        configs.setdefault(get_learner(name).config, name)
    by_name = {name: config for config, name in configs.items()}
    add_learner_arguments(p, by_name, skip={"env_id", "learner"})
    p.set_defaults(run=cmd_train)

    p = sub.add_parser(
        "rollouts", help="early experience: branch K alternatives at every expert state"
    )
    p.add_argument("env_id", help=env_help)
    p.add_argument("--demos", required=True, help="expert dataset file (from `earlyexp collect`)")
    p.add_argument("--out", required=True, help="rollout file to write (JSON Lines)")
    p.add_argument(
        "--k", type=_k, default="8", help="alternatives per state, or 'all' (default: 8)"
    )
    p.add_argument("--proposer", choices=PROPOSERS, default="uniform")
    p.add_argument("--proposer-agent", help="agent checkpoint the policy proposer samples from")
    p.add_argument("--temperature", type=float, default=1.0, help="policy proposer temperature")
    p.add_argument("--seed", type=int, default=0, help="seeds the proposer")
    p.set_defaults(run=cmd_rollouts)

    p = sub.add_parser(
        "eval",
        help="evaluate a saved agent on a split (or a language model as it is: --lm-model)",
    )
    p.add_argument("checkpoint", nargs="?", help="agent.pt written by `earlyexp train`")
    p.add_argument(
        "--lm-model",
        help="instead of a checkpoint, a language model as it is, with no fine-tuning "
        "(zero-shot): smollm2, a local model path, or tiny (untrained: a baseline)",
    )
    p.add_argument(
        "--lm-acting",
        choices=("rank", "generate"),
        help="a language-model agent's acting (default: the checkpoint's, else rank)",
    )
    p.add_argument(
        "--device",
        type=_device,
        default="cpu",
        help=f"where the agent acts: {DEVICE_CHOICES} (default: cpu)",
    )
    p.add_argument("--env", required=True, help=env_help)
    p.add_argument("--episodes", type=_positive, default=50)
    p.add_argument("--split", choices=SPLIT_CHOICES, default="test")
    p.add_argument("--seed", type=int, default=10_000, help="first instance seed")
    p.add_argument("--env-kwargs", type=json_object, default={}, help=ENV_KWARGS_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=cmd_eval)

    profiles = "; ".join(f"{p.name}: {p.cost}" for p in sweep.PROFILES.values())
    p = sub.add_parser(
        "bench",
        help="the data-efficiency benchmark: run or resume a sweep, then report it",
        description=f"Profiles - {profiles}.",
    )
    p.add_argument("--profile", choices=sorted(sweep.PROFILES), default="quick")
    p.add_argument("--envs", nargs="+", help=f"settings (default: the profile's); {env_help}")
    p.add_argument(
        "--learners",
        nargs="+",
        help="registered learners or 'module:name' (default: the profile's; see earlyexp learners)",
    )
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the profile's)")
    p.add_argument(
        "--demos",
        nargs="+",
        type=_positive,
        help="demo budgets as episode counts, e.g. 25 50 100 200 (default: the profile's)",
    )
    p.add_argument(
        "--set",
        nargs="+",
        metavar="KEY=VALUE",
        help="config values: KEY=VALUE for every learner with that field, LEARNER.KEY=VALUE "
        "for one (e.g. max_updates=2000 iwm-matched.wm_updates=500)",
    )
    p.add_argument("--out", default="results/bench", help="results directory (resumable)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--jobs", type=_positive, help="local processes (default: all cores)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument(
        "--device",
        type=_device,
        default="auto",
        help=f"where every run trains and acts: {DEVICE_CHOICES} (default: auto, a GPU when "
        "there is one)",
    )
    _add_report_arguments(p)
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("report", help="write RESULTS_DIR/report.md and its plots")
    p.add_argument("results_dir", help="a directory written by `earlyexp bench`")
    _add_report_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seeds the bootstraps")
    p.add_argument("--profile", help="report one profile of a results file that mixes several")
    p.set_defaults(run=cmd_report)
    return parser


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline", help="the learner the others are compared with (default: the profile's, bc)"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        help="the learners the headline compares with the baseline (default: all others)",
    )
    parser.add_argument(
        "--reps", type=_positive, default=2000, help="the report's bootstrap resamples (CIs, IQM)"
    )
    parser.add_argument(
        "--poi-reps", type=_positive, default=300, help="resamples for P(improvement)"
    )


def _import_user_learners(argv: Sequence[str]) -> None:
    """Import the modules of ``module:name`` learners named in ``argv`` before the parser is
    built, so that their config fields become flags too."""
    for word in argv:
        for name in word.split("="):
            if ":" in name and not name.startswith("-"):
                # Not a learner (an env id), or a bad one: the command itself says so.
                with contextlib.suppress(ValueError, TypeError):
                    get_learner(name)


def _k(text: str) -> str:
    try:
        parse_k(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _device(text: str) -> str:
    if not DEVICE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use {DEVICE_CHOICES}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``earlyexp`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _import_user_learners(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("earlyexp: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as exc:
        if os.environ.get("EARLYEXP_DEBUG"):
            raise
        print(f"earlyexp: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

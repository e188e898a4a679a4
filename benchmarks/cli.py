"""The ``earlyexp`` command line: list, check and play envs, collect demos and rollouts, train,
evaluate, run the benchmark sweep and report it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import report, sweep
from benchmarks.results import RESULTS_FILE, read_results
from envs import ContractError, check_env, env_info, make, registered_ids, resolve_id
from learners.config import add_learner_arguments, config_fields, config_from_args
from learners.imitation import BCConfig, DAggerConfig, train_bc, train_dagger
from learners.rl import RLConfig, train_rl
from learners.rollouts import PROPOSERS
from learners.world_model import IWMConfig, parse_k, train_iwm

#: Each learner's config (its fields are the CLI flags) and its training function.
LEARNERS = {
    "bc": (BCConfig, train_bc),
    "dagger": (DAggerConfig, train_dagger),
    "iwm": (IWMConfig, train_iwm),
    "rl": (RLConfig, train_rl),
}


def cmd_envs(args: argparse.Namespace) -> int:
    """Print every registered id with its family and a one-line description."""
    for env_id in registered_ids():
        info = env_info(env_id)
        print(f"{env_id:<28} {info.family:<10} {info.description}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run check_env on both splits of an id, printing each check as it passes."""
    env_id = resolve_id(args.env_id)
    try:
        check_env(env_id, instances=args.instances, report=lambda name: print(f"ok  {name}"))
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

    dataset = collect_demos(args.env_id, args.episodes, args.out, split=args.split, seed=args.seed)
    solved = sum(e.success for e in dataset.episodes)
    print(
        f"wrote {args.out}: {len(dataset.episodes)} episodes, {dataset.num_steps} steps, "
        f"expert solved {solved}/{len(dataset.episodes)}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a learner on demos; save the agent and print its test-split evaluation."""
    from learners.evaluate import EvalResult, format_report

    env_id = resolve_id(args.env_id)
    config_type, train = LEARNERS[args.learner]
    given = set(vars(args)) & set().union(*(config_fields(c) for c, _ in LEARNERS.values()))
    foreign = sorted(given - config_fields(config_type))
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise ValueError(
            f"{flags}: not a flag of --learner {args.learner} (see earlyexp train --help)"
        )
    config = config_from_args(config_type, args, env_id=env_id)
    metrics = train(config)
    if args.learner == "rl":
        start = f"from {config.init_from}" if config.init_from else "from scratch"
        curve = ", ".join(f"{p['steps']}: {p['success_rate']:.2f}" for p in metrics["curve"])
        print(
            f"trained rl {start} for {metrics['env_steps']} env steps "
            f"({metrics['env_steps_per_second']:.0f} steps/s); saved {config.out}/agent.pt"
        )
        print(f"test success (greedy) by env step: {curve}")
    else:
        _print_imitation(args.learner, config, metrics)
    if "eval" in metrics:
        print(f"test split, {config.eval_episodes} episodes:")
        print(format_report({k: EvalResult(**v) for k, v in metrics["eval"].items()}))
    return 0


def _print_imitation(learner: str, config: BCConfig, metrics: dict) -> None:
    print(
        f"trained {learner} on {metrics['demo_episodes']} episodes "
        f"({metrics['demo_steps']} steps): {metrics['updates']} updates, "
        f"val accuracy {metrics['val_accuracy']:.3f}; saved {config.out}/agent.pt"
    )
    if "wm_val_f1" in metrics:
        print(
            f"world model: next-observation token F1 {metrics['wm_val_f1']:.3f} on validation "
            f"(copying the current observation: {metrics['wm_copy_f1']:.3f})"
        )


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
    from agents import Agent
    from learners.evaluate import evaluate_agent, evaluate_expert, format_report

    env_id = resolve_id(args.env)
    agent = Agent.load(args.checkpoint)
    common = dict(split=args.split, episodes=args.episodes, seed=args.seed)
    results = evaluate_agent(agent, env_id, progress=not args.json, **common)
    results["expert"] = evaluate_expert(env_id, **common)
    if args.json:
        payload = {
            "env_id": env_id,
            "checkpoint": args.checkpoint,
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
    profile = sweep.with_seeds(sweep.PROFILES[args.profile], args.seeds)
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
        outcome = sweep.sweep(
            profile, args.out, env_ids=args.envs, learners=args.learners, executor=executor
        )
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
    path = report.write_report(args.out)
    print(
        f"{outcome.finished} runs finished, {outcome.skipped} already done, "
        f"{len(outcome.failures)} failed; report: {path}"
    )
    return 1 if outcome.failures else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of a results directory."""
    print(report.write_report(args.results_dir))
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

    p = sub.add_parser("check", help="check an env against Gymnasium and the earlyexp contract")
    p.add_argument("env_id", help=env_help)
    p.add_argument("--instances", type=_positive, default=20, help="expert episodes per split")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("play", help="play an env in the terminal")
    p.add_argument("env_id", help=env_help)
    p.add_argument("--seed", type=int, default=0, help="instance seed")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.set_defaults(run=cmd_play)

    p = sub.add_parser("collect", help="collect expert demonstrations to a file")
    p.add_argument("env_id", help=env_help)
    p.add_argument("--episodes", type=_positive, required=True, help="number of episodes")
    p.add_argument("--out", required=True, help="dataset file to write (JSON Lines)")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--seed", type=int, default=0, help="first instance seed")
    p.set_defaults(run=cmd_collect)

    p = sub.add_parser("train", help="train an agent; saves DIR/agent.pt and DIR/metrics.json")
    p.add_argument("env_id", help=env_help)
    p.add_argument("--learner", choices=sorted(LEARNERS), required=True)
    add_learner_arguments(p, {name: c for name, (c, _) in LEARNERS.items()}, skip={"env_id"})
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

    p = sub.add_parser("eval", help="evaluate a saved agent on a split")
    p.add_argument("checkpoint", help="agent.pt written by `earlyexp train`")
    p.add_argument("--env", required=True, help=env_help)
    p.add_argument("--episodes", type=_positive, default=50)
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--seed", type=int, default=10_000, help="first instance seed")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=cmd_eval)

    profiles = "; ".join(f"{p.name}: {p.cost}" for p in sweep.PROFILES.values())
    p = sub.add_parser(
        "bench",
        help="the data-efficiency benchmark: run or resume a sweep, then report it",
        description=f"Profiles - {profiles}.",
    )
    p.add_argument("--profile", choices=sorted(sweep.PROFILES), default="quick")
    p.add_argument("--envs", nargs="+", help=f"settings (default: the eight); {env_help}")
    p.add_argument(
        "--learners",
        nargs="+",
        choices=sweep.IMITATION_LEARNERS + sweep.RL_LEARNERS,
        help="learners (default: all)",
    )
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the profile's)")
    p.add_argument("--out", default="results/bench", help="results directory (resumable)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--jobs", type=_positive, help="local processes (default: all cores)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("report", help="write RESULTS_DIR/report.md and its plots")
    p.add_argument("results_dir", help="a directory written by `earlyexp bench`")
    p.set_defaults(run=cmd_report)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``earlyexp`` console script."""
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

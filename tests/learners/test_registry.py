"""The learner registry, the one config validation style, reproducing commands, and golden
results (BC, DAgger and IWM on a small fixed-seed budget give the recorded numbers).

A change meant to alter results (a new batching, a new loss) re-records the golden file
with ``python -m tests.learners.test_registry`` and says so in its commit."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import sys
from pathlib import Path

import pytest
import torch

from agents import Agent, ModelConfig
from benchmarks.cli import build_parser
from learners import RunConfig, get_learner, option, register_learner, registered_learners
from learners.config import values_from_args
from learners.data import collect_demos
from learners.imitation import BCConfig
from tests.devices import EXACT_ON_CPU

FIXTURE = Path(__file__).parent / "fixtures" / "golden_results.json"
HOUSEHOLD = "earlyexp/Household-v0"
BUILT_IN = ["bc", "dagger", "iwm", "iwm-matched", "iwm-extra", "iwm-next", "rl"]


@dataclasses.dataclass
class _Config(RunConfig):
    steps: int = option(3, "steps", low=1)


def _train(config: _Config) -> dict:
    return {"steps": config.steps}


@pytest.mark.parametrize("name", BUILT_IN + ["rl-scratch", "rl-from-bc", "rl-from-iwm"])
def test_every_builtin_is_registered_with_a_config_it_validates(name: str) -> None:
    learner = get_learner(name)
    config = learner.make_config(out="x")
    assert isinstance(config, RunConfig) and config.learner == name
    for key, value in learner.overrides.items():
        assert getattr(config, key) == value
    assert learner.needs_demos == ("demos" in dataclasses.asdict(config))


def test_needs_are_declared_not_guessed() -> None:
    assert get_learner("iwm-matched").needs_rollouts and not get_learner("bc").needs_rollouts
    assert get_learner("dagger").needs_expert
    assert get_learner("rl-from-iwm").warm_start == "iwm-matched"
    assert (
        not get_learner("rl-scratch").needs_demos and get_learner("rl-scratch").warm_start is None
    )


def test_register_is_idempotent_and_refuses_a_changed_registration() -> None:
    register_learner("test-steps", train=_train, config=_Config, needs_demos=False)
    register_learner("test-steps", train=_train, config=_Config, needs_demos=False)  # again
    assert "test-steps" in registered_learners()
    assert get_learner("test-steps").train(get_learner("test-steps").make_config()) == {"steps": 3}
    with pytest.raises(ValueError, match="already registered with other arguments"):
        register_learner(
            "test-steps", train=_train, config=_Config, needs_demos=False, needs_expert=True
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "bad name"}, ValueError, "use letters, digits"),
        ({"config": dict}, TypeError, "derived from learners.config.RunConfig"),
        ({"train": "no_colon"}, ValueError, "'module:attr' string"),
    ],
)
def test_bad_registrations_are_refused(kwargs, error, message) -> None:
    args = {"name": "test-bad", "train": _train, "config": _Config, **kwargs}
    with pytest.raises(error, match=message):
        register_learner(args.pop("name"), **args)


def test_a_declared_need_the_config_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="has no field for: demos, episodes, rollout_file"):
        register_learner("test-needy", train=_train, config=_Config, needs_rollouts=True)
    with pytest.raises(ValueError, match="has no field for: init_from"):
        register_learner(
            "test-warm", train=_train, config=_Config, needs_demos=False, warm_start="bc"
        )
    assert "test-needy" not in registered_learners()


def test_module_name_imports_the_users_module(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "userlearners.py").write_text(
        "from learners import register_learner\n"
        "from learners.imitation import BCConfig, train_bc\n"
        "register_learner('bc-patient', train=train_bc, config=BCConfig,"
        " overrides={'patience': 50})\n"
    )
    monkeypatch.chdir(tmp_path)  # found in the current directory, as python -m finds it
    monkeypatch.delitem(sys.modules, "userlearners", raising=False)
    learner = get_learner("userlearners:bc-patient")
    config = learner.make_config(out="o")
    assert config.learner == "userlearners:bc-patient" and config.patience == 50
    with pytest.raises(ValueError, match="unknown learner 'userlearners:nope'; registered:"):
        get_learner("userlearners:nope")
    with pytest.raises(ValueError, match="cannot import module 'no_such_mod' for learner"):
        get_learner("no_such_mod:bc")


def test_a_variant_refuses_values_that_contradict_it() -> None:
    with pytest.raises(ValueError, match="learner 'iwm-matched' fixes budget='matched'"):
        get_learner("iwm-matched").make_config(budget="extra")
    with pytest.raises(ValueError, match="wm_update: not a field of IWMConfig"):
        get_learner("iwm").make_config(wm_update=3)


def test_configs_validate_types_bounds_and_choices_in_one_message() -> None:
    with pytest.raises(ValueError) as excinfo:
        BCConfig(max_updates=0, batch_size="32", learning_rate=-1.0, episodes=True)
    message = str(excinfo.value)
    assert message.startswith("invalid BCConfig: ")
    for part in (
        "max_updates must be >= 1, got 0",
        "batch_size must be int, got str '32'",
        "learning_rate must be >= 0, got -1.0",
        "episodes must be int or None, got bool True",
    ):
        assert part in message
    with pytest.raises(ValueError, match="unknown target 'image'; choose one of delta, next"):
        get_learner("iwm").make_config(target="image")
    assert BCConfig(model={"d_model": 32}).model == ModelConfig(d_model=32)  # from JSON


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_command_rebuilds_the_same_config(name: str) -> None:
    learner = get_learner(name)
    values = {"out": "runs/x y", "seed": 3, "eval_episodes": 7, "progress": False}
    values["model"] = ModelConfig(d_model=32, n_layers=1, ff_dim=64)
    if learner.needs_demos:
        values.update(demos="d.jsonl", episodes=5, max_updates=2999)
    if name.startswith("rl"):
        values.update(steps=77, env_kwargs={"games": 3}, init_from="bc/agent.pt")
    config = learner.make_config(env_id=HOUSEHOLD, **values)
    words = shlex.split(learner.command(config))
    assert words[:5] == ["earlyexp", "train", HOUSEHOLD, "--learner", name]
    args = build_parser().parse_args(words[1:])
    again = learner.make_config(**{**values_from_args(learner.config, args), "env_id": HOUSEHOLD})
    assert again == config


def _digest(path: Path) -> str:
    state = Agent.load(path).model.state_dict()
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].numpy().tobytes())
    return digest.hexdigest()


GOLDEN_RUNS = {
    "bc": {},
    "dagger": {"iterations": 1, "rollouts": 2},
    "iwm": {"k": "3", "wm_updates": 8},
}


def _golden_runs(directory: Path) -> dict[str, dict]:
    """Train the golden runs in ``directory``; their metrics and weight digests by learner."""
    collect_demos(HOUSEHOLD, 6, directory / "demos.jsonl", seed=0, progress=False)
    common = dict(
        env_id=HOUSEHOLD,
        demos=str(directory / "demos.jsonl"),
        seed=0,
        log_dir=str(directory / "runs"),
        progress=False,
        max_updates=20,
        val_every=5,
        eval_episodes=4,
        # history_len as recorded: the golden numbers predate the default's change to 0
        model={"d_model": 32, "n_layers": 1, "ff_dim": 64, "history_len": 4},
        device="cpu",  # the CPU path, exactly as before devices existed, on any machine
    )
    results = {}
    for name, extra in GOLDEN_RUNS.items():
        learner = get_learner(name)
        out = directory / name
        metrics = learner.train(learner.make_config(**common, **extra, out=str(out)))
        results[name] = {"metrics": metrics, "weights": _digest(out / "agent.pt")}
    return results


@EXACT_ON_CPU
def test_results_match_the_golden_file(tmp_path: Path) -> None:
    """BC, DAgger and IWM give the recorded numbers (and, on the same torch and the same
    CPU kernels, the weights): any change to what a seeded run computes shows up here.

    A float metric may differ in its last bits where torch dispatches to other kernels:
    recorded with AVX2, the validation NLLs differ by 2e-7 (relative) with AVX-512, where
    every other metric is the same."""
    expected = json.loads(FIXTURE.read_text())
    for name, result in _golden_runs(tmp_path).items():
        for key, value in expected[name]["metrics"].items():
            if key in ("learner",) or "second" in key:
                continue
            if isinstance(value, float):
                assert result["metrics"][key] == pytest.approx(value, rel=1e-6), (name, key)
            else:
                assert result["metrics"][key] == value, (name, key)
        # 20 updates cannot outlast patience (10 validations, every 5): every stage capped
        assert result["metrics"]["hit_cap"] is True, name
        kernels = (torch.__version__, torch.backends.cpu.get_cpu_capability())
        if kernels == (expected["torch"], expected["cpu_capability"]):
            assert result["weights"] == expected[name]["weights"], name


if __name__ == "__main__":  # re-record the golden file (see the module docstring)
    import tempfile

    torch.set_num_threads(1)  # as under pytest (tests/conftest.py): sums depend on threads
    with tempfile.TemporaryDirectory() as tmp:
        runs = _golden_runs(Path(tmp))
    golden = {
        name: {
            "metrics": {k: v for k, v in run["metrics"].items() if "second" not in k},
            "weights": run["weights"],
        }
        for name, run in runs.items()
    }
    FIXTURE.write_text(
        json.dumps(
            {
                **golden,
                "torch": torch.__version__,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    print(f"wrote {FIXTURE}")

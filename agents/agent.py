"""An Agent bundles the tokenizer, the policy model and its config: act, save, load.

The agent keeps the episode's history itself, so a plain env loop works::

    agent.reset()
    obs, info = env.reset(seed=0)
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
        if terminated or truncated:
            break

A checkpoint is one file written by :meth:`Agent.save`: ``torch.save``'s bytes sealed with
their sha256 (:func:`agents.files.seal`), so a cut, edited or appended-to file is refused,
and read back with ``torch.load(weights_only=True)``, so loading never runs code from it.
Other tools can still ``torch.load`` the file: zip readers skip the seal after the zip.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.features import collate, encode_action, encode_state
from agents.files import atomic_write, seal, unseal
from agents.model import ModelConfig, PolicyModel
from agents.tokenizer import HashingTokenizer

CHECKPOINT_FORMAT = "earlyexp-agent"
CHECKPOINT_VERSION = 2

#: What ``--device`` accepts.
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
DEVICE_NAME = re.compile(r"auto|cpu|cuda(?::(\d+))?")
#: What ``auto`` means when set (cpu, cuda or cuda:N): e.g. ``cpu`` on a GPU machine, as the
#: test suite sets it (tests/conftest.py), since its exact results are the CPU's.
DEVICE_ENV = "EARLYEXP_DEVICE"

#: ModelConfig fields newer than checkpoint version 2 itself. A checkpoint written before a
#: field existed lacks it and loads with the field's default, which is how the model behaved
#: then (a new field's default must keep the old behaviour and weights); any other missing
#: field is still an error.
LATER_MODEL_FIELDS = ("lookahead", "lookahead_tokens")


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` means: ``auto`` is the device that :data:`DEVICE_ENV` names
    where it is set, else the GPU when there is one, else the CPU.

    Raises:
        ValueError: an unknown name, or a GPU this machine does not have (what to use instead
            in the message).
    """
    match = DEVICE_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"unknown device {name!r}: use {DEVICE_CHOICES}")
    if name == "auto":
        chosen = os.environ.get(DEVICE_ENV, "auto")
        if chosen != "auto":
            try:
                return resolve_device(chosen)
            except ValueError as exc:
                raise ValueError(f"{DEVICE_ENV}={chosen!r}: {exc}") from None
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        built = "with" if torch.backends.cuda.is_built() else "without"
        raise ValueError(
            f"device {name!r}: no CUDA GPU is available here (torch {torch.__version__}, built "
            f"{built} CUDA); use --device cpu, or auto to take a GPU only where there is one"
        )
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"numbered from 0"
        )
    return torch.device(name)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU; nothing on the CPU, where bf16 is slower and every result
    stays exactly what it was."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class AgentConfig:
    """Everything needed to rebuild an :class:`Agent`; stored in every checkpoint.

    The tokenizer's vocabulary is ``model.vocab_size`` (one source of truth, so the two can
    never disagree).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture of the policy model (see :class:`agents.model.ModelConfig`)."""

    @classmethod
    def from_dict(cls, data: Any) -> AgentConfig:
        """Rebuild from ``asdict(config)``; ValueError naming unknown, missing or mistyped fields."""
        if not isinstance(data, Mapping):
            raise ValueError(f"config must be a dict, got {type(data).__name__}")
        values = dict(data)
        model = values.get("model")
        if isinstance(model, Mapping):  # written before a later field existed: its default
            later = {name: getattr(ModelConfig, name) for name in LATER_MODEL_FIELDS}
            model = {**later, **model}
        values["model"] = _dataclass_from_dict(ModelConfig, model, "model")
        return _dataclass_from_dict(cls, values, "")

    def diff(self, other: AgentConfig) -> list[str]:
        """Human-readable ``field: self_value != other_value`` lines for differing fields."""
        mine, theirs = _flatten(asdict(self)), _flatten(asdict(other))
        return [
            f"{key}: {mine.get(key)!r} != {theirs.get(key)!r}"
            for key in sorted(mine.keys() | theirs.keys())
            if mine.get(key) != theirs.get(key)
        ]


class Agent:
    """Scores admissible commands with a :class:`PolicyModel` and remembers the episode.

    Args:
        config: architecture; defaults to ``AgentConfig()``.
        seed: seeds the weight initialization (without touching torch's global RNG) and the
            agent's own sampling RNG, used when :meth:`act` gets no ``rng``.
    """

    def __init__(self, config: AgentConfig | None = None, seed: int = 0) -> None:
        self.config = config if config is not None else AgentConfig()
        if not isinstance(self.config, AgentConfig):
            raise TypeError(f"config must be an AgentConfig, got {type(self.config).__name__}")
        self.seed = seed
        self.tokenizer = HashingTokenizer(self.config.model.vocab_size)
        # fork_rng restores the global RNG afterwards: building an agent inside a seeded
        # experiment must not shift that experiment's random stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = PolicyModel(self.config.model)
        self.rng = np.random.default_rng(seed)
        #: Whatever the caller stored with :meth:`save` (env id, learner, training stats).
        self.meta: dict[str, Any] = {}
        self._history: list[tuple[str, str]] = []

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> Agent:
        """Move the model to ``device`` (a torch device or a :func:`resolve_device` name);
        returns the agent. Checkpoints are written from the CPU whatever the device."""
        if isinstance(device, str):
            device = resolve_device(device)
        self.model.to(device)
        return self

    # -- episode ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the episode's history; call at every ``env.reset``."""
        self._history = []

    @property
    def history(self) -> tuple[tuple[str, str], ...]:
        """This episode's ``(observation text, command taken)`` pairs, oldest first."""
        return tuple(self._history)

    def encode_observation(self, obs: Mapping[str, Any]) -> list[int]:
        """Token ids of the current state (``obs`` plus this agent's history)."""
        goal, text = _goal_and_text(obs)
        return self.encode_state(goal, text, self._history)

    def encode_state(self, goal: str, text: str, history: Sequence[tuple[str, str]]) -> list[int]:
        """Token ids of a state under this agent's config (learners encode datasets with it)."""
        cfg = self.config.model
        return encode_state(
            self.tokenizer,
            goal,
            text,
            history,
            cfg.max_state_tokens,
            cfg.history_len,
            cfg.command_history_len,
        )

    def encode_action(self, command: str) -> list[int]:
        """Token ids of a candidate command under this agent's config."""
        return encode_action(self.tokenizer, command, self.config.model.max_action_tokens)

    def action_probs(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> np.ndarray:
        """The policy's probabilities over ``info["admissible_actions"]`` (float64, sums to 1)."""
        return _softmax(self._logits(obs, _admissible(info)))

    def act(
        self,
        obs: Mapping[str, Any],
        info: Mapping[str, Any],
        greedy: bool = True,
        rng: np.random.Generator | None = None,
    ) -> str:
        """Choose one of ``info["admissible_actions"]`` and record the step in the history.

        Args:
            obs: the env's observation, ``{"goal": str, "text": str, ...}``.
            info: the env's info; only ``"admissible_actions"`` is read.
            greedy: take the most probable command (ties: the first listed); else sample.
            rng: the sampling RNG (for reproducible runs); defaults to the agent's own.
        """
        commands = _admissible(info)
        choice = self.choose(self._logits(obs, commands), greedy, rng)
        self._history.append((obs["text"], commands[choice]))
        return commands[choice]

    def choose(
        self, logits: np.ndarray, greedy: bool = True, rng: np.random.Generator | None = None
    ) -> int:
        """Index of the chosen command: the most probable one (ties: the first), or a sample
        from the softmax with ``rng`` (default: the agent's own)."""
        if greedy:
            return int(np.argmax(logits))
        sampler = rng if rng is not None else self.rng
        return int(sampler.choice(len(logits), p=_softmax(logits)))

    def _logits(self, obs: Mapping[str, Any], commands: list[str]) -> np.ndarray:
        return self.state_logits(*_goal_and_text(obs), self._history, commands)

    def state_logits(
        self, goal: str, text: str, history: Sequence[tuple[str, str]], commands: list[str]
    ) -> np.ndarray:
        """The policy's logits over ``commands`` in a given state (not this agent's own
        episode): what learners use to query a policy at recorded states."""
        return self.batch_logits([(goal, text, history, commands)])[0]

    def batch_logits(
        self, states: Sequence[tuple[str, str, Sequence[tuple[str, str]], list[str]]]
    ) -> list[np.ndarray]:
        """Logits of several states ``(goal, text, history, commands)`` in one forward pass
        (evaluation plays many episodes in lockstep); one array per state."""
        encoded = [self.encode_state(goal, text, history) for goal, text, history, _ in states]
        cands = [[self.encode_action(c) for c in commands] for *_, commands in states]
        device = self.device
        batch = collate(encoded, cands, device=device)
        # The agent may be acting mid-training (evaluation callbacks): restore the mode.
        # Toggle only then: ``train()``/``eval()`` walk every submodule, which cost about a
        # third of an evaluation step.
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with torch.inference_mode(), autocast(device):
                logits, _ = self.model(batch)
        finally:
            if was_training:
                self.model.train()
        rows = logits.double().cpu().numpy()
        return [rows[i, : len(commands)] for i, (*_, commands) in enumerate(states)]

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None) -> Path:
        """Write one checkpoint file atomically; returns its path.

        A crash or kill mid-write leaves the previous file (or none), never a torn one.

        Args:
            path: the checkpoint file; parent directories are created.
            meta: caller's extras (env id, learner, training stats): nested dicts, lists,
                tuples, str, int, float, bool, None and tensors; numpy scalars become Python
                numbers. Loaded back as ``agent.meta``.
        """
        path = Path(path)
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": asdict(self.config),
            "tokenizer": self.tokenizer.spec(),
            "seed": int(self.seed),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "meta": _plain(dict(meta) if meta is not None else dict(self.meta), "meta"),
        }
        payload = io.BytesIO()
        torch.save(checkpoint, payload)
        with atomic_write(path, "wb") as f:
            f.write(seal(payload.getvalue()))
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], expected_config: AgentConfig | None = None
    ) -> Agent:
        """Load a checkpoint written by :meth:`save`.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a readable checkpoint (truncated, corrupt, another
                format or version), would run code when unpickled, its config differs from
                ``expected_config``, or its weights do not fit its config. The message names
                the path and the reason.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"cannot load agent from {path}: no such file")
        if not path.is_file():
            raise ValueError(f"cannot load agent from {path}: not a file")
        ckpt = _torch_load(path)
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ValueError(
                f"cannot load agent from {path}: not an earlyexp agent checkpoint "
                f"(format {found!r}, expected {CHECKPOINT_FORMAT!r}); write one with Agent.save"
            )
        if ckpt.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"cannot load agent from {path}: checkpoint version {ckpt.get('version')!r}, "
                f"this earlyexp reads version {CHECKPOINT_VERSION}"
            )
        try:
            config = AgentConfig.from_dict(ckpt.get("config"))
        except (ValueError, TypeError) as e:
            raise ValueError(f"cannot load agent from {path}: bad config: {e}") from None
        if expected_config is not None and config != expected_config:
            raise ValueError(
                f"cannot load agent from {path}: its config does not match the expected one "
                f"(checkpoint != expected): " + "; ".join(config.diff(expected_config))
            )
        seed = ckpt.get("seed")
        agent = cls(config, seed=seed if type(seed) is int else 0)
        # The vocabulary size is the config's; what must match is the text -> ids scheme.
        spec, ours = ckpt.get("tokenizer"), agent.tokenizer.spec()
        scheme = ("id", "n_special")
        if not isinstance(spec, dict) or any(spec.get(k) != ours[k] for k in scheme):
            raise ValueError(
                f"cannot load agent from {path}: it was trained with tokenizer {spec!r}, "
                f"this earlyexp tokenizes with {ours!r}"
            )
        problem = _state_dict_problem(ckpt.get("state_dict"), agent.model.state_dict())
        if problem:
            raise ValueError(
                f"cannot load agent from {path}: its weights do not fit its config: {problem}"
            )
        agent.model.load_state_dict(ckpt["state_dict"])
        meta = ckpt.get("meta")
        agent.meta = dict(meta) if isinstance(meta, dict) else {}
        return agent

    def __repr__(self) -> str:
        return f"Agent({self.config}, seed={self.seed})"


# -- helpers ---------------------------------------------------------------------------------
def _goal_and_text(obs: Mapping[str, Any]) -> tuple[str, str]:
    if not isinstance(obs, Mapping) or not isinstance(obs.get("goal"), str):
        raise ValueError(f"obs must be a dict with str 'goal' and 'text', got {obs!r:.200}")
    if not isinstance(obs.get("text"), str):
        raise ValueError(f"obs must be a dict with str 'goal' and 'text', got {obs!r:.200}")
    return obs["goal"], obs["text"]


def _admissible(info: Mapping[str, Any]) -> list[str]:
    commands = info.get("admissible_actions") if isinstance(info, Mapping) else None
    if (
        not isinstance(commands, list | tuple)
        or not commands
        or not all(isinstance(c, str) for c in commands)
    ):
        raise ValueError(
            f"info['admissible_actions'] must be a non-empty list of str, got {commands!r:.200}"
        )
    return list(commands)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def _dataclass_from_dict(cls: type, data: Any, where: str) -> Any:
    prefix = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where or 'config'} must be a dict, got {type(data).__name__}")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    missing = sorted(set(names) - set(data))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append("unknown fields " + ", ".join(prefix + n for n in unknown))
        if missing:
            parts.append("missing fields " + ", ".join(prefix + n for n in missing))
        raise ValueError("; ".join(parts))
    for name, value in data.items():
        default = names[name].default
        if default is MISSING:  # a nested config, checked by its own call
            continue
        # Exact types: a bool is an int to isinstance, and a float layer count is a bug.
        ok = type(value) is type(default) or (type(default) is float and type(value) is int)
        if not ok:
            raise ValueError(
                f"field {prefix}{name} must be {type(default).__name__}, got {value!r}"
            )
    return cls(**data)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _plain(value: Any, where: str) -> Any:
    """``value`` restricted to what ``torch.load(weights_only=True)`` reads back."""
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value), where)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: keys must be str or int, got {k!r}")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, list | tuple):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(
        f"{where} is a {type(value).__name__}, which a weights-only checkpoint cannot hold; "
        "use dicts, lists, str, int, float, bool, None or tensors"
    )


def _torch_load(path: Path) -> Any:
    try:
        payload = unseal(path.read_bytes())
    except ValueError as e:
        raise ValueError(f"cannot load agent from {path}: not a readable checkpoint: {e}") from None
    try:
        with warnings.catch_warnings():
            # A foreign pickle makes torch warn about its protocol before refusing it.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        blocked = re.search(r"unsupported GLOBAL (\S+)", str(e))
        if blocked:
            raise ValueError(
                f"refusing to load agent from {path}: the file asks to import or call "
                f"{blocked.group(1)}, i.e. it is a pickle that could run code; only load "
                "checkpoints written by Agent.save"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))
        raise ValueError(
            f"cannot load agent from {path}: not a readable checkpoint (corrupt, truncated or "
            f"another kind of file): {detail.group(1).strip() if detail else str(e)[:200]}"
        ) from None
    except Exception as e:  # torch raises RuntimeError, EOFError, KeyError... on bad bytes
        raise ValueError(
            f"cannot load agent from {path}: not a readable checkpoint (corrupt, truncated or "
            f"another kind of file): {type(e).__name__}: {str(e)[:200]}"
        ) from None


def _state_dict_problem(given: Any, expected: Mapping[str, torch.Tensor]) -> str:
    if not isinstance(given, Mapping):
        return f"state_dict is a {type(given).__name__}, not a dict of tensors"
    problems = []
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    if missing:
        problems.append("missing keys " + _few(missing))
    if unexpected:
        problems.append("unexpected keys " + _few(unexpected))
    for key in sorted(set(expected) & set(given)):
        value = given[key]
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif value.shape != expected[key].shape:
            problems.append(
                f"{key} has shape {tuple(value.shape)}, the config needs "
                f"{tuple(expected[key].shape)}"
            )
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            problems.append(f"{key} holds NaN or inf")
    return "; ".join(problems)


def _few(names: list[str], limit: int = 8) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more

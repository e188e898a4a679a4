"""The env contract every earlyexp setting follows, and a base class that owns its bookkeeping.

The contract (see DESIGN.md) in short:

* Gymnasium API: ``reset(seed=..., options=...) -> (obs, info)`` and the 5-tuple ``step``.
  All randomness goes through ``self.np_random``. Envs never truncate themselves; the step
  cap is ``max_episode_steps`` at registration.
* Observation: ``{"goal": str, "text": str}``; a setting may add native keys.
* Action: a text command. ``info["admissible_actions"]`` is the non-empty list of commands
  valid now. An inadmissible command is still a step: the state does not change, the
  observation says the command is not available, ``info["invalid_action"] = True``. A
  non-string action raises ``TypeError``.
* Free text (the one exception to the rule above): a setting whose commands take text the
  agent composes (a search query, a message) declares *free-text command templates* in
  ``free_text_commands``, each holding ``{text}`` once (``"search[{text}]"``), and answers
  ``accepts_free_text(command) -> bool``: whether ``command``, exactly as given, fills a
  template that is available in the current state. Such a command is valid even when it
  is not in ``info["admissible_actions"]``, which keeps listing suggestions (so agents
  that rank the admissible commands work unchanged). The text is non-blank, at most
  :data:`FREE_TEXT_MAX_LENGTH` characters of :data:`FREE_TEXT_CHARS` (printable ASCII
  without line breaks, tabs, brackets or double quotes, which delimit it); anything else,
  an empty ``search[]`` included, is refused as any inadmissible command.
  :func:`is_valid_command` is the whole rule.
* Outcome: reward 1.0 on the step the task is completed, else 0.0; ``terminated`` on success
  or unrecoverable failure; ``info["success"]``; ``info["checklist"]`` maps each verifiable
  sub-goal to whether it holds now.
* Expert: ``expert_action() -> str`` from any reachable state.
* Branching: ``get_state()`` / ``set_state(state)`` snapshot and restore the whole env, its
  RNG included.
* Splits: ``split="train"`` or ``"test"`` (:data:`SPLITS`); test holds instances train never
  generates.
* Knowledge split (optional): a second test split, :data:`KNOWLEDGE_SPLIT` (``"novel"``),
  which an env declares with ``knowledge_split = "novel"`` and ``knowledge_entities``: the
  names (object types, substances, products, ...) it holds out. Its promise, which
  ``check_env`` verifies: every goal of the novel split names at least one of them; no
  goal of the train split and no command of the expert's path on it (what demonstrations
  show) names any; and each of them does appear in the train split's observations, on the
  expert's path or one branched command off it (what early experience records). It is
  the positive control of the question the framework asks: the one place where what
  actions led to carries knowledge the demonstrations lack. A name is matched as a whole
  word, case-insensitively (:func:`names_entity`). An env without one (the default,
  ``knowledge_split = None``) generates only train and test.

A user's plain ``gymnasium.Env`` that provides exactly these works with every learner;
subclassing :class:`TextEnv` is the short way to get the bookkeeping right. An env that
declares no free-text templates (the default) needs neither attribute.
"""

from __future__ import annotations

import copy
import re
import string
from typing import Any

import gymnasium as gym
from gymnasium import spaces

#: The splits every contract env generates.
SPLITS = ("train", "test")
#: The name of the optional knowledge split (see the module docstring).
KNOWLEDGE_SPLIT = "novel"
#: Characters an observation or command may contain (printable ASCII).
CHARSET = frozenset(string.printable)
MAX_TEXT_LENGTH = 8192
#: The placeholder of a free-text command template.
TEXT = "{text}"
#: Characters the text of a free-text command may hold: printable ASCII (space included)
#: without line breaks, tabs, brackets or double quotes, which delimit it in commands.
FREE_TEXT_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation + " ") - set(
    '[]"'
)
#: The longest free text (characters): a filled template fits the 256-character action space.
FREE_TEXT_MAX_LENGTH = 200


def text_space(max_length: int = MAX_TEXT_LENGTH) -> spaces.Text:
    """The Gymnasium space of a natural-language string (goal, observation text or command)."""
    return spaces.Text(max_length=max_length, min_length=0, charset=CHARSET)


def check_split(split: str, splits: tuple[str, ...] = SPLITS) -> str:
    """Return ``split`` if it is one of ``splits``, else raise a ValueError that lists them."""
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(splits)}")
    return split


def env_splits(env: gym.Env) -> tuple[str, ...]:
    """The splits ``env`` (a contract env or a wrapper of one) generates: :data:`SPLITS`,
    then its knowledge split if it declares one."""
    knowledge = getattr(env.unwrapped, "knowledge_split", None)
    return SPLITS + ((knowledge,) if knowledge else ())


def names_entity(text: str, entity: str) -> bool:
    """Whether ``text`` names ``entity`` (a knowledge split's held-out name): as a whole
    word or phrase, case-insensitively ("soup" in "the frozen soup", not in "soups" nor
    "pot" in "potato")."""
    pattern = r"(?<![A-Za-z0-9])" + re.escape(entity) + r"(?![A-Za-z0-9])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def invalid_action_text(command: str) -> str:
    """The observation text for a command that is not valid now (see :func:`is_valid_command`)."""
    shown = command if len(command) <= 80 else command[:77] + "..."
    # ascii(): the text space is printable ASCII, and repr() keeps printable non-ASCII (é, emoji)
    return f"Nothing happens: the command {ascii(shown)} is not available here."


def free_text_of(template: str, command: str) -> str | None:
    """The text ``command`` fills ``template``'s ``{text}`` with, or ``None`` when it does not
    fill it: other characters around the text, or a text that is blank, longer than
    :data:`FREE_TEXT_MAX_LENGTH` or holds a character outside :data:`FREE_TEXT_CHARS`."""
    prefix, _, suffix = template.partition(TEXT)
    if len(command) <= len(prefix) + len(suffix):
        return None
    if not (command.startswith(prefix) and command.endswith(suffix)):
        return None
    text = command[len(prefix) : len(command) - len(suffix)]
    if len(text) > FREE_TEXT_MAX_LENGTH or not text.strip() or not FREE_TEXT_CHARS.issuperset(text):
        return None
    return text


def free_text_accepted(env: gym.Env, command: str) -> bool:
    """Whether ``env`` accepts ``command`` (exactly as given) as a free-text command now;
    ``False`` for an env that declares no free-text templates."""
    accepts = getattr(env, "accepts_free_text", None)
    if not getattr(env, "free_text_commands", ()) or not callable(accepts):
        return False
    return bool(accepts(command))


def is_valid_command(env: gym.Env, command: str, admissible: list[str]) -> bool:
    """The contract's rule: whether stepping ``command`` (exactly as given) must be accepted
    now, where ``admissible`` is the last ``info["admissible_actions"]``: it is admissible,
    or it is a free-text command the env accepts now."""
    return command in admissible or free_text_accepted(env, command)


class TextEnv(gym.Env[dict, str]):
    """Base class of a contract env: owns ``step``'s bookkeeping, snapshots and ``info``.

    A setting implements the hooks below and keeps all of its mutable episode state in
    ``self.world`` (any deep-copyable object), so the default snapshot is exact:

    * ``_generate() -> tuple[str, str]``: build a new instance from ``self.np_random`` into
      ``self.world``; return ``(goal, initial observation text)``.
    * ``admissible_actions() -> list[str]``: the commands valid now (non-empty).
    * ``_execute(command) -> str``: apply an admissible command; return the feedback text.
    * ``checklist() -> dict[str, bool]``: the task's verifiable sub-goals.
    * ``expert_action() -> str``: an oracle's command from the current state.
    * optionally ``_succeeded()`` (default: every checklist item holds) and ``_failed()``
      (default: never; an unrecoverable state).
    * optionally free-text commands: templates in the class attribute
      ``free_text_commands`` (default none) and ``_free_text_available(template)``
      (default: always), whether a template may be used in the current state.
      ``_execute`` then also receives the free-text commands :meth:`accepts_free_text`
      accepts.
    * optionally a knowledge split: ``knowledge_split = "novel"`` and the held-out names in
      ``knowledge_entities`` (class attributes, or instance attributes set before
      ``super().__init__``); ``_generate`` then also serves ``self.split == "novel"``.

    ``step`` ignores whitespace around a command (``" look\n"`` is ``look``), as a terminal
    would; anything else neither in ``info["admissible_actions"]`` nor an accepted free-text
    command is an invalid step.
    """

    #: Free-text command templates, each holding ``{text}`` once (see the module docstring).
    free_text_commands: tuple[str, ...] = ()
    #: The knowledge split's name (:data:`KNOWLEDGE_SPLIT`), or ``None`` for an env without one.
    knowledge_split: str | None = None
    #: The names the knowledge split holds out (see the module docstring).
    knowledge_entities: tuple[str, ...] = ()

    metadata = {"render_modes": ["ansi", "human"]}

    def __init__(self, split: str = "train", render_mode: str | None = None) -> None:
        self.split = check_split(split, env_splits(self))
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; expected one of "
                f"{', '.join(self.metadata['render_modes'])} or None"
            )
        self.render_mode = render_mode
        self.observation_space = spaces.Dict({"goal": text_space(), "text": text_space()})
        self.action_space = text_space(max_length=256)
        self.world: Any = None
        self.goal = ""
        self._text = ""
        self._admissible: list[str] = []
        self._done = False

    # -- hooks a setting implements ---------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        raise NotImplementedError

    def admissible_actions(self) -> list[str]:
        """The commands valid in the current state."""
        raise NotImplementedError

    def _execute(self, command: str) -> str:
        raise NotImplementedError

    def checklist(self) -> dict[str, bool]:
        """The task's verifiable sub-goals and whether each holds now."""
        raise NotImplementedError

    def expert_action(self) -> str:
        """An oracle's command from the current state (any reachable state)."""
        raise NotImplementedError

    def _succeeded(self) -> bool:
        return all(self.checklist().values())

    def _failed(self) -> bool:
        return False

    def _free_text_available(self, template: str) -> bool:
        """Whether the free-text ``template`` may be used in the current state."""
        return True

    def accepts_free_text(self, command: str) -> bool:
        """Whether ``command`` (exactly as given) fills a free-text template available now."""
        if self.world is None:
            return False
        return any(
            free_text_of(template, command) is not None and self._free_text_available(template)
            for template in self.free_text_commands
        )

    # -- Gymnasium API ----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.goal, self._text = self._generate()
        self._done = False
        self._admissible = self.admissible_actions()
        return self._obs(), self._info(invalid=False, success=False)

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if not isinstance(action, str):
            raise TypeError(
                f"an action is a text command (str), got {type(action).__name__}: {action!r}; "
                f"pick one of info['admissible_actions']"
            )
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended; call reset() to start a new one")
        command = action.strip()
        if command not in self._admissible and not self.accepts_free_text(command):
            self._text = invalid_action_text(action)
            return self._obs(), 0.0, False, False, self._info(invalid=True, success=False)
        self._text = self._execute(command)
        success = self._succeeded()
        self._done = success or self._failed()
        self._admissible = self.admissible_actions()
        return self._obs(), float(success), self._done, False, self._info(False, success)

    def render(self) -> str | None:
        frame = f"Goal: {self.goal}\n{self._text}"
        if self.render_mode == "human":
            print(frame)
            return None
        return frame

    # -- branching --------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """A snapshot of the whole env, RNG included; restore it with :meth:`set_state`."""
        return copy.deepcopy(
            {
                "world": self.world,
                "goal": self.goal,
                "text": self._text,
                "admissible": self._admissible,
                "done": self._done,
                "rng": self.np_random.bit_generator.state,
            }
        )

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot taken by :meth:`get_state` (the snapshot stays reusable)."""
        state = copy.deepcopy(state)
        self.world = state["world"]
        self.goal = state["goal"]
        self._text = state["text"]
        self._admissible = state["admissible"]
        self._done = state["done"]
        self.np_random.bit_generator.state = state["rng"]

    # -- helpers ----------------------------------------------------------------------------
    def _obs(self) -> dict[str, str]:
        return {"goal": self.goal, "text": self._text}

    def _info(self, invalid: bool, success: bool) -> dict[str, Any]:
        return {
            "admissible_actions": list(self._admissible),
            "invalid_action": invalid,
            "success": success,
            "checklist": self.checklist(),
        }

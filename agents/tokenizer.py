"""A hashing tokenizer: text -> token ids with no vocabulary file and no fitting step.

Every word, number and punctuation mark is hashed with CRC-32 of its UTF-8 bytes into
``[N_SPECIAL, vocab_size)``. CRC-32 is fixed by the standard, so ids are identical across
processes, machines and Python versions (Python's ``hash()`` is salted per process and would
silently break every checkpoint). Unknown words never fail; two words may collide, which at
the vocabulary sizes of these settings costs little.

Ids below ``N_SPECIAL`` are reserved for the markers that lay out a state (see
:func:`agents.features.encode_state`).
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache

PAD = 0  #: padding; never produced by :meth:`HashingTokenizer.encode`
CLS = 1  #: first token of every state; the encoder pools from its output
GOAL = 2  #: starts the goal (task instruction)
NOW = 3  #: starts the current observation
ACT = 4  #: starts an action: a past command in the history, or a candidate command
PREV = 5  #: starts a past observation in the history
#: Ids ``[0, N_SPECIAL)`` are reserved. 6..15 are unused spares, so a marker added later does
#: not shift the hash range and invalidate every trained checkpoint.
N_SPECIAL = 16
#: Markers the state encoder uses to split a state into segments.
MARKERS = (CLS, GOAL, NOW, ACT, PREV)
#: Names the scheme in checkpoints; change it whenever the text -> ids mapping changes.
TOKENIZER_ID = "hashing-crc32-v1"

# Words (letters only, any script), numbers, and every other non-space character alone, so
# "fridge." and "fridge" share the word's id and "get_order(id=7)" keeps its structure.
_TOKEN_RE = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_")


@lru_cache(maxsize=1 << 18)
def _token_id(token: str, n_hashed: int) -> int:
    return N_SPECIAL + zlib.crc32(token.encode("utf-8")) % n_hashed


@lru_cache(maxsize=1 << 16)
def _encode(text: str, vocab_size: int) -> tuple[int, ...]:
    # Observations repeat a lot (same room, same page), so caching whole texts pays off.
    n_hashed = vocab_size - N_SPECIAL
    return tuple(_token_id(tok, n_hashed) for tok in _TOKEN_RE.findall(text.lower()))


class HashingTokenizer:
    """Lowercase, split into words / numbers / punctuation, hash each token to an id.

    Args:
        vocab_size: size of the id space, special ids included; must exceed ``N_SPECIAL``.
    """

    def __init__(self, vocab_size: int = 8192) -> None:
        if not isinstance(vocab_size, int) or vocab_size <= N_SPECIAL:
            raise ValueError(f"vocab_size must be an int > {N_SPECIAL}, got {vocab_size!r}")
        self.vocab_size = vocab_size

    def tokenize(self, text: str) -> list[str]:
        """The lowercased tokens of ``text`` (useful for token-level metrics such as F1)."""
        return _TOKEN_RE.findall(text.lower())

    def token_ids(self, text: str) -> tuple[int, ...]:
        """Cached ids of ``text`` as an immutable tuple (the hot path; no copy)."""
        return _encode(text, self.vocab_size)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``, each in ``[N_SPECIAL, vocab_size)``."""
        return list(_encode(text, self.vocab_size))

    def spec(self) -> dict[str, int | str]:
        """What determines the ids; stored in checkpoints and checked on load."""
        return {"id": TOKENIZER_ID, "vocab_size": self.vocab_size, "n_special": N_SPECIAL}

    def __repr__(self) -> str:
        return f"HashingTokenizer(vocab_size={self.vocab_size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashingTokenizer) and other.vocab_size == self.vocab_size

    def __hash__(self) -> int:
        return hash((HashingTokenizer, self.vocab_size))

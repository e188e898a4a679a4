"""Crash-safe file writing shared by every file earlyexp writes (datasets, checkpoints, results),
and the checksum seal of binary files (checkpoints)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it onto ``path``.

    A kill at any moment leaves either the old file or the new one, never a half-written
    file under ``path`` (at worst a stray ``.<name>.*.tmp`` beside it). The file gets the
    usual 0644 permissions, not mkstemp's 0600, so collaborators can read results.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    # Makes the rename durable; not every OS/filesystem lets you open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: Ends every sealed file: this marker, the sha256 of everything before it (hex), a newline.
SEAL_MARKER = b"\nearlyexp-sha256:"
_SEAL_LENGTH = len(SEAL_MARKER) + 64 + 1


def seal(payload: bytes) -> bytes:
    """``payload`` followed by its sha256, so :func:`unseal` detects any edit, cut or tail."""
    return payload + SEAL_MARKER + hashlib.sha256(payload).hexdigest().encode() + b"\n"


def unseal(data: bytes) -> bytes:
    """The payload of sealed ``data``; ValueError saying why when the seal is missing or wrong."""
    trailer = data[-_SEAL_LENGTH:]
    if len(data) < _SEAL_LENGTH or not (
        trailer.startswith(SEAL_MARKER) and trailer.endswith(b"\n")
    ):
        raise ValueError(
            "it does not end with an earlyexp checksum (it was truncated or appended to, "
            "or not written by earlyexp)"
        )
    payload = data[:-_SEAL_LENGTH]
    if hashlib.sha256(payload).hexdigest().encode() != trailer[len(SEAL_MARKER) : -1]:
        raise ValueError("its checksum does not match its bytes (it was edited or corrupted)")
    return payload

"""Tokenized training items kept on disk, so training data does not have to fit in memory.

A :class:`TokenStore` holds items of one dataclass whose fields are ``int``, ``list[int]``
or ``list[list[int]]`` (a :class:`~learners.data.Decision`, a world-model transition). Items
are appended as int32 arrays to an anonymous temporary file (deleted by the OS when the
store is closed or the process dies, even by SIGKILL) and read back by index through a
memory map, so the training loop's random minibatches page in what they touch and the OS
can drop the rest. Appending after reading is allowed (DAgger adds rounds).
"""

from __future__ import annotations

import mmap
import os
import tempfile
import typing
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

_KINDS = {int: "int", list[int]: "ids", list[list[int]]: "id_lists"}
_ITEMSIZE = np.dtype(np.int32).itemsize


class TokenStore(Sequence[T], Generic[T]):
    """A disk-backed, append-only sequence of ``item_type`` items."""

    def __init__(
        self,
        item_type: type[T],
        items: Iterable[T] = (),
        directory: str | os.PathLike | None = None,
    ) -> None:
        """Store ``items`` (consumed lazily, one at a time) in an anonymous file in
        ``directory`` (default: the system's temporary directory; give a directory on
        disk, as tmpfs would keep the data in memory)."""
        if not is_dataclass(item_type):
            raise TypeError(f"a TokenStore holds dataclass items, not {item_type!r}")
        hints = typing.get_type_hints(item_type)
        self.item_type = item_type
        self._fields: list[tuple[str, str]] = []
        for f in fields(item_type):
            if hints[f.name] not in _KINDS:
                raise TypeError(
                    f"{item_type.__name__}.{f.name} is {hints[f.name]}; a TokenStore holds only "
                    "int, list[int] and list[list[int]] fields"
                )
            self._fields.append((f.name, _KINDS[hints[f.name]]))
        # Lives as long as the store (closed by close()); the OS deletes it on close or death.
        self._file = tempfile.TemporaryFile(dir=directory, prefix="earlyexp-tokens-")  # noqa: SIM115
        self._offsets = array("q", [0])
        self._pending: list[int] = []
        self._written = 0  # int32 values in the file
        self._map: mmap.mmap | None = None
        self._view: np.ndarray | None = None
        self.extend(items)

    def append(self, item: T) -> None:
        """Add one item at the end."""
        if type(item) is not self.item_type:
            raise TypeError(
                f"this store holds {self.item_type.__name__}, got {type(item).__name__}"
            )
        values = self._pending
        for name, kind in self._fields:
            value = getattr(item, name)
            if kind == "int":
                values.append(value)
            elif kind == "ids":
                values.append(len(value))
                values.extend(value)
            else:
                values.append(len(value))
                values.extend(len(ids) for ids in value)
                for ids in value:
                    values.extend(ids)
        self._offsets.append(self._written + len(values))
        if len(values) >= 1 << 16:
            self._flush()

    def extend(self, items: Iterable[T]) -> None:
        """Add ``items`` at the end, one at a time."""
        for item in items:
            self.append(item)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @typing.overload
    def __getitem__(self, index: int) -> T: ...

    @typing.overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a store of {n} items")
        index %= n
        view = self._readable()
        values = view[self._offsets[index] : self._offsets[index + 1]].tolist()
        cursor, out = 0, {}
        for name, kind in self._fields:
            if kind == "int":
                out[name], cursor = values[cursor], cursor + 1
            elif kind == "ids":
                size = values[cursor]
                out[name], cursor = values[cursor + 1 : cursor + 1 + size], cursor + 1 + size
            else:
                count = values[cursor]
                sizes, cursor = values[cursor + 1 : cursor + 1 + count], cursor + 1 + count
                lists = []
                for size in sizes:
                    lists.append(values[cursor : cursor + size])
                    cursor += size
                out[name] = lists
        return self.item_type(**out)

    def close(self) -> None:
        """Release the map and the file (the OS deletes it)."""
        self._view = None
        if self._map is not None:
            self._map.close()
            self._map = None
        self._file.close()

    def __enter__(self) -> TokenStore[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def nbytes(self) -> int:
        """Bytes of item data on disk (what a list of Python ints would take ~9x of)."""
        return (self._written + len(self._pending)) * _ITEMSIZE

    def _flush(self) -> None:
        if self._pending:
            data = np.asarray(self._pending, dtype=np.int32)
            self._file.seek(self._written * _ITEMSIZE)
            self._file.write(data.tobytes())
            self._file.flush()
            self._written += len(self._pending)
            self._pending = []

    def _readable(self) -> np.ndarray:
        if self._pending or self._view is None or len(self._view) != self._written:
            self._flush()
            self._view = None
            if self._map is not None:
                self._map.close()
            self._map = mmap.mmap(
                self._file.fileno(), self._written * _ITEMSIZE, access=mmap.ACCESS_READ
            )
            self._view = np.frombuffer(self._map, dtype=np.int32)
        return self._view

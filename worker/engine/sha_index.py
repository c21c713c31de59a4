"""The stored commits' shas, sorted, in the worker's local cache: which of a few commits are
stored, answered by binary search instead of reading every part's sha column (0.2 s at 400,000
commits, on every push).

One file of 20-byte binary shas in order (the base), beside it the shas added and removed since
(each a small sorted file), and the names of the parts it all reflects. A run asks it before its
commit and advances it after: the added shas go into the journal, the removed ones too (or out
of it), and only when the journal has grown to a sixteenth of the base (at least MIN_JOURNAL
shas) is the base rewritten with it, so that a push costs what it adds, not a copy of 8 MB at
400,000 commits. When it reflects other parts than the ones asked about (a fresh cache, a run
that died between its commit and the advance), it is rebuilt from the parts once.
"""

from __future__ import annotations

import bisect
import mmap
import os
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path

import pyarrow.parquet as pq

SHA_BYTES = 20


class _Sorted(Sequence[bytes]):
    """A sorted file of fixed-width shas, as a sequence that bisect can search."""

    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data) // SHA_BYTES

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        return bytes(self.data[i * SHA_BYTES : (i + 1) * SHA_BYTES])


# The journal's size below which the base is never rewritten, whatever its own size.
MIN_JOURNAL = 4096


def _merge(base: bytes, gone: list[bytes], new: list[bytes]) -> bytes:
    """`base` (sorted shas) without `gone` (sorted, each in it) and with `new` (sorted, none in
    it), sorted."""
    stored = _Sorted(base)
    if gone:
        keep = []
        start = 0
        for key in gone:
            i = bisect.bisect_left(stored, key, lo=start)
            if i < len(stored) and stored[i] == key:
                keep.append(base[start * SHA_BYTES : i * SHA_BYTES])
                start = i + 1
        keep.append(base[start * SHA_BYTES :])
        base = b"".join(keep)
        stored = _Sorted(base)
    if new:
        pieces = []
        start = 0
        for key in new:
            i = bisect.bisect_left(stored, key, lo=start)
            pieces.append(base[start * SHA_BYTES : i * SHA_BYTES])
            pieces.append(key)
            start = i
        pieces.append(base[start * SHA_BYTES :])
        base = b"".join(pieces)
    return base


def _contains(stored: Sequence[bytes], key: bytes) -> bool:
    i = bisect.bisect_left(stored, key)
    return i < len(stored) and stored[i] == key


def _split(data: bytes) -> set[bytes]:
    return {data[i : i + SHA_BYTES] for i in range(0, len(data), SHA_BYTES)}


class ShaIndex:
    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / "stored-shas.bin"
        self.added_path = cache_dir / "stored-shas.added"
        self.removed_path = cache_dir / "stored-shas.removed"
        self.parts_path = cache_dir / "stored-shas.parts"

    def reflects(self, part_names: Iterable[str]) -> bool:
        try:
            return self.parts_path.read_text() == _key(part_names) and self.path.exists()
        except FileNotFoundError:
            return False

    def _journal(self) -> tuple[set[bytes], set[bytes]]:
        """The shas added to the base and removed from it since it was written."""
        found = []
        for path in (self.added_path, self.removed_path):
            try:
                found.append(_split(path.read_bytes()))
            except FileNotFoundError:
                found.append(set())
        return found[0], found[1]

    def _write(
        self,
        part_names: Iterable[str],
        base: bytes | None,
        added: Iterable[bytes] = (),
        removed: Iterable[bytes] = (),
    ) -> None:
        """Write the journal, and the base unless None (kept as it is)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The parts file goes first, so that a crash before the last write leaves a mismatch.
        self.parts_path.unlink(missing_ok=True)
        writes = [(self.added_path, sorted(added)), (self.removed_path, sorted(removed))]
        if base is not None:
            writes.append((self.path, [base]))
        for path, pieces in writes:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(b"".join(pieces))
            os.replace(tmp, path)
        self.parts_path.write_text(_key(part_names))

    def _rebuild(self, parts: Sequence[tuple[str, Path]]) -> None:
        shas: list[bytes] = []
        for _, commits in parts:
            column = pq.read_table(commits, columns=["sha"]).column("sha")
            shas.extend(bytes.fromhex(sha) for sha in column.to_pylist())
        shas.sort()
        self._write([name for name, _ in parts], b"".join(shas))

    def among(self, parts: Sequence[tuple[str, Path]], shas: Iterable[str]) -> set[str]:
        """Which of `shas` the parts (name, commits file) hold."""
        if not self.reflects(name for name, _ in parts):
            self._rebuild(parts)
        added, removed = self._journal()
        found: set[str] = set()
        with open(self.path, "rb") as file:
            empty = os.fstat(file.fileno()).st_size == 0
            with (
                mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
                if not empty
                else nullcontext(b"")
            ) as data:
                stored = _Sorted(data)
                for sha in shas:
                    key = bytes.fromhex(sha)
                    if key in added or (key not in removed and _contains(stored, key)):
                        found.add(sha)
        return found

    def contents(self) -> bytes:
        """Every sha the index holds, sorted, as one base would hold them."""
        added, removed = self._journal()
        return _merge(self.path.read_bytes(), sorted(removed), sorted(added))

    def advance(
        self,
        old_parts: Iterable[str],
        new_parts: Iterable[str],
        added: Iterable[str],
        removed: Iterable[str],
    ) -> None:
        """After a commit from `old_parts` to `new_parts`: add and remove those shas. An index
        that reflected other parts (or none, unless the old state was empty) is left to be
        rebuilt when next asked."""
        old_names, new_names = list(old_parts), list(new_parts)
        added, removed = list(added), list(removed)
        if not added and not removed and _key(old_names) == _key(new_names):
            return
        if not self.reflects(old_names):
            if old_names:
                return
            self._write([], b"")
        journal_added, journal_removed = self._journal()
        for key in {bytes.fromhex(sha) for sha in removed}:
            if key in journal_added:
                journal_added.discard(key)
            else:
                journal_removed.add(key)
        for key in {bytes.fromhex(sha) for sha in added}:
            if key in journal_removed:
                journal_removed.discard(key)
            else:
                journal_added.add(key)
        size = self.path.stat().st_size // SHA_BYTES
        if len(journal_added) + len(journal_removed) <= max(MIN_JOURNAL, size // 16):
            self._write(new_names, None, journal_added, journal_removed)
            return
        base = _merge(self.path.read_bytes(), sorted(journal_removed), sorted(journal_added))
        self._write(new_names, base)


def _key(part_names: Iterable[str]) -> str:
    return "\n".join(sorted(part_names))

"""Path classes (DESIGN.md definition 9): which paths hold work by people.

Every path the history ever changed is `vendored`, `generated`, `documentation` or `source`,
decided at the default branch's head: GitHub Linguist's rules through go-enry on the path (and,
for a file at the head, on its content), overridden by the head's `.gitattributes`
(`linguist-vendored`, `linguist-generated`, `linguist-documentation`). The classes are kept as a
table of (path, class) and applied when the aggregates are counted, so a change of rules costs a
count of the stored rows, never an extraction.

A run re-judges only the paths whose inputs changed: paths new to the table, paths the head's
tree diff touched (their content or presence), and every path when a `.gitattributes` changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

import enry
import pyarrow as pa
import pyarrow.compute as pc
import pygit2
from pygit2.enums import AttrCheck, DiffOption

from worker.engine.languages import CLASSIFY_PREFIX_BYTES


class PathClass(IntEnum):
    """In the order the excluded reasons are given (a vendored and generated path is vendored)."""

    SOURCE = 0
    DOCUMENTATION = 1
    VENDORED = 2
    GENERATED = 3


CLASSES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.binary(), nullable=False),
        pa.field("class", pa.int8(), nullable=False),
    ]
)

_ATTRIBUTES = ("linguist-vendored", "linguist-generated", "linguist-documentation")
# Only the head's attribute files: never the machine's or the user's. The engine reads a bare
# mirror, so no index or work tree adds to what the commit says.
_ATTR_FLAGS = AttrCheck.INDEX_ONLY | AttrCheck.INCLUDE_COMMIT | AttrCheck.NO_SYSTEM
_GITATTRIBUTES = b".gitattributes"


def empty_classes() -> pa.Table:
    return CLASSES_SCHEMA.empty_table()


def _override(value: bool | str | None) -> bool | None:
    """What Linguist makes of an attribute's value: set, or any value but "false", is yes;
    unset or "false" is no; unspecified leaves the decision to its own rules."""
    if value is None:
        return None
    if value is True or value is False:
        return value
    return value != "false"


class _Judge:
    """Judges paths at one head: `generated` tells, for each file at the head, what enry makes
    of its content; the head's `.gitattributes` give the overrides."""

    def __init__(
        self,
        repo: pygit2.Repository,
        head: str | None,
        generated: dict[bytes, bool],
        attribute_files: list[bytes],
    ) -> None:
        self.repo = repo
        self.head = head
        self.generated = generated
        self._attribute_files = attribute_files
        self._attributes: bool | None = None

    @property
    def attributes(self) -> bool:
        """Whether any `.gitattributes` at the head names a linguist attribute: without one,
        there is nothing to look up."""
        if self._attributes is None:
            self._attributes = self.head is not None and _mentions_linguist(
                self.repo, self.repo[self.head].peel(pygit2.Tree), self._attribute_files
            )
        return self._attributes

    def _attribute(self, path: bytes, name: str) -> bool | None:
        if not self.attributes:
            return None
        value = self.repo.get_attr(path, name, flags=_ATTR_FLAGS, commit=self.head)
        return _override(value)

    def judge(self, path: bytes) -> PathClass:
        vendored, generated, documentation = (self._attribute(path, n) for n in _ATTRIBUTES)
        return path_class(path, self.generated.get(path), (vendored, generated, documentation))


Overrides = tuple[bool | None, bool | None, bool | None]


def path_class(
    path: bytes, generated_at_head: bool | None, overrides: Overrides = (None, None, None)
) -> PathClass:
    """A path's class: `overrides` are what the `.gitattributes` say of vendored, generated and
    documentation (None: nothing), `generated_at_head` what enry makes of its content at the
    head (None: it is no file there, and is judged on its path alone)."""
    name = path.decode("utf-8", errors="replace")
    vendored, generated, documentation = overrides
    if vendored is None:
        vendored = enry.is_vendor(name)
    if vendored:
        return PathClass.VENDORED
    if generated is None:
        generated = enry.is_generated(name, b"") if generated_at_head is None else generated_at_head
    if generated:
        return PathClass.GENERATED
    if documentation is None:
        documentation = enry.is_documentation(name)
    return PathClass.DOCUMENTATION if documentation else PathClass.SOURCE


def _mentions_linguist(repo: pygit2.Repository, tree: pygit2.Tree, files: list[bytes]) -> bool:
    """Whether any of the tree's `.gitattributes` `files` names a linguist attribute (only a
    shortcut: when a file cannot be read by its name, it may)."""
    for path in files:
        try:
            entry = tree[path.decode()]
        except (UnicodeDecodeError, KeyError):
            return True
        _type, data = repo.odb.read(entry.id)
        if b"linguist-" in data:
            return True
    return False


def _attribute_files(head_files: pa.Table) -> list[bytes]:
    """The `.gitattributes` among the files at the head."""
    paths = head_files.column("path")
    candidates = head_files.filter(pc.ends_with(paths, pattern=".gitattributes"))
    return [
        path
        for path in candidates.column("path").to_pylist()
        if path.rsplit(b"/", 1)[-1] == _GITATTRIBUTES
    ]


def _head_changes(
    repo: pygit2.Repository, old_head: str | None, new_head: str | None
) -> set[bytes] | None:
    """The paths whose content or presence differs between the two heads' trees; None when
    that cannot be told (no old head, or it is gone) and every path must be judged again."""
    if old_head is None or new_head is None:
        return None
    try:
        old_tree = repo[old_head].peel(pygit2.Tree)
    except (KeyError, ValueError):
        return None
    new_tree = repo[new_head].peel(pygit2.Tree)
    diff = old_tree.diff_to_tree(new_tree, flags=DiffOption.SKIP_BINARY_CHECK)
    return {delta.new_file.raw_path for delta in diff.deltas}


def generated_at_head(path: bytes, content: bytes, regular: bool) -> bool:
    """What enry makes of a file at the head (its content read by the snapshot): a symlink is
    judged on its path alone, as a path absent from the head is."""
    name = path.decode("utf-8", errors="replace")
    return bool(enry.is_generated(name, content[:CLASSIFY_PREFIX_BYTES] if regular else b""))


def _head_generated(head_files: pa.Table, paths: list[bytes]) -> dict[bytes, bool]:
    """For those of `paths` at the head, the snapshot's `generated` flag."""
    if not paths or not head_files.num_rows:
        return {}
    wanted = pa.array(paths, pa.binary())
    index = pc.index_in(wanted, value_set=head_files.column("path"))
    flags = pc.take(head_files.column("generated"), index).to_pylist()
    return {p: f for p, f in zip(paths, flags, strict=True) if f is not None}


def update_classes(
    repo: pygit2.Repository,
    table: pa.Table | None,
    old_head: str | None,
    new_head: str | None,
    paths: Iterable[bytes],
    head_files: pa.Table,
) -> tuple[pa.Table, bool]:
    """The classes at `new_head` of every path of `table` (judged at `old_head`) and of
    `paths`, and whether any path of `table` changed class (then the aggregates must be
    counted again). `head_files` is the snapshot at `new_head` (path and generated)."""
    known = table if table is not None else empty_classes()
    old_paths = known.column("path").to_pylist()
    old_classes = known.column("class").to_pylist()
    changes = _head_changes(repo, old_head, new_head) if table is not None else None
    if changes is not None and any(path.rsplit(b"/", 1)[-1] == _GITATTRIBUTES for path in changes):
        changes = None  # the overrides may have changed anywhere
    classes = dict(zip(old_paths, old_classes, strict=True))
    rejudge = list(classes) if changes is None else [p for p in changes if p in classes]
    new = [p for p in dict.fromkeys(paths) if p not in classes]
    judge = _Judge(
        repo, new_head, _head_generated(head_files, rejudge + new), _attribute_files(head_files)
    )
    changed = False
    for path in rejudge:
        value = int(judge.judge(path))
        if value != classes[path]:
            classes[path] = value
            changed = True
    for path in new:
        classes[path] = int(judge.judge(path))
    if not changed and len(classes) == len(old_paths):
        return known, False
    ordered = sorted(classes.items())
    result = pa.table(
        {
            "path": pa.array([p for p, _ in ordered], pa.binary()),
            "class": pa.array([c for _, c in ordered], pa.int8()),
        },
        schema=CLASSES_SCHEMA,
    )
    return result, changed


def classes_of(table: pa.Table, paths: pa.Array) -> pa.Array:
    """The class of each of `paths` (source for a path the table lacks)."""
    index = pc.index_in(paths, value_set=table.column("path"))
    found = pc.take(table.column("class"), index)
    return pc.fill_null(found, 0).cast(pa.int8())

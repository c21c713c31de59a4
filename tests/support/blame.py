"""git blame's runs of whole files, as a table: what a fresh backfill's provenance holds."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pygit2

from worker.engine.provenance import author_of, blame_file
from worker.engine.provenance_state import ProvenanceState


def blame_files(repo_dir: Path, head: str, paths: Iterable[bytes]) -> pa.Table:
    """provenance.PROVENANCE_SCHEMA's rows of `paths` (text files at `head`), each blamed
    whole, by path then line."""
    repo = pygit2.Repository(str(repo_dir))
    runs = {path: blame_file(repo_dir, head, path) for path in sorted(set(paths))}
    shas = {sha for each in runs.values() for _, _, sha in each}
    authors = {sha: author_of(repo, sha) for sha in shas}
    return ProvenanceState(head, {p: each for p, each in runs.items() if each}, authors).table()

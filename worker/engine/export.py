"""Phase 8: the codebase documents, each written atomically and only when its content changed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from contract import layout
from contract.documents import (
    TOP_HOTSPOTS,
    Activity,
    AuthoredTotals,
    Branch,
    Branches,
    CodeAge,
    CodeownersProblem,
    CodeownersSource,
    Contributor,
    ContributorActivityEntry,
    ContributorActivityIndex,
    Document,
    EmailMode,
    Excluded,
    LanguageShare,
    Overview,
    Ownership,
    PathEntry,
    PathOwner,
    PathPerson,
    PathsDirectory,
    Team,
    TeamFigures,
    Teams,
    email_fields,
    weeks_digest,
)
from contract.paths import display_path
from contract.storage import ObjectTooLarge, Storage, StorageError
from worker.engine.aggregate import Aggregates, json_list
from worker.engine.classes import PathClass, classes_of
from worker.engine.codeowners import Codeowners, CodeownersFile
from worker.engine.paths import (
    BUS_SCHEMA,
    ENTRIES_SCHEMA,
    LEADERS_SCHEMA,
    ROOT,
    leaders_of,
    run_starts,
)
from worker.engine.snapshot import SnapshotSummary
from worker.engine.store import PublishedDocument
from worker.engine.teams import UNOWNED, TeamRow, shown_owners


@dataclass(frozen=True)
class CodebaseFacts:
    """Everything the documents are made of, gathered by the earlier phases."""

    codebase_id: int
    full_name: str
    default_branch: str | None
    head_sha: str | None
    aggregates: Aggregates
    snapshot: SnapshotSummary
    branches: list[Branch]  # those described (MAX_DESCRIBED_BRANCHES at most)
    total_branches: int
    # Line provenance: each person's surviving lines by key, and the lines by age bucket; None
    # when it is not known yet.
    surviving: dict[str, int] | None = None
    code_age: list[tuple[str, int]] | None = None


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def build_documents(
    facts: CodebaseFacts, email_mode: EmailMode, now: datetime
) -> tuple[dict[str, Document | RenderedDocument], dict[str, bytes]]:
    """overview, branches, activity, ownership and contributor_activity (status is written by
    the pipeline); and the weeks of contributor_activity's people by name (weeks_digest), which
    it names."""
    agg, snap, totals = facts.aggregates, facts.snapshot, facts.aggregates.totals
    churn = totals.additions_lines + totals.deletions_lines
    overview = Overview(
        codebase_id=facts.codebase_id,
        full_name=facts.full_name,
        default_branch=facts.default_branch,
        head_sha=facts.head_sha,
        total_commits=totals.commits,
        merge_commits=totals.merges,
        total_contributors=totals.contributors,
        total_branches=facts.total_branches,
        additions_lines=totals.additions_lines,
        deletions_lines=totals.deletions_lines,
        addition_bytes=totals.addition_bytes,
        deletion_bytes=totals.deletion_bytes,
        total_churn=churn,
        net_sloc=totals.additions_lines - totals.deletions_lines,
        total_churn_bytes=totals.addition_bytes + totals.deletion_bytes,
        net_bytes=totals.addition_bytes - totals.deletion_bytes,
        total_files=snap.total_files,
        total_lines=snap.total_lines,
        total_bytes=snap.total_bytes,
        primary_language=snap.primary_language,
        languages=[
            LanguageShare(language=s.language, type=s.type, bytes=s.bytes, files=s.files)
            for s in snap.languages
        ],
        first_commit_at=totals.first_commit_at,
        last_commit_at=totals.last_commit_at,
        authored=AuthoredTotals(**agg.authored),
        excluded=Excluded.model_validate(agg.excluded),
        code_age=None
        if facts.code_age is None
        else [CodeAge(bucket=bucket, lines=lines) for bucket, lines in facts.code_age],
        generated_at=now,
    )
    branches = Branches(
        codebase_id=facts.codebase_id,
        default_branch=facts.default_branch,
        total_branches=facts.total_branches,
        branches=facts.branches,
        generated_at=now,
    )
    envelope = Activity.model_validate(
        {
            "codebase_id": facts.codebase_id,
            "weekly": [],
            "monthly": [],
            "punch_card": agg.punch_card,
            "generated_at": now,
        }
    )
    activity = RenderedDocument(
        Activity,
        _spliced(
            _spliced(envelope.to_json(), b"weekly", json_list(agg.weekly).encode()),
            b"monthly",
            json_list(agg.monthly).encode(),
        ),
    )
    contributors = []
    known = facts.surviving
    surviving = sum(known.values()) if known is not None else 0
    for row in agg.contributors:
        email, digest = email_fields(row["email"], email_mode)
        person_churn = row["additions_lines"] + row["deletions_lines"]
        contributors.append(
            Contributor(
                name=row["name"],
                email=email,
                email_sha256=digest,
                is_bot=row["is_bot"],
                commits=row["commits"],
                co_authored_commits=row["co_authored_commits"],
                additions_lines=row["additions_lines"],
                deletions_lines=row["deletions_lines"],
                addition_bytes=row["addition_bytes"],
                deletion_bytes=row["deletion_bytes"],
                authored_additions_lines=row["authored_additions_lines"],
                authored_deletions_lines=row["authored_deletions_lines"],
                authored_addition_bytes=row["authored_addition_bytes"],
                authored_deletion_bytes=row["authored_deletion_bytes"],
                share_of_commits=_share(row["commits"], totals.commits),
                share_of_churn=_share(person_churn, churn),
                first_commit_at=datetime.fromtimestamp(row["first_commit_time"], UTC),
                last_commit_at=datetime.fromtimestamp(row["last_commit_time"], UTC),
                surviving_lines=None if known is None else known.get(row["key"], 0),
                share_of_lines=None
                if known is None
                else _share(known.get(row["key"], 0), surviving),
            )
        )
    ownership = Ownership(
        codebase_id=facts.codebase_id,
        total_contributors=totals.contributors,
        contributors=contributors,
        generated_at=now,
    )
    entries, weeks = [], {}
    for row in agg.contributor_activity:
        email, digest = email_fields(row["email"], email_mode)
        body = row["weeks"].encode()
        weeks_name = weeks_digest(body)
        weeks[weeks_name] = body
        shown = {name: value for name, value in row.items() if name not in ("key", "weeks")}
        entries.append(
            ContributorActivityEntry(
                **shown | {"email": email, "email_sha256": digest, "weeks_sha256": weeks_name}
            )
        )
    contributor_activity = ContributorActivityIndex(
        codebase_id=facts.codebase_id,
        total_contributors=len(entries),
        contributors=entries,
        generated_at=now,
    )
    return {
        "overview": overview,
        "branches": branches,
        "activity": activity,
        "ownership": ownership,
        "contributor_activity": contributor_activity,
    }, weeks


@dataclass(frozen=True)
class RenderedDocument:
    """A document whose JSON is assembled from parts already written as JSON (the series of
    activity: worker/engine/aggregate.py), byte for byte what its model writes (tests check
    it): the model would validate and serialize every one of thousands of rows on every
    push."""

    model: type[Document]
    body: bytes

    def to_json(self) -> bytes:
        return self.body

    def parsed(self) -> Document:
        return self.model.model_validate_json(self.body)


def _spliced(body: bytes, member: bytes, value: bytes) -> bytes:
    """`body`, a model's JSON with an empty list `member`, with `value` as that list. Only the
    first occurrence is replaced: the members before it hold numbers, and strings after it."""
    empty = b'"%s":[]' % member
    at = body.index(empty)
    return body[:at] + b'"%s":' % member + value + body[at + len(empty) :]


# When a document was generated: left out of what it says.
_GENERATED = ("generated_at", "updated_at")


def content_hash(document: Document) -> str:
    """A hash of what a document says, leaving out when it was generated."""
    body = document.model_dump_json(exclude=set(_GENERATED))
    return hashlib.sha256(body.encode()).hexdigest()


def body_and_hash(document: Document | RenderedDocument) -> tuple[bytes, str]:
    """The document's JSON and its content_hash, serialized once: every document ends with
    when it was generated, so what it says is its JSON without that last member (the 3 MB
    documents of a long history cost a second serialization otherwise)."""
    body = document.to_json()
    model = document.model if isinstance(document, RenderedDocument) else type(document)
    last = list(model.model_fields)[-1]
    cut = body.rfind(b',"%s":' % last.encode()) if last in _GENERATED else -1
    if cut < 0:
        parsed = document.parsed() if isinstance(document, RenderedDocument) else document
        return body, content_hash(parsed)
    digest = hashlib.sha256(memoryview(body)[:cut])
    digest.update(b"}")
    return body, digest.hexdigest()


async def publish_documents(
    storage: Storage,
    codebase_id: int,
    documents: dict[str, Document | RenderedDocument],
    published: dict[str, PublishedDocument],
    *,
    verify: bool = True,
) -> dict[str, PublishedDocument]:
    """Write each document unless storage still holds the very object last published with the
    same content. With `verify` that is checked by version, one metadata read each (a write of
    a run that never committed, or a document lost since, is written again); without it,
    `published` is taken as what storage holds, as it is after a run that succeeded.
    Returns what storage now holds."""
    now_published = {}
    for name, document in documents.items():
        key = layout.codebase_document(codebase_id, name)
        body, digest = body_and_hash(document)
        last = published.get(name)
        if last is not None and last.hash == digest:
            stored = await storage.stat(key) if verify else None
            if not verify or (stored is not None and stored.version == last.version):
                now_published[name] = last
                continue
        await storage.put(key, body)
        # The version a metadata read gives (a local folder's is not the ETag a write returns).
        written = await storage.stat(key)
        if written is None:
            raise StorageError(f"{key} is missing right after it was written")
        now_published[name] = PublishedDocument(hash=digest, version=written.version)
    return now_published


# Past this, the last index is not read (every weeks object stored is listed instead).
_INDEX_READ_BYTES = 64 * 1024 * 1024


async def weeks_held(
    storage: Storage, codebase_id: int, index: PublishedDocument | None
) -> set[str]:
    """The names of the contributor_activity weeks objects storage holds: those the index
    last published names (`index`, as storage still holds it), or without that record, or
    when storage holds another index, every one stored."""
    key = layout.codebase_document(codebase_id, "contributor_activity")
    try:
        stored = None if index is None else await storage.read_capped(key, _INDEX_READ_BYTES)
    except ObjectTooLarge:
        stored = None
    if stored is not None and index is not None and stored[0].version == index.version:
        try:
            return {entry["weeks_sha256"] for entry in json.loads(stored[1])["contributors"]}
        except (ValueError, KeyError, TypeError):
            pass  # of another form: what the prefix holds decides
    prefix = layout.contributor_weeks_objects(codebase_id)
    return {key.removeprefix(prefix).removesuffix(".json") for key in await storage.list(prefix)}


async def publish_weeks(
    storage: Storage, codebase_id: int, weeks: dict[str, bytes], held: set[str]
) -> list[str]:
    """Write the weeks objects storage does not hold (`held`: weeks_held's); the names
    written. Each is named by its content, so one held is the one to write."""
    written = [name for name in weeks if name not in held]
    for name in written:
        await storage.put(layout.contributor_weeks(codebase_id, name), weeks[name])
    return written


# The figures a path entry takes as paths.path_figures gives them.
_PATH_FIGURES = (
    "commits",
    "additions_lines",
    "deletions_lines",
    "authored_additions_lines",
    "authored_deletions_lines",
    "contributors",
    "recent_commits",
    "lines",
    "hotspot",
)
# What else an entry is made of, in the fingerprint that tells whether it changed.
_FINGERPRINTED = (
    "is_dir",
    "class",
    "first_time",
    "last_time",
    *_PATH_FIGURES,
    "surviving_lines",
)
# A path's line provenance (paths.ranked_leaders' tables over lines, beside each path's
# surviving lines): provenance.surviving_by_path's.
Owners = tuple[pa.Table, pa.Table, pa.Table]
_NO_OWNERS: Owners = (
    pa.table({"path": pa.array([], pa.binary()), "surviving_lines": pa.array([], pa.int64())}),
    LEADERS_SCHEMA.empty_table(),
    BUS_SCHEMA.empty_table(),
)


def _parents(paths: pa.Array) -> pa.Array:
    """The directory each path is listed in (the root's own being the root)."""
    split = pc.split_pattern(paths, pattern=b"/", max_splits=1, reverse=True)
    nested = pc.greater(pc.list_value_length(split), 1)
    return pc.if_else(nested, pc.list_element(split, 0), pa.scalar(ROOT, pa.binary()))


@dataclass
class PathsExport:
    """What a run publishes of the paths: the directories' documents that changed, by name;
    the names of those to delete; each path's entry fingerprint, for the next run to compare."""

    documents: dict[str, PathsDirectory]
    gone: list[str]
    entries: pa.Table
    # Every directory's document is among `documents`: storage should hold no other.
    everything: bool = False


def export_paths(
    codebase_id: int,
    figures: pa.Table,
    leaders: tuple[pa.Table, pa.Table],
    classes: pa.Table,
    people: list[tuple[str, str | None]],
    now: datetime,
    last: pa.Table | None,
    owners: Owners | None = None,
) -> PathsExport:
    """The documents of the directories (the root included) whose entry or whose children's
    entries differ from `last` (paths.ENTRIES_SCHEMA; None: every directory's), each with its
    own entry and its direct children's. `figures` and `leaders` are paths.path_figures' and
    paths.ranked_leaders'; `people` shown_people's."""
    figures = figures.append_column(
        "class", classes_of(classes, figures.column("path")).cast(pa.int64())
    )
    surviving, owner_top, owner_bus = _NO_OWNERS if owners is None else owners
    for joined in (
        _leaders_text(*leaders, people, "leaders"),
        _leaders_text(owner_top, owner_bus, people, "owners"),
        surviving,
    ):
        figures = figures.join(joined, "path", join_type="left outer", use_threads=False)
    if owners is not None:
        figures = figures.set_column(
            figures.column_names.index("surviving_lines"),
            "surviving_lines",
            pc.fill_null(figures.column("surviving_lines"), 0),
        )
    figures = figures.sort_by("path")
    texts = pc.binary_join_element_wise(
        *(pc.cast(figures.column(name), pa.string()) for name in _FINGERPRINTED),
        figures.column("leaders"),
        figures.column("owners"),
        "|",
        null_handling="replace",
        null_replacement="-",
    )
    paths = figures.column("path").to_pylist()
    fingerprints = [
        hashlib.blake2b(text, digest_size=16).digest()
        for text in texts.cast(pa.binary()).to_pylist()
    ]
    is_dir = pc.or_(figures.column("is_dir"), pc.equal(figures.column("path"), ROOT))
    entries = pa.table(
        {"path": figures.column("path"), "is_dir": is_dir, "fingerprint": fingerprints},
        schema=ENTRIES_SCHEMA,
    )
    dirs = set(entries.filter(is_dir).column("path").to_pylist())
    if last is None:
        wanted, gone = dirs, set()
    else:
        before = dict(
            zip(
                last.column("path").to_pylist(),
                last.column("fingerprint").to_pylist(),
                strict=True,
            )
        )
        changed = [
            path
            for path, fingerprint in zip(paths, fingerprints, strict=True)
            if before.pop(path, None) != fingerprint
        ]
        # What `before` still holds is gone: its directory lists it no more.
        moved = changed + list(before)
        wanted = {path for path in changed if path in dirs}
        parents = _parents(pa.array(moved, pa.binary())).to_pylist()
        wanted |= {parent for parent in parents if parent in dirs}
        old_dirs = last.filter(last.column("is_dir")).column("path").to_pylist()
        gone = {path for path in old_dirs if path not in dirs}
    if not wanted:
        return PathsExport(
            {}, [_document_name(path) for path in gone], entries, everything=last is None
        )
    value_set = pa.array(sorted(wanted), pa.binary())
    listed = pc.or_(
        pc.is_in(figures.column("path"), value_set=value_set),
        pc.is_in(_parents(figures.column("path")), value_set=value_set),
    )
    kinds = {int(c): c.name.lower() for c in PathClass}
    built: dict[bytes, PathEntry] = {}
    children: dict[bytes, list[PathEntry]] = {}
    rows = figures.filter(listed).sort_by("path")
    rows = rows.append_column("parent", _parents(rows.column("path")))
    listed_paths = rows.column("path").combine_chunks()
    ranked = leaders_of(*leaders, only=listed_paths)
    ranked_owners = leaders_of(owner_top, owner_bus, only=listed_paths)
    for row in rows.to_pylist():
        path = row["path"]
        bus = ranked.get(path, ([], 0))[1]
        top_owners, bus_lines = ranked_owners.get(path, ([], None if owners is None else 0))
        is_directory = row["is_dir"] or path == ROOT
        built[path] = PathEntry.model_validate(
            {
                **{name: row[name] for name in _PATH_FIGURES},
                "path": display_path(path),
                "kind": "dir" if is_directory else "file",
                "class": None if is_directory else kinds[row["class"]],
                "first_commit_at": datetime.fromtimestamp(row["first_time"], UTC),
                "last_commit_at": datetime.fromtimestamp(row["last_time"], UTC),
                "top_contributors": _people_of(ranked.get(path, ([], 0))[0], people),
                "bus_factor": bus,
                "surviving_lines": row["surviving_lines"],
                "top_owners": [
                    PathOwner(name=people[kid][0], email_sha256=people[kid][1], surviving_lines=n)
                    for kid, n in top_owners
                ],
                "bus_factor_lines": bus_lines,
            }
        )
        if path != ROOT and row["parent"] in wanted:
            children.setdefault(row["parent"], []).append(built[path])
    documents = {
        _document_name(path): PathsDirectory(
            codebase_id=codebase_id,
            path=built[path].path,
            entry=built[path],
            paths=children.get(path, []),
            generated_at=now,
        )
        for path in sorted(wanted)
    }
    return PathsExport(
        documents, [_document_name(path) for path in gone], entries, everything=last is None
    )


def _leaders_text(
    top: pa.Table, bus: pa.Table, people: list[tuple[str, str | None]], name: str
) -> pa.Table:
    """(path, `name`): what each path's entry shows of its people (its top contributors as
    shown, in order, and its bus factor) as text, for its fingerprint; written in Arrow, for
    thousands of paths."""
    shown = pa.array([repr(person) for person in people], pa.string())
    rows = pc.binary_join_element_wise(
        pc.take(shown, top.column("kid")), pc.cast(top.column("churn"), pa.string()), ":"
    )
    # `top` is by path, then rank: each path's rows are one run.
    starts = pc.indices_nonzero(run_starts(top.column("path")))
    offsets = pa.concat_arrays([starts.cast(pa.int32()), pa.array([len(rows)], pa.int32())])
    listed = pc.binary_join(pa.ListArray.from_arrays(offsets, rows.combine_chunks()), ";")
    people_text = pa.table({"path": pc.take(top.column("path"), starts), "people": listed})
    texts = bus.join(people_text, "path", join_type="full outer", use_threads=False)
    return pa.table(
        {
            "path": texts.column("path"),
            name: pc.binary_join_element_wise(
                pc.fill_null(texts.column("people"), ""),
                pc.cast(pc.fill_null(texts.column("bus_factor"), 0), pa.string()),
                "/",
            ),
        }
    )


class Hotspot(NamedTuple):
    """A file's hotspot (definition 14), for the org summary."""

    path: str  # as contract/paths.py writes it
    hotspot: int
    recent_commits: int
    lines: int


def top_hotspots(figures: pa.Table, count: int = TOP_HOTSPOTS) -> list[Hotspot]:
    """The files (paths.path_figures' rows) with the largest hotspots above 0, largest first,
    ties by path."""
    files = figures.filter(
        pc.and_(pc.invert(figures.column("is_dir")), pc.greater(figures.column("hotspot"), 0))
    )
    top = files.sort_by([("hotspot", "descending"), ("path", "ascending")]).slice(0, count)
    return [
        Hotspot(display_path(row["path"]), row["hotspot"], row["recent_commits"], row["lines"])
        for row in top.select(["path", "hotspot", "recent_commits", "lines"]).to_pylist()
    ]


def _document_name(path: bytes) -> str:
    return layout.paths_document(display_path(path))


def shown_people(
    people: list[tuple[str, str]], email_mode: EmailMode
) -> list[tuple[str, str | None]]:
    """Each contributor's (kid's) name and email digest as the paths and teams show them, from
    their name and email as the ownership shows them."""
    return [(name, email_fields(email, email_mode)[1]) for name, email in people]


def _people_of(
    top: list[tuple[int, int]], people: list[tuple[str, str | None]]
) -> list[PathPerson]:
    """paths.leaders' (kid, churn) pairs as the documents list them."""
    return [
        PathPerson(name=people[kid][0], email_sha256=people[kid][1], authored_churn=churn)
        for kid, churn in top
    ]


def teams_document(
    codebase_id: int,
    rows: list[TeamRow],
    leaders: dict[str, tuple[list[tuple[int, int]], int]],
    found: CodeownersFile | None,
    rules: Codeowners | None,
    people: list[tuple[str, str | None]],
    now: datetime,
    surviving: dict[str, tuple[int, list[tuple[int, int]], int]] | None = None,
) -> Teams:
    """The teams document: `rows` teams.team_figures', `leaders` paths.leaders' per owner key,
    `found` the CODEOWNERS file used and `rules` what it says, `people` shown_people's;
    `surviving` provenance.surviving_by_team's (None: not known)."""
    owners = shown_owners(rules)

    def figures(row: TeamRow) -> dict[str, object]:
        top, bus = leaders.get(row.owner, ([], 0))
        counts = {name: value for name, value in asdict(row).items() if name != "owner"}
        counts |= {"bus_factor": bus, "top_contributors": _people_of(top, people)}
        if surviving is not None:
            lines, owning, bus_lines = surviving.get(row.owner, (0, [], 0))
            counts |= {
                "surviving_lines": lines,
                "top_owners": [
                    PathOwner(name=people[kid][0], email_sha256=people[kid][1], surviving_lines=n)
                    for kid, n in owning
                ],
                "bus_factor_lines": bus_lines,
            }
        return counts

    by_owner = {row.owner: row for row in rows}
    unowned = by_owner.pop(UNOWNED, TeamRow(UNOWNED, 0, 0, 0, 0, 0, 0))
    codeowners = None
    if found is not None and rules is not None:
        codeowners = CodeownersSource(
            path=found.path,
            problems=[
                CodeownersProblem(line=problem.line, kind=str(problem.kind))
                for problem in rules.problems
            ],
        )
    listed = [
        Team.model_validate(figures(row) | {"owner": owners.get(key, key)})
        for key, row in by_owner.items()
    ]
    return Teams(
        codebase_id=codebase_id,
        codeowners=codeowners,
        teams=sorted(listed, key=lambda team: (team.owner.lower(), team.owner)),
        unowned=TeamFigures.model_validate(figures(unowned)),
        generated_at=now,
    )

"""The JSON documents both sides share: what the worker exports and the read API serves."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# 2: authored figures (DESIGN.md definitions 9-13): overview.authored and .excluded, the
# authored_* fields of activity and ownership, ownership's is_bot and co_authored_commits, the
# contributor_activity document, org_summary.authored.
# 3: paths and teams (definitions 14 and 15): the per-directory paths documents, the teams
# document, org_summary.top_hotspots.
SCHEMA_VERSION = 3

# How many hotspots a codebase gives its org, and the org summary lists.
TOP_HOTSPOTS = 10

CODEBASE_DOCUMENTS = (
    "overview",
    "branches",
    "activity",
    "ownership",
    "contributor_activity",
    "teams",
    "status",
)


class EmailMode(StrEnum):
    HASH = "hash"
    PLAIN = "plain"
    OMIT = "omit"


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Phase(StrEnum):
    """The engine's phases, in the order a run goes through them (`Status.phase`)."""

    FETCH = "fetch"
    DELTA = "delta"
    EXTRACT = "extract"
    STORE = "store"
    SNAPSHOT = "snapshot"
    AGGREGATE = "aggregate"
    BRANCHES = "branches"
    PROVENANCE = "provenance"
    EXPORT = "export"


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=None).encode()


class LanguageShare(BaseModel):
    language: str
    type: str | None = None
    bytes: int
    files: int


class AuthoredTotals(BaseModel):
    """Work by people (definition 13): changes to source and documentation paths in commits that
    are neither by a bot nor an ignored revision."""

    commits: int  # commits neither by a bot nor ignored
    contributors: int  # distinct non-bot people of those commits, co-authors included
    additions_lines: int
    deletions_lines: int
    addition_bytes: int
    deletion_bytes: int


class ExcludedFigures(BaseModel):
    commits: int  # commits with at least one change excluded for this reason
    additions_lines: int
    deletions_lines: int


class Excluded(BaseModel):
    """Each excluded change under the first reason that applies, in this order: ignored
    revision, bot, vendored, generated. With `authored`, they add up to the all-in lines."""

    ignored_revisions: ExcludedFigures
    bots: ExcludedFigures
    vendored: ExcludedFigures
    generated: ExcludedFigures


class Overview(Document):
    codebase_id: int
    full_name: str
    default_branch: str | None
    head_sha: str | None
    total_commits: int
    merge_commits: int
    total_contributors: int
    total_branches: int
    additions_lines: int
    deletions_lines: int
    addition_bytes: int
    deletion_bytes: int
    total_churn: int
    net_sloc: int
    total_churn_bytes: int
    net_bytes: int
    total_files: int
    total_lines: int
    total_bytes: int
    primary_language: str | None
    languages: list[LanguageShare]
    first_commit_at: datetime | None
    last_commit_at: datetime | None
    authored: AuthoredTotals
    excluded: Excluded
    # The lines at the default head by the age of the commit git blame names for them
    # (definition 16), every bucket listed youngest first; null until provenance is known (a
    # backfill publishes the other figures first).
    code_age: list[CodeAge] | None = None
    generated_at: datetime


class Branch(BaseModel):
    name: str
    head_sha: str
    is_default: bool
    last_commit_at: datetime
    last_commit_author: str
    ahead: int
    behind: int
    merged: bool
    stale: bool


class Branches(Document):
    codebase_id: int
    default_branch: str | None
    total_branches: int
    branches: list[Branch]
    generated_at: datetime


class ActivityPeriod(BaseModel):
    period_start: str
    commits: int
    additions_lines: int
    deletions_lines: int
    addition_bytes: int
    deletion_bytes: int
    contributors: int
    authored_additions_lines: int
    authored_deletions_lines: int


class PunchCardCell(BaseModel):
    weekday: int
    hour: int
    commits: int


class Activity(Document):
    codebase_id: int
    weekly: list[ActivityPeriod]
    monthly: list[ActivityPeriod]
    punch_card: list[PunchCardCell]
    generated_at: datetime


class CodeAge(BaseModel):
    bucket: str  # "<1m", "1-6m", "6-12m", "1-2y" or ">2y" (30-day months, 365-day years)
    lines: int


class Contributor(BaseModel):
    """One person: the all-in figures of the commits they authored (commits to last_commit_at),
    and their share of the authored work of the commits they authored or co-authored.

    Someone who only co-authored has commits 0 and the dates of the commits they co-authored."""

    name: str
    email: str | None
    email_sha256: str | None
    is_bot: bool
    commits: int
    co_authored_commits: int  # commits naming them in a Co-authored-by trailer (not the author)
    additions_lines: int
    deletions_lines: int
    addition_bytes: int
    deletion_bytes: int
    authored_additions_lines: int
    authored_deletions_lines: int
    authored_addition_bytes: int
    authored_deletion_bytes: int
    share_of_commits: float
    share_of_churn: float
    first_commit_at: datetime
    last_commit_at: datetime
    # The lines at the default head that git blame gives their commits (definition 16), and
    # their share of all such lines; null until provenance is known.
    surviving_lines: int | None = None
    share_of_lines: float | None = None


class Ownership(Document):
    codebase_id: int
    total_contributors: int  # distinct authors (overview.total_contributors)
    # Authors by churn, then those who only co-authored.
    contributors: list[Contributor]
    generated_at: datetime


class ContributorWeek(BaseModel):
    week_start: str  # a Monday, ISO date
    commits: int  # authored commits the person authored or co-authored
    authored_additions_lines: int  # their share
    authored_deletions_lines: int


class ContributorActivityFigures(BaseModel):
    name: str
    email: str | None
    email_sha256: str | None
    commits: int
    authored_additions_lines: int
    authored_deletions_lines: int


class ContributorActivityRow(ContributorActivityFigures):
    weeks: list[ContributorWeek]  # weeks with activity only, oldest first


class ContributorActivity(Document):
    """Each non-bot person's authored work week by week (what GitHub's /stats/contributors
    gives), sorted by authored churn: the people of overview.authored.contributors."""

    codebase_id: int
    total_contributors: int
    contributors: list[ContributorActivityRow]
    generated_at: datetime


class ContributorActivityEntry(ContributorActivityFigures):
    """A ContributorActivityRow as stored: its weeks (the JSON list) are an object of their
    own, named by the sha256 of its bytes (layout.contributor_weeks)."""

    weeks_sha256: str


class ContributorActivityIndex(Document):
    """contributor_activity as stored: one request must read a bounded object, and a person's
    weeks run to thousands over a long history. A push writes the weeks of the people it
    touched and this index; the read API answers a page of ContributorActivity by reading the
    index and its people's weeks (contributor_activity_page)."""

    codebase_id: int
    total_contributors: int
    contributors: list[ContributorActivityEntry]
    generated_at: datetime


WEEKS_DIGEST = re.compile(r"[0-9a-f]{64}")


def weeks_digest(body: bytes) -> str:
    """The name of a weeks object: the sha256 of its bytes."""
    return hashlib.sha256(body).hexdigest()


def contributor_activity_row(entry: dict[str, Any], weeks: list[Any]) -> dict[str, Any]:
    """A stored ContributorActivityEntry with its weeks, as ContributorActivityRow."""
    row = {name: value for name, value in entry.items() if name != "weeks_sha256"}
    row["weeks"] = weeks
    return row


class PathPerson(BaseModel):
    name: str
    email_sha256: str | None
    authored_churn: int


class PathOwner(BaseModel):
    name: str
    email_sha256: str | None
    surviving_lines: int


class PathEntry(BaseModel):
    """One directory or file ever changed (definition 14), its path written in full from the
    root as contract/paths.py writes paths ("" is the root)."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    path: str
    kind: str  # "dir" or "file"
    class_: str | None = Field(alias="class")  # a file's path class; null for a directory
    commits: int
    additions_lines: int
    deletions_lines: int
    authored_additions_lines: int
    authored_deletions_lines: int
    contributors: int
    first_commit_at: datetime
    last_commit_at: datetime
    recent_commits: int
    lines: int | None  # at the default head; null when nothing is there
    top_contributors: list[PathPerson]
    bus_factor: int
    hotspot: int
    # Definition 16: the lines at the default head git blame gives, under the path; the 5
    # people they most belong to; the fewest people holding more than half of them. Null
    # (and no owners) until provenance is known.
    surviving_lines: int | None = None
    top_owners: list[PathOwner] = []
    bus_factor_lines: int | None = None


class PathsDirectory(Document):
    """A directory's own entry and its direct children's: one stored object per directory, so
    that a request reads one bounded object."""

    codebase_id: int
    path: str
    entry: PathEntry
    paths: list[PathEntry]
    generated_at: datetime


class TeamFigures(BaseModel):
    """The figures of a set of files at the default head (definition 15): a team's, or those
    nobody owns."""

    files: int
    lines: int
    commits: int
    authored_additions_lines: int
    authored_deletions_lines: int
    contributors: int
    bus_factor: int
    top_contributors: list[PathPerson]
    # Definition 16 over the files: the lines at the default head git blame gives, their 5
    # main owners, the fewest people holding more than half of them; null until known.
    surviving_lines: int | None = None
    top_owners: list[PathOwner] = []
    bus_factor_lines: int | None = None


class Team(TeamFigures):
    owner: str  # as the first CODEOWNERS line naming it writes it (grouped ignoring case)


class CodeownersProblem(BaseModel):
    """A CODEOWNERS line GitHub skips (line null: the whole file), and why."""

    line: int | None
    kind: str


class CodeownersSource(BaseModel):
    path: str  # where it was found: .github/CODEOWNERS, CODEOWNERS or docs/CODEOWNERS
    problems: list[CodeownersProblem]


class Teams(Document):
    """Each CODEOWNERS owner's files at the default head and their figures, sorted by owner;
    the files nobody owns; the CODEOWNERS file used (null when there is none)."""

    codebase_id: int
    codeowners: CodeownersSource | None
    teams: list[Team]
    unowned: TeamFigures
    generated_at: datetime


class Progress(BaseModel):
    done: int
    total: int


class LastRun(BaseModel):
    trigger: str
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: int | None = None
    commits_added: int = 0
    commits_removed: int = 0


class LastError(BaseModel):
    at: datetime
    message: str


class Status(Document):
    codebase_id: int
    state: RunState
    phase: Phase | None = None
    progress: Progress | None = None
    last_run: LastRun | None = None
    last_success_at: datetime | None = None
    last_error: LastError | None = None
    # What the last successful run counted at a limit (dates clamped, ...), one sentence each.
    notices: list[str] = []
    refs: dict[str, str] = {}
    updated_at: datetime


def email_fields(email: str, mode: EmailMode) -> tuple[str | None, str | None]:
    """(email, email_sha256) as EMAIL_MODE allows them to be published."""
    if mode is EmailMode.OMIT:
        return None, None
    digest = hashlib.sha256(email.lower().encode()).hexdigest()
    return (email if mode is EmailMode.PLAIN else None), digest


class OrgLanguage(BaseModel):
    language: str
    type: str | None = None
    bytes: int
    files: int


class OrgHotspot(BaseModel):
    """A file among the org's hotspots (definition 14: recent commits x lines at the head)."""

    codebase_id: int
    full_name: str
    path: str  # as contract/paths.py writes it
    hotspot: int
    recent_commits: int
    lines: int


class OrgSummary(Document):
    org_id: int
    org_login: str
    total_codebases: int
    total_commits: int
    total_contributors: int
    additions_lines: int
    deletions_lines: int
    total_churn: int
    total_lines: int
    languages: list[OrgLanguage]
    # Summed over the codebases; contributors distinct across them.
    authored: AuthoredTotals
    # The files with the largest hotspot across the codebases, most first (ties by codebase
    # and path); at most TOP_HOTSPOTS, none with a hotspot of 0.
    top_hotspots: list[OrgHotspot] = []
    updated_at: datetime


class CodebaseRow(BaseModel):
    codebase_id: int
    full_name: str
    default_branch: str | None
    primary_language: str | None
    total_commits: int
    total_contributors: int
    total_branches: int
    total_churn: int
    total_lines: int
    last_commit_at: datetime | None
    state: RunState
    updated_at: datetime


class CodebasesList(Document):
    org_id: int
    org_login: str
    codebases: list[CodebaseRow]
    updated_at: datetime

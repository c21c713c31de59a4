"""The org's merge state: one object per org that every worker merges its codebase into by
compare-and-swap, and from which the public org files (org_summary, codebases_list) are derived.

It also lets the read API answer org-level questions for a caller who sees only some of the
org's codebases by reading one stored object.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contract.documents import (
    TOP_HOTSPOTS,
    AuthoredTotals,
    CodebaseRow,
    CodebasesList,
    OrgHotspot,
    OrgLanguage,
    OrgSummary,
)


def _no_authored_work() -> AuthoredTotals:
    return AuthoredTotals(
        commits=0,
        contributors=0,
        additions_lines=0,
        deletions_lines=0,
        addition_bytes=0,
        deletion_bytes=0,
    )


class CodebaseContribution(BaseModel):
    """What one codebase adds to its org's totals."""

    row: CodebaseRow
    exported: bool  # False until the codebase's first export: listed, but not in the totals
    additions_lines: int = 0
    deletions_lines: int = 0
    languages: list[OrgLanguage] = []
    contributor_keys: list[str] = []  # sha256 of lower-cased emails, sorted
    # The codebase's overview.authored, and its authored people's keys (as contributor_keys).
    # A state stored before schema 2 has neither: zeros and no keys until the codebase's next
    # export.
    authored: AuthoredTotals = Field(default_factory=_no_authored_work)
    authored_contributor_keys: list[str] = []
    # Its files with the largest hotspots (before schema 3: none until its next export).
    hotspots: list[OrgHotspot] = []


class OrgState(BaseModel):
    schema_version: int = 1
    org_id: int
    org_login: str
    codebases: dict[str, CodebaseContribution] = {}  # keyed by str(codebase_id)


def org_state_key(org_id: int) -> str:
    return f"state/orgs/{org_id}/org_state.json"


def summarize(state: OrgState, visible: set[int] | None, now: datetime) -> OrgSummary:
    """The org summary over the codebases in `visible` (None: all of them)."""
    chosen = [c for key, c in state.codebases.items() if visible is None or int(key) in visible]
    exported = [c for c in chosen if c.exported]
    people: set[str] = set()
    languages: dict[str, OrgLanguage] = {}
    for c in exported:
        people.update(c.contributor_keys)
        for lang in c.languages:
            total = languages.setdefault(
                lang.language, OrgLanguage(language=lang.language, type=lang.type, bytes=0, files=0)
            )
            total.bytes += lang.bytes
            total.files += lang.files
    adds = sum(c.additions_lines for c in exported)
    dels = sum(c.deletions_lines for c in exported)
    return OrgSummary(
        org_id=state.org_id,
        org_login=state.org_login,
        total_codebases=len(chosen),
        total_commits=sum(c.row.total_commits for c in exported),
        total_contributors=len(people),
        additions_lines=adds,
        deletions_lines=dels,
        total_churn=adds + dels,
        total_lines=sum(c.row.total_lines for c in exported),
        languages=sorted(languages.values(), key=lambda lang: (-lang.bytes, lang.language)),
        authored=_authored(exported),
        top_hotspots=top_hotspots(exported),
        updated_at=now,
    )


def top_hotspots(exported: list[CodebaseContribution]) -> list[OrgHotspot]:
    """The codebases' hotspots, largest first, ties by codebase id and path."""
    found = [spot for c in exported for spot in c.hotspots if spot.hotspot > 0]
    found.sort(key=lambda spot: (-spot.hotspot, spot.codebase_id, spot.path))
    return found[:TOP_HOTSPOTS]


def _authored(exported: list[CodebaseContribution]) -> AuthoredTotals:
    """The codebases' authored figures summed, their people counted once across them."""
    people = set().union(*(c.authored_contributor_keys for c in exported))
    return AuthoredTotals(
        commits=sum(c.authored.commits for c in exported),
        contributors=len(people),
        additions_lines=sum(c.authored.additions_lines for c in exported),
        deletions_lines=sum(c.authored.deletions_lines for c in exported),
        addition_bytes=sum(c.authored.addition_bytes for c in exported),
        deletion_bytes=sum(c.authored.deletion_bytes for c in exported),
    )


def codebases_list(state: OrgState, visible: set[int] | None, now: datetime) -> CodebasesList:
    rows = [c.row for key, c in state.codebases.items() if visible is None or int(key) in visible]
    return CodebasesList(
        org_id=state.org_id,
        org_login=state.org_login,
        codebases=sorted(rows, key=lambda r: (r.full_name.lower(), r.codebase_id)),
        updated_at=now,
    )

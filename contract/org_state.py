"""The org's merge state: one object per org that every worker merges its codebase into by
compare-and-swap, and from which the public org files (org_summary, codebases_list) are derived.

It also lets the read API answer org-level questions for a caller who sees only some of the
org's codebases by reading one stored object.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from contract.documents import CodebaseRow, CodebasesList, OrgLanguage, OrgSummary


class CodebaseContribution(BaseModel):
    """What one codebase adds to its org's totals."""

    row: CodebaseRow
    exported: bool  # False until the codebase's first export: listed, but not in the totals
    additions_lines: int = 0
    deletions_lines: int = 0
    languages: list[OrgLanguage] = []
    contributor_keys: list[str] = []  # sha256 of lower-cased emails, sorted


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
        updated_at=now,
    )


def codebases_list(state: OrgState, visible: set[int] | None, now: datetime) -> CodebasesList:
    rows = [c.row for key, c in state.codebases.items() if visible is None or int(key) in visible]
    return CodebasesList(
        org_id=state.org_id,
        org_login=state.org_login,
        codebases=sorted(rows, key=lambda r: (r.full_name.lower(), r.codebase_id)),
        updated_at=now,
    )

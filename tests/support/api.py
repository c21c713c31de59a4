"""The read API's side of the tests: documents as the worker would export them, written straight
into storage, and the app that serves them to an admin token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from pydantic import SecretStr, TypeAdapter
from pytest_aiohttp import AiohttpClient

from contract import layout
from contract.documents import (
    Activity,
    ActivityPeriod,
    AuthoredTotals,
    Branch,
    Branches,
    CodebaseRow,
    Contributor,
    ContributorActivity,
    ContributorActivityEntry,
    ContributorActivityIndex,
    ContributorActivityRow,
    ContributorWeek,
    Document,
    Excluded,
    ExcludedFigures,
    LanguageShare,
    OrgLanguage,
    Overview,
    Ownership,
    PunchCardCell,
    RunState,
    Status,
    weeks_digest,
)
from contract.org_state import (
    CodebaseContribution,
    OrgState,
    codebases_list,
    org_state_key,
    summarize,
)
from contract.registry import CodebaseEntry, write_entry
from contract.settings import Settings
from contract.storage import Storage
from contract.storage.local import LocalStorage
from service.api.state import API_LIMITS
from service.app import create_app
from tests.support.fake_github import FakeGitHub

ADMIN_TOKEN = "adm1"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
Client = TestClient[web.Request, web.Application]


# --- Building documents ------------------------------------------------------------------------


def email_key(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()


@dataclass
class Codebase:
    """One repository's analytics, as the worker would export them.

    Each bot (one of the contributors) made one of the commits: the rest is authored work."""

    codebase_id: int
    org_id: int
    org_login: str
    name: str
    commits: int = 10
    contributors: tuple[str, ...] = ("ada@example.com", "bob@example.com")
    bots: tuple[str, ...] = ()
    branches: int = 3
    language: str = "Python"
    installation_id: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.org_login}/{self.name}"

    @property
    def people(self) -> list[str]:
        """The contributors who are not bots."""
        return [email for email in self.contributors if email not in self.bots]

    def entry(self) -> CodebaseEntry:
        return CodebaseEntry(
            codebase_id=self.codebase_id,
            org_id=self.org_id,
            org_login=self.org_login,
            installation_id=self.installation_id,
            full_name=self.full_name,
            clone_url=f"https://github.example/{self.full_name}.git",
            default_branch="main",
            registered_at=T0,
            updated_at=T0,
        )

    def overview(self) -> Overview:
        adds, dels = 100 * self.commits, 10 * self.commits
        by_people, by_bots = self.commits - len(self.bots), len(self.bots)
        nothing = ExcludedFigures(commits=0, additions_lines=0, deletions_lines=0)
        return Overview(
            codebase_id=self.codebase_id,
            full_name=self.full_name,
            default_branch="main",
            head_sha="a" * 40,
            total_commits=self.commits,
            merge_commits=1,
            total_contributors=len(self.contributors),
            total_branches=self.branches,
            additions_lines=adds,
            deletions_lines=dels,
            addition_bytes=adds * 30,
            deletion_bytes=dels * 30,
            total_churn=adds + dels,
            net_sloc=adds - dels,
            total_churn_bytes=(adds + dels) * 30,
            net_bytes=(adds - dels) * 30,
            total_files=5,
            total_lines=adds - dels,
            total_bytes=(adds - dels) * 30,
            primary_language=self.language,
            languages=[LanguageShare(language=self.language, bytes=1000, files=5)],
            first_commit_at=T0 - timedelta(days=100),
            last_commit_at=T0,
            authored=AuthoredTotals(
                commits=by_people,
                contributors=len(self.people),
                additions_lines=100 * by_people,
                deletions_lines=10 * by_people,
                addition_bytes=3000 * by_people,
                deletion_bytes=300 * by_people,
            ),
            excluded=Excluded(
                ignored_revisions=nothing,
                bots=ExcludedFigures(
                    commits=by_bots, additions_lines=100 * by_bots, deletions_lines=10 * by_bots
                ),
                vendored=nothing,
                generated=nothing,
            ),
            generated_at=T0,
        )

    def branches_document(self) -> Branches:
        names = ["main", *(f"feature-{i:02d}" for i in range(1, self.branches))]
        return Branches(
            codebase_id=self.codebase_id,
            default_branch="main",
            total_branches=len(names),
            branches=[
                Branch(
                    name=name,
                    head_sha=f"{i:040x}",
                    is_default=name == "main",
                    last_commit_at=T0 - timedelta(days=i),
                    last_commit_author="Ada",
                    ahead=i,
                    behind=0,
                    merged=False,
                    stale=False,
                )
                for i, name in enumerate(names)
            ],
            generated_at=T0,
        )

    def activity(self) -> Activity:
        def period(start: str, commits: int) -> ActivityPeriod:
            return ActivityPeriod(
                period_start=start,
                commits=commits,
                additions_lines=commits * 10,
                deletions_lines=commits,
                addition_bytes=commits * 300,
                deletion_bytes=commits * 30,
                contributors=1,
                authored_additions_lines=commits * 10,
                authored_deletions_lines=commits,
            )

        # Mondays of January and February 2024; the months of the first quarter.
        weeks = [date(2024, 1, 1) + timedelta(weeks=w) for w in range(8)]
        return Activity(
            codebase_id=self.codebase_id,
            weekly=[period(d.isoformat(), i + 1) for i, d in enumerate(weeks)],
            monthly=[period(f"2024-{m:02d}-01", m) for m in (1, 2, 3)],
            punch_card=[PunchCardCell(weekday=0, hour=9, commits=self.commits)],
            generated_at=T0,
        )

    def ownership(self) -> Ownership:
        def person(i: int, email: str) -> Contributor:
            additions = 10 * (len(self.contributors) - i)
            authored = 0 if email in self.bots else additions
            return Contributor(
                name=email.split("@")[0],
                email=None,
                email_sha256=email_key(email),
                is_bot=email in self.bots,
                commits=1,
                co_authored_commits=0,
                additions_lines=additions,
                deletions_lines=0,
                addition_bytes=0,
                deletion_bytes=0,
                authored_additions_lines=authored,
                authored_deletions_lines=0,
                authored_addition_bytes=0,
                authored_deletion_bytes=0,
                share_of_commits=1 / len(self.contributors),
                share_of_churn=1 / len(self.contributors),
                first_commit_at=T0,
                last_commit_at=T0,
            )

        people = [person(i, email) for i, email in enumerate(self.contributors)]
        return Ownership(
            codebase_id=self.codebase_id,
            total_contributors=len(people),
            contributors=people,
            generated_at=T0,
        )

    def contributor_activity(self) -> ContributorActivity:
        def row(i: int, email: str) -> ContributorActivityRow:
            additions = 10 * (len(self.people) - i)
            week = ContributorWeek(
                week_start=T0.date().isoformat(),  # a Monday
                commits=1,
                authored_additions_lines=additions,
                authored_deletions_lines=0,
            )
            return ContributorActivityRow(
                name=email.split("@")[0],
                email=None,
                email_sha256=email_key(email),
                commits=1,
                authored_additions_lines=additions,
                authored_deletions_lines=0,
                weeks=[week],
            )

        return ContributorActivity(
            codebase_id=self.codebase_id,
            total_contributors=len(self.people),
            contributors=[row(i, email) for i, email in enumerate(self.people)],
            generated_at=T0,
        )

    def status(self, state: RunState = RunState.SUCCEEDED) -> Status:
        return Status(codebase_id=self.codebase_id, state=state, updated_at=T0)

    def contribution(self, exported: bool) -> CodebaseContribution:
        overview = self.overview()
        row = CodebaseRow(
            codebase_id=self.codebase_id,
            full_name=self.full_name,
            default_branch="main",
            primary_language=self.language if exported else None,
            total_commits=self.commits if exported else 0,
            total_contributors=len(self.contributors) if exported else 0,
            total_branches=self.branches if exported else 0,
            total_churn=overview.total_churn if exported else 0,
            total_lines=overview.total_lines if exported else 0,
            last_commit_at=T0 if exported else None,
            state=RunState.SUCCEEDED if exported else RunState.QUEUED,
            updated_at=T0 + timedelta(minutes=self.codebase_id % 60),
        )
        if not exported:
            return CodebaseContribution(row=row, exported=False)
        return CodebaseContribution(
            row=row,
            exported=True,
            additions_lines=overview.additions_lines,
            deletions_lines=overview.deletions_lines,
            languages=[OrgLanguage(language=self.language, bytes=1000, files=5)],
            contributor_keys=sorted(email_key(e) for e in self.contributors),
            authored=overview.authored,
            authored_contributor_keys=sorted(email_key(e) for e in self.people),
        )


async def put_json(storage: Storage, key: str, document: Document) -> None:
    await storage.put(key, document.to_json())


WEEKS = TypeAdapter(list[ContributorWeek])


async def put_contributor_activity(
    storage: Storage, codebase_id: int, document: ContributorActivity
) -> list[str]:
    """contributor_activity stored as the worker stores it: each person's weeks an object
    named by its content, then the index naming them. The weeks objects' keys."""
    entries, keys = [], []
    for row in document.contributors:
        body = WEEKS.dump_json(row.weeks)
        digest = weeks_digest(body)
        keys.append(layout.contributor_weeks(codebase_id, digest))
        await storage.put(keys[-1], body)
        shown = row.model_dump(exclude={"weeks"})
        entries.append(ContributorActivityEntry(**shown, weeks_sha256=digest))
    index = ContributorActivityIndex(
        codebase_id=document.codebase_id,
        total_contributors=document.total_contributors,
        contributors=entries,
        generated_at=document.generated_at,
    )
    await put_json(storage, layout.codebase_document(codebase_id, "contributor_activity"), index)
    return keys


async def publish_codebase(
    storage: Storage, codebase: Codebase, *, exported: bool = True, status: bool = True
) -> None:
    """The registry entry, and the documents of a first export (if `exported`)."""
    await write_entry(storage, codebase.entry())
    documents: dict[str, Document] = {}
    if status:
        state = RunState.SUCCEEDED if exported else RunState.QUEUED
        documents["status"] = codebase.status(state)
    if exported:
        documents |= {
            "overview": codebase.overview(),
            "branches": codebase.branches_document(),
            "activity": codebase.activity(),
            "ownership": codebase.ownership(),
        }
        await put_contributor_activity(
            storage, codebase.codebase_id, codebase.contributor_activity()
        )
    for name, document in documents.items():
        await put_json(storage, layout.codebase_document(codebase.codebase_id, name), document)


async def publish_org(
    storage: Storage, codebases: Iterable[Codebase], pending: Iterable[int] = ()
) -> OrgState:
    """The org's merge state and its two public files, as the worker merges them."""
    codebases = list(codebases)
    first = codebases[0]
    state = OrgState(
        org_id=first.org_id,
        org_login=first.org_login,
        codebases={
            str(c.codebase_id): c.contribution(exported=c.codebase_id not in set(pending))
            for c in codebases
        },
    )
    await storage.put(org_state_key(state.org_id), state.model_dump_json().encode())
    await put_json(
        storage, layout.org_document(state.org_id, "org_summary"), summarize(state, None, T0)
    )
    await put_json(
        storage,
        layout.org_document(state.org_id, "codebases_list"),
        codebases_list(state, None, T0),
    )
    return state


# --- The app -----------------------------------------------------------------------------------


def api_settings(storage: LocalStorage, redis_url: str, github: FakeGitHub) -> Settings:
    """The read API's settings: documents in `storage`, user tokens resolved by `github`."""
    return Settings(
        storage_url=str(storage.root),
        redis_url=SecretStr(redis_url),
        admin_tokens=[SecretStr(ADMIN_TOKEN)],
        github_api_url=github.base_url,
        github_app_id=github.app_id,
    )


async def start_api(aiohttp_client: AiohttpClient, settings: Settings, **limits: Any) -> Client:
    """The whole app; documents are revalidated on every request unless `limits` say else."""
    app = create_app(settings)
    app[API_LIMITS] = replace(app[API_LIMITS], **({"document_fresh_for": 0.0} | limits))
    return await aiohttp_client(app)


async def get(client: Client, path: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    """GET `path` as an admin: the status, the headers and the body."""
    async with client.get(path, headers=ADMIN | headers) as response:
        return response.status, CIMultiDict(response.headers), await response.read()

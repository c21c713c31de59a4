"""What the read API answers besides the stored documents themselves: pages, the activity
series of one granularity, errors. The OpenAPI document's schemas are generated from these."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contract.documents import (
    ActivityPeriod,
    Branches,
    CodebasesList,
    ContributorActivity,
    Document,
    Ownership,
    PathsDirectory,
    PunchCardCell,
)

NEXT_CURSOR = Field(
    description="Pass as `cursor` for the next page; null on the last page.",
)


class BranchesPage(Branches):
    next_cursor: str | None = NEXT_CURSOR


class OwnershipPage(Ownership):
    next_cursor: str | None = NEXT_CURSOR


class ContributorActivityPage(ContributorActivity):
    next_cursor: str | None = NEXT_CURSOR


class PathsPage(PathsDirectory):
    next_cursor: str | None = NEXT_CURSOR


class CodebasesPage(CodebasesList):
    next_cursor: str | None = NEXT_CURSOR


class Granularity(StrEnum):
    WEEK = "week"
    MONTH = "month"


class ActivitySeries(Document):
    """One series of the activity document, cut to the periods that overlap since..until."""

    codebase_id: int
    granularity: Granularity
    since: date | None
    until: date | None
    periods: list[ActivityPeriod]
    punch_card: list[PunchCardCell] = Field(
        description="Over the whole history: it is not cut by since and until."
    )
    generated_at: datetime


class ErrorBody(BaseModel):
    status: int
    error: str = Field(description="The HTTP reason phrase.")
    message: str

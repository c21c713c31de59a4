"""The App installed, removed, suspended, given more or fewer repositories, or its account
renamed."""

from __future__ import annotations

from typing import Any

from gidgethub import sansio
from gidgethub.routing import Router
from pydantic import BaseModel

from contract.jobs import (
    PURGE_INSTALLATION,
    REGISTER_REPOSITORIES,
    SET_INSTALLATION_SUSPENDED,
    Account,
    RegisterRequest,
    RepositoryRef,
)
from service.webhooks.handler import InstallationId, Jobs
from service.webhooks.repository import purge_codebase

router = Router()


class Installation(BaseModel):
    id: int
    account: Account
    repository_selection: str | None = None

    def job_arguments(self) -> dict[str, Any]:
        """What every installation-wide job is given."""
        return {"installation_id": self.id, "account": self.account.model_dump(mode="json")}


class InstallationPayload(BaseModel):
    installation: Installation
    repositories: list[RepositoryRef] | None = None


class RepositoriesChange(BaseModel):
    installation: Installation
    repositories_added: list[RepositoryRef] = []
    repositories_removed: list[RepositoryRef] = []


@router.register("installation", action="created")
async def register_on_install(event: sansio.Event, jobs: Jobs) -> None:
    """Register and backfill every repository the installation can see."""
    payload = InstallationPayload.model_validate(event.data)
    installation = payload.installation
    # None asks the API, which for a selection lists just the selected repositories.
    selected = None if installation.repository_selection == "all" else payload.repositories
    await jobs.enqueue(
        REGISTER_REPOSITORIES,
        RegisterRequest(
            installation_id=installation.id, account=installation.account, repositories=selected
        ),
    )


@router.register("installation", action="deleted")
async def purge_on_uninstall(event: sansio.Event, jobs: Jobs) -> None:
    installation = InstallationPayload.model_validate(event.data).installation
    await jobs.enqueue(PURGE_INSTALLATION, installation.job_arguments())


@router.register("installation", action="suspend")
@router.register("installation", action="unsuspend")
async def mark_suspension(event: sansio.Event, jobs: Jobs) -> None:
    installation = InstallationPayload.model_validate(event.data).installation
    await jobs.enqueue(
        SET_INSTALLATION_SUSPENDED,
        {**installation.job_arguments(), "suspended": event.data["action"] == "suspend"},
    )


@router.register("installation_repositories", action="added")
async def register_on_add(event: sansio.Event, jobs: Jobs) -> None:
    change = RepositoriesChange.model_validate(event.data)
    installation = change.installation
    await jobs.enqueue(
        REGISTER_REPOSITORIES,
        RegisterRequest(
            installation_id=installation.id,
            account=installation.account,
            repositories=change.repositories_added,
        ),
    )


@router.register("installation_repositories", action="removed")
async def purge_on_remove(event: sansio.Event, jobs: Jobs) -> None:
    change = RepositoriesChange.model_validate(event.data)
    installation = change.installation
    for repository in change.repositories_removed:
        await purge_codebase(jobs, repository.id, installation.id, installation.account)


class TargetRenamed(BaseModel):
    """installation_target: the installation's account (an org or a user) changed its login."""

    installation: InstallationId
    account: Account


@router.register("installation_target", action="renamed")
async def reregister_on_rename(event: sansio.Event, jobs: Jobs) -> None:
    """Registering again reads every repository from GitHub: the entries, the org files and the
    codebases' full names take the new login."""
    renamed = TargetRenamed.model_validate(event.data)
    await jobs.enqueue(
        REGISTER_REPOSITORIES,
        RegisterRequest(installation_id=renamed.installation.id, account=renamed.account),
    )
